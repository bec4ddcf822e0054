// Small pieces the resident's screens share: a screen's title, the way back, a code's label.

import { el } from "../dom.js";
import { pick, t } from "../i18n.js";

export function latestOf(schemas, type) {
  const versions = schemas?.types?.[type] || {};
  return versions[Math.max(...Object.keys(versions).map(Number))] || {};
}

// A code's label from the schemas ("owner" → 业主), never the code itself.
export function codeLabel(schemas, type, field, value) {
  const prop = latestOf(schemas, type).properties?.[field] || {};
  return pick((prop["x-enum-labels"] || {})[value] || value);
}

export function heading(text) {
  return el("h2", { tabindex: "-1", class: "view-title" }, text);
}

export function backLink(href, text = t("back")) {
  return el("nav", { class: "crumbs" }, el("a", { href, class: "back" }, `‹ ${text}`));
}
