// My data (我的数据, PIPL arts. 44–47): everything held about the resident and their household,
// as the server gathers it (`GET /api/residents/my-data`: sections of records, what is left
// out or masked and why, what is withheld and why), each field by its label; and the export as
// a file (`/api/residents/my-data/export?format=json|csv`). Both need the network: offline the
// screen says so and lists what the phone itself holds.

import { TooSlow, Unreachable, callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, fieldLabel, pick, t, tf } from "../i18n.js";
import { addressText } from "../views.js";
import { pauseText, sendForm, showProblems } from "./fields.js";
import { backLink, codeLabel, heading, latestOf } from "./ui.js";

const HIDDEN = new Set(["_id", "_rev", "_attachments", "_revisions", "type", "schema_version"]);

// The account has no schema: its words are here (server/domain/mydata.py names the same).
const ACCOUNT = { title: ["账号", "Account"], name: ["用户名", "User name"], role: ["角色", "Role"],
  created_at: ["注册时间", "Created at"], resident: ["居民", "Resident"], community: ["社区", "Community"],
  grids: ["网格", "Grids"], resident_role: ["居民", "Resident"] };

function typeTitle(schemas, type) {
  return type === "user" ? pick(ACCOUNT.title) : fieldLabel(latestOf(schemas, type), type);
}

function labelOf(schemas, type, name) {
  if (type === "user") return pick(ACCOUNT[name] || name);
  return fieldLabel((latestOf(schemas, type).properties || {})[name], name);
}

// A value in words, by its schema: times in Beijing time, codes and the parts of an object by
// their labels, a household or a notice by its address or title rather than its id.
function describe(ctx, prop, name, value) {
  if (value === undefined || value === null || value === "") return t("value_absent");
  if (typeof value === "string" && (prop.format === "date-time" || name.endsWith("_at")) && !Number.isNaN(Date.parse(value))) {
    return cityTime(Date.parse(value), { date: true });
  }
  if (typeof value === "string" && /^(household|notice):/.test(value)) return ctx.nameOf(value);
  if (name === "field" && typeof value === "string" && value.startsWith("/")) { // a record's field, by its label
    const field = value.slice(1).split("/")[0];
    const known = latestOf(ctx.schemas, "household").properties?.[field] || latestOf(ctx.schemas, "person").properties?.[field];
    return fieldLabel(known, field);
  }
  if (Array.isArray(value)) return value.map((v) => describe(ctx, prop.items || {}, name, v)).join("、");
  if (typeof value === "object") {
    if (name === "address") return addressText(value);
    const props = prop.properties || {};
    return Object.entries(value).map(([k, v]) =>
      `${ctx.type === "user" ? pick(ACCOUNT[k] || k) : fieldLabel(props[k], k)}：${describe(ctx, props[k] || {}, k, v)}`).join("；");
  }
  if (typeof value === "boolean") return t(value ? "yes" : "no");
  const labels = prop["x-enum-labels"];
  if (labels && labels[value]) return pick(labels[value]);
  return String(value);
}

function shownValue(ctx, type, name, value) {
  if (type === "user" && name === "role" && value === "resident") return pick(ACCOUNT.resident_role);
  const prop = (latestOf(ctx.schemas, type).properties || {})[name] || {};
  return describe({ ...ctx, type }, prop, name, value);
}

function recordFacts(ctx, type, fields) {
  const rows = Object.entries(fields).filter(([k, v]) => !HIDDEN.has(k) && v !== undefined && v !== null && v !== "");
  return el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [
    el("dt", {}, labelOf(ctx.schemas, type, k)), el("dd", { "data-field": k }, shownValue(ctx, type, k, v))]));
}

function recordItem(ctx, record) {
  const names = (list) => (list || []).map((n) => labelOf(ctx.schemas, record.type, n)).join("、");
  return el("li", { "data-type": record.type },
    el("span", { class: "main" }, typeTitle(ctx.schemas, record.type)),
    recordFacts(ctx, record.type, record.fields || {}),
    record.masked?.length ? el("p", { class: "hint" }, tf("r_masked_fields", { fields: names(record.masked), why: pick(record.why_masked) })) : null,
    record.left_out?.length ? el("p", { class: "hint" }, tf("r_left_out_fields", { fields: names(record.left_out), why: pick(record.why) })) : null);
}

function sectionsOf(ctx, data) {
  const nodes = (data.sections || []).map((section) => el("section", { class: "mydata-section", "data-key": section.key },
    el("h3", {}, pick(section.title)),
    section.records?.length ? el("ul", { class: "list held" }, section.records.map((r) => recordItem(ctx, r)))
      : el("p", { class: "empty" }, t("r_none_held"))));
  for (const w of data.withheld || []) {
    nodes.push(el("p", { class: "hint withheld" }, tf("r_withheld", { n: w.count, type: typeTitle(ctx.schemas, w.type), why: pick(w.why) })));
  }
  return nodes;
}

// Offline: what the phone holds about the resident (their household and its members, their
// links); notices are the city's, not theirs.
function heldOnPhone(app, ctx) {
  const { store } = app.resident;
  const mine = new Set(store.households().map((h) => h.link.household));
  const docs = [...store.docs.values()].filter((d) => d.type !== "notice" &&
    (mine.has(d._id) || mine.has(d.household) || d.created_by === store.me.name || d.account === store.me.name));
  return el("section", { class: "mydata-section", "data-key": "phone" },
    el("h3", {}, t("r_on_this_phone")),
    docs.length ? el("ul", { class: "list held" }, docs.map((d) => recordItem(ctx, { type: d.type, fields: d })))
      : el("p", { class: "empty" }, t("r_nothing_held")));
}

// --- requests (查阅、导出、更正、删除), tracked to an answer -------------------------------

function requestItem(schemas, request) {
  const label = (field, value) => codeLabel(schemas, "data_request", field, value);
  return el("li", { class: "data-request", "data-status": request.status },
    el("span", { class: "main" }, label("kind", request.kind)),
    el("span", { class: `chip chip-${request.status === "done" ? "accepted" : request.status === "refused" ? "declined" : "open"}` },
      label("status", request.status)),
    el("span", { class: "meta" }, cityTime(Date.parse(request.requested_at), { date: true })),
    request.due_on && ["open", "in_progress"].includes(request.status)
      ? el("span", { class: "meta request-due" }, tf("r_request_due", { day: request.due_on })) : null,
    request.details ? el("span", { class: "meta" }, request.details) : null,
    request.answer ? el("span", { class: "meta" }, `${t("r_answer")}：${request.answer}`) : null);
}

function requestsSection(app) {
  const list = el("ul", { class: "list data-requests", id: "r-requests" });
  const kinds = Object.keys(latestOf(app.schemas, "data_request").properties?.kind?.["x-enum-labels"] || {});
  const kind = el("select", { id: "r-request-kind" }, kinds.map((k) =>
    el("option", { value: k }, codeLabel(app.schemas, "data_request", "kind", k))));
  const details = el("textarea", { id: "r-request-details", rows: "3", maxlength: "2000", "aria-describedby": "r-request-details-error" });
  const general = el("p", { class: "error", id: "r-request-general", role: "alert" });
  const submit = el("button", { type: "submit", class: "primary", id: "r-request-submit" }, t("r_request_send"));
  const form = el("form", { id: "request-form", class: "record-form", novalidate: true },
    el("div", { class: "field" }, el("label", { for: "r-request-kind" }, t("r_request_kind")), kind),
    el("div", { class: "field", "data-field": "r-request-details" }, el("label", { for: "r-request-details" }, t("r_request_details")),
      details, el("p", { class: "error", id: "r-request-details-error", role: "alert" })),
    general, submit);
  const load = async () => {
    try {
      const reply = await callApi("/api/residents/data-requests");
      const requests = reply.ok ? reply.body.requests || [] : [];
      list.replaceChildren(...requests.map((r) => requestItem(app.schemas, r)));
    } catch {
      list.replaceChildren();
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { kind: kind.value };
    if (details.value.trim()) body.details = details.value.trim();
    sendForm(form, submit, general,
      () => callApi("/api/residents/data-requests", { method: "POST", body: JSON.stringify(body) }),
      async (reply) => {
        if (reply.ok) {
          details.value = "";
          app.flash(t(reply.body.repeated ? "r_request_repeated" : "r_request_made"));
          await load();
        } else if (reply.status === 429) {
          general.textContent = pauseText("r_request_paused", reply.retryAfter || 3600).text;
        } else {
          showProblems(form, general, reply.body.reason, { "r-request-details": "说明" });
        }
      });
  });
  load();
  return el("section", { class: "mydata-section", "aria-labelledby": "r-requests-title" },
    el("h3", { id: "r-requests-title" }, t("r_requests")),
    el("p", { class: "hint" }, t("r_requests_about")),
    list, form);
}

// Households by their address, notices by their title, as the phone knows them.
function namer(app) {
  const { store } = app.resident;
  return (id) => {
    const doc = store.docs.get(id) || store.households().find((h) => h.link.household === id)?.record;
    if (doc?.address) return addressText(doc.address);
    if (doc?.title) return doc.title;
    return t(id.startsWith("notice:") ? "r_a_notice" : "r_household_unknown");
  };
}

export function myDataView(app) {
  const ctx = { schemas: app.schemas, nameOf: namer(app) };
  const body = el("div", { id: "r-mydata", "aria-busy": "true" }, el("p", { class: "empty", role: "status" }, t("loading")));
  const exports = el("p", { class: "actions", id: "r-exports" },
    el("a", { href: "/api/residents/my-data/export?format=json", download: "", class: "button", id: "r-export-json" }, t("r_export_json")),
    el("a", { href: "/api/residents/my-data/export?format=csv", download: "", class: "button", id: "r-export-csv" }, t("r_export_csv")));
  const note = el("p", { class: "hint", id: "r-export-note" }, t("r_export_note"));
  if (!navigator.onLine) {
    exports.hidden = true;
    note.textContent = t("r_export_needs_network");
  }
  const fill = async () => {
    let nodes;
    try {
      const reply = await callApi("/api/residents/my-data");
      if (reply.status === 401) {
        app.askLogin(t("login_again"));
        nodes = [el("p", { class: "error", role: "alert" }, t("need_login"))];
      } else if (!reply.ok) {
        nodes = [el("p", { class: "error", role: "alert" }, `${t("r_mydata_failed")}（${reply.status}）`), heldOnPhone(app, ctx)];
      } else {
        nodes = [el("p", { class: "hint", id: "r-mydata-when" }, tf("r_mydata_when", { time: cityTime(Date.parse(reply.body.generated_at || "") || Date.now(), { date: true }) })),
          ...sectionsOf(ctx, reply.body)];
      }
    } catch (err) {
      if (!(err instanceof Unreachable) && !(err instanceof TooSlow)) throw err;
      nodes = [el("p", { class: "error", role: "status" }, t(err instanceof TooSlow ? "r_too_slow" : "r_mydata_offline")), heldOnPhone(app, ctx)];
    }
    body.replaceChildren(...nodes);
    body.setAttribute("aria-busy", "false");
  };
  fill();
  return [
    backLink("#/"),
    heading(t("r_my_data")),
    el("p", { class: "about" }, t("r_my_data_about")),
    exports,
    note,
    navigator.onLine ? requestsSection(app) : null,
    body,
  ];
}
