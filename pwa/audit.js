// The admin's audit of reveals (审计, `#/audit`): who saw which record's sensitive fields, or
// exported them unmasked, why and when, newest first; filtered by user, record, reason and
// time, and exported as CSV (`/api/audit`, `/api/audit/export`). Read-only: the app offers no
// way to change or remove an entry, and the server has none (docs/privacy.md). Online only.

import { answerOrSay } from "./api.js";
import { el } from "./dom.js";
import { t, tf } from "./i18n.js";

const FILTERS = ["user", "record", "reason", "since", "until"];

export function canReadAudit(me) {
  return Boolean(me) && me.role === "admin";
}

function entryRow(entry) {
  const why = entry.reason_text ? `${entry.reason_label}：${entry.reason_text}` : entry.reason_label;
  return el("tr", { class: "audit-entry" },
    ...[entry.at, entry.user, entry.kind === "export" ? t("audit_export_kind") : entry.record,
      (entry.fields || []).join(", "), why, entry.until].map((cell) => el("td", {}, cell || "")));
}

export function auditView(app) {
  const title = el("h2", { tabindex: "-1", class: "view-title" }, t("audit_title"));
  if (!canReadAudit(app.me)) return [title, el("p", { class: "empty" }, t("audit_forbidden"))];
  const inputs = Object.fromEntries(FILTERS.map((name) => [name, name === "reason"
    ? el("select", { id: `audit-${name}`, name }, el("option", { value: "" }, t("audit_any")),
      ...["verify_identity", "home_visit", "other"].map((code) => el("option", { value: code }, t(`reveal_${code}`))))
    : el("input", { id: `audit-${name}`, name, type: name === "since" || name === "until" ? "date" : "text" })]));
  const exportLink = el("a", { id: "audit-export", href: "/api/audit/export", download: "audit.csv" }, t("audit_export"));
  const status = el("p", { class: "meta", role: "status", id: "audit-status" });
  const body = el("tbody", { id: "audit-entries" });
  const query = () => new URLSearchParams(FILTERS.map((n) => [n, inputs[n].value.trim()]).filter(([, v]) => v));
  const load = async () => {
    const params = query();
    exportLink.href = `/api/audit/export?${params}`;
    const found = await answerOrSay(`/api/audit?${params}`, status);
    if (!found) return;
    body.replaceChildren(...found.entries.map(entryRow));
    status.textContent = tf("audit_count", { n: found.total });
  };
  const form = el("form", { id: "audit-filters", class: "filters" },
    ...FILTERS.map((name) => el("label", {}, t(`audit_${name}`), inputs[name])),
    el("button", { type: "submit", class: "primary" }, t("audit_filter")));
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
  return [title, form, el("p", {}, exportLink), status,
    el("table", { class: "audit" },
      el("thead", {}, el("tr", {}, ...["audit_at", "audit_user", "audit_record", "audit_fields", "audit_reason", "audit_until"]
        .map((k) => el("th", {}, t(k))))),
      body)];
}
