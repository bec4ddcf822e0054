// My data (我的数据, PIPL arts. 44–47): what is held about the resident's household, by record
// and field label, and a copy to keep as a file.

import { el } from "../dom.js";
import { cityTime, fieldLabel, t } from "../i18n.js";
import { valueText } from "../views.js";
import { backLink, heading, latestOf } from "./ui.js";

const HIDDEN = new Set(["_id", "_rev", "_attachments", "type", "schema_version", "created_by", "grid", "household", "account"]);

function recordTitle(schemas, doc) {
  const schema = latestOf(schemas, doc.type);
  const type = fieldLabel(schema, doc.type);
  return doc.type === "person" ? `${type}：${doc.name || ""}` : type;
}

function recordFacts(schemas, doc) {
  const props = latestOf(schemas, doc.type).properties || {};
  const rows = Object.entries(doc).filter(([k, v]) => !HIDDEN.has(k) && v !== undefined && v !== null && v !== "");
  return el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [
    el("dt", {}, fieldLabel(props[k], k)), el("dd", {}, valueText(schemas, doc.type, k, v))]));
}

// What the phone holds that is about the resident: their household and its members, their link,
// their own receipts and requests. Notices are the city's, not theirs.
export function heldAboutMe(store) {
  const mine = new Set(store.households().map((h) => h.link.household));
  return [...store.docs.values()].filter((d) => d.type !== "notice" &&
    (mine.has(d._id) || mine.has(d.household) || d.created_by === store.me.name || d.account === store.me.name));
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function myDataView(app) {
  const { store } = app.resident;
  const held = heldAboutMe(store);
  const exportButton = el("button", { type: "button", class: "primary", id: "r-export" }, t("r_export"));
  const status = el("p", { class: "hint", id: "r-export-status", role: "status" });
  exportButton.addEventListener("click", () => {
    const stamp = cityTime(Date.now(), { date: true });
    download(`linli-my-data-${new Date().toISOString().slice(0, 10)}.json`,
      JSON.stringify({ exported_at: new Date().toISOString(), account: store.me.name, records: held }, null, 2));
    status.textContent = `${t("r_exported")} ${stamp}`;
  });
  return [
    backLink("#/"),
    heading(t("r_my_data")),
    el("p", { class: "about" }, t("r_my_data_about")),
    el("p", { class: "actions" }, exportButton),
    status,
    held.length ? el("ul", { class: "list held" }, held.map((d) => el("li", { "data-id": d._id },
      el("span", { class: "main" }, recordTitle(app.schemas, d)), recordFacts(app.schemas, d))))
      : el("p", { class: "empty" }, t("r_nothing_held")),
  ];
}
