// Every export one tap away (issue 22, item 9): the households, the persons, the review list and
// the figures of the area a supervisor looks at, as XLSX, each with what the file holds of
// personal data said next to it (the server masks: server/domain/exports.py). A file asked for
// unmasked needs the `unmask` right and is audited, so it is not one tap: it is the API's
// `unmask=1`, said in the note.

import { el } from "./dom.js";
import { pick } from "./i18n.js";

const WORDS = {
  exports_title: ["导出数据", "Exports"],
  households: ["住户表", "Households"],
  persons: ["人口表", "Persons"],
  review: ["审核列表", "Review list"],
  aggregates: ["统计表", "Figures"],
  masked_households: ["联系电话已脱敏，特殊人群已隐藏", "Phones masked, special groups hidden"],
  masked_persons: ["身份证号、联系电话已脱敏", "ID numbers and phones masked"],
  masked_review: ["不含个人信息", "No personal data"],
  masked_aggregates: ["小于阈值的数字已隐藏", "Small counts withheld"],
};
const w = (key) => pick(WORDS[key]);
// The API's parameter that narrows a record export to an area (a district or the city: every
// grid in scope).
const SCOPE_PARAM = { grid: "grid", community: "community", street: "street" };

// The exports of an area (`level`, `code`) as a list of links, each with its masking stated.
export function exportsSection(level, code) {
  const scope = SCOPE_PARAM[level] ? { [SCOPE_PARAM[level]]: code } : {};
  const files = [
    ["households", scope],
    ["persons", scope],
    ["review", scope],
    ["aggregates", level === "city" ? { level } : { level, code }],
  ];
  return el("section", { class: "card exports no-print", "aria-labelledby": "exports-title" },
    el("h3", { id: "exports-title" }, w("exports_title")),
    el("ul", { class: "plain-list" }, files.map(([what, params]) => {
      const noteId = `export-${what}-note`;
      return el("li", { class: "export" },
        el("a", { class: "download", "data-export": what, download: "", "aria-describedby": noteId,
          href: `/api/export?${new URLSearchParams({ what, ...params, format: "xlsx" })}` },
        `${w(what)} (XLSX)`),
        el("span", { class: "meta", id: noteId }, w(`masked_${what}`)));
    })));
}
