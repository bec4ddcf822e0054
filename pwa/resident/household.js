// The resident's household (我的住户), offline: the household and its present members as the
// registry and the worker's last visit hold them, ID numbers and phones masked by the server
// (server/domain/household_view.py), every code by its label. "Something is wrong" (信息有误)
// writes a correction request on the phone; it waits there until the server has it, and the
// worker accepts or declines it; the answer shows here after the next sync.

import { el } from "../dom.js";
import { fieldLabel, message, t, tf } from "../i18n.js";
import { addressText, valueText } from "../views.js";
import { clearErrors, field } from "./fields.js";
import { backLink, codeLabel, heading, latestOf } from "./ui.js";

const HOUSEHOLD_FIELDS = ["address", "head_name", "phone", "household_type", "tenure", "area_m2",
  "special_groups", "vehicles", "pets"];
const PERSON_FIELDS = ["name", "relationship", "sex", "birth_year", "birth_month", "ethnicity", "id_number",
  "phone", "registration_place", "residence_status", "hukou_type", "education", "marital_status", "employment"];
const MAX_PROPOSED = 200;
const MAX_NOTE = 500;

function label(schemas, type, name) {
  return fieldLabel(latestOf(schemas, type).properties?.[name], name);
}

function shown(schemas, doc, name) {
  const value = doc[name];
  if (value === undefined || value === null || value === "") return null;
  if (name === "address") return addressText(value);
  return valueText(schemas, doc.type, name, value);
}

function facts(schemas, doc, names) {
  const rows = names.map((n) => [n, shown(schemas, doc, n)]).filter(([, v]) => v !== null);
  return el("dl", { class: "facts" }, rows.flatMap(([n, v]) => [
    el("dt", {}, label(schemas, doc.type, n)), el("dd", { "data-field": n }, v)]));
}

function memberItem(schemas, person) {
  const relation = person.relationship !== undefined ? codeLabel(schemas, "person", "relationship", person.relationship) : "";
  return el("li", { class: "member", "data-id": person._id },
    el("span", { class: "main" }, person.name || ""), relation ? el("span", { class: "meta" }, relation) : null,
    facts(schemas, person, PERSON_FIELDS.filter((n) => n !== "name" && n !== "relationship")));
}

function correctionItem(schemas, request) {
  const changes = request.changes || [];
  return el("li", { class: "correction", "data-id": request._id, "data-status": request.status },
    el("span", { class: "main" }, changes.map((c) => c.proposed).join("、") || t("r_correction")),
    el("span", { class: `chip chip-${request.status}` }, codeLabel(schemas, "correction_request", "status", request.status)),
    request.answer ? el("span", { class: "meta" }, `${t("r_answer")}：${request.answer}`) : null);
}

export function householdView(app) {
  const { store, sync } = app.resident;
  const homes = store.households();
  if (!homes.length) return [backLink("#/"), heading(t("r_my_household")), el("p", { class: "empty" }, t("r_pending_help"))];
  const nodes = [backLink("#/"), heading(t("r_my_household"))];
  for (const { link, record } of homes) {
    const members = store.members(link.household);
    const requests = store.corrections(link.household);
    const waiting = requests.filter((r) => sync.pending[r._id]).length;
    nodes.push(el("section", { class: "household", "data-household": link.household, "aria-label": record?.address ? addressText(record.address) : t("r_my_household") },
      el("h3", {}, record?.address ? addressText(record.address) : t("r_household_unknown")),
      el("p", {}, el("span", { class: "chip" }, codeLabel(app.schemas, "resident", "role", link.role))),
      record ? facts(app.schemas, record, HOUSEHOLD_FIELDS.filter((n) => n !== "address")) : null,
      el("h3", {}, t("members")),
      members.length ? el("ul", { class: "list members" }, members.map((p) => memberItem(app.schemas, p)))
        : el("p", { class: "empty", id: "r-no-members" }, t(sync.status().lastSync ? "no_members" : "r_members_after_sync")),
      el("p", { class: "hint" }, t("r_masked_note")),
      el("p", { class: "actions" },
        el("a", { href: `#/correct/${encodeURIComponent(link.household)}`, class: "button", id: "r-wrong" }, t("r_something_wrong"))),
      requests.length ? el("section", { "aria-label": t("r_my_corrections") },
        el("h3", {}, t("r_my_corrections")),
        waiting ? el("p", { class: "hint" }, tf("r_waiting_n", { n: waiting })) : null,
        el("ul", { class: "list corrections" }, requests.map((r) => correctionItem(app.schemas, r)))) : null));
  }
  return nodes;
}

// --- "something is wrong" --------------------------------------------------------------------

function options(items) {
  return items.map(([value, text]) => el("option", { value }, text));
}

export function correctionView(app, householdId) {
  const { store, sync } = app.resident;
  const home = store.households().find((h) => h.link.household === householdId);
  if (!home) return [backLink("#/household"), heading(t("not_found"))];
  const records = [home.record, ...store.members(householdId)].filter(Boolean);
  const general = el("p", { class: "error", id: "r-fix-general", role: "alert" });
  const recordSelect = el("select", { id: "r-fix-record", "aria-describedby": "r-fix-record-error" },
    options(records.map((r) => [r._id, r.type === "household" ? t("r_the_household") : tf("r_member_named", { name: r.name })])));
  const fieldSelect = el("select", { id: "r-fix-field", "aria-describedby": "r-fix-now r-fix-field-error" });
  const now = el("p", { class: "hint", id: "r-fix-now", "aria-live": "polite" });
  const fillFields = () => {
    const record = records.find((r) => r._id === recordSelect.value);
    const names = record.type === "household" ? HOUSEHOLD_FIELDS : PERSON_FIELDS;
    fieldSelect.replaceChildren(...options(names.map((n) => [n, label(app.schemas, record.type, n)])));
    showNow();
  };
  const showNow = () => {
    const record = records.find((r) => r._id === recordSelect.value);
    now.textContent = `${t("r_now_reads")}：${shown(app.schemas, record, fieldSelect.value) ?? t("value_absent")}`;
  };
  recordSelect.addEventListener("change", fillFields);
  fieldSelect.addEventListener("change", showNow);
  const note = el("textarea", { id: "r-fix-note", maxlength: String(MAX_NOTE), rows: "3", "aria-describedby": "r-fix-note-error" });
  const submit = el("button", { type: "submit", class: "primary", id: "r-fix-submit" }, t("r_send_correction"));
  const form = el("form", { id: "correction-form", class: "record-form r-editing", novalidate: true },
    el("div", { class: "field", "data-field": "r-fix-record" }, el("label", { for: "r-fix-record" }, t("r_which_record")), recordSelect,
      el("p", { class: "error", id: "r-fix-record-error", role: "alert" })),
    el("div", { class: "field", "data-field": "r-fix-field" }, el("label", { for: "r-fix-field" }, t("r_which_field")), fieldSelect, now,
      el("p", { class: "error", id: "r-fix-field-error", role: "alert" })),
    field("r-fix-proposed", t("r_proposed"), { maxlength: String(MAX_PROPOSED), autocomplete: "off", required: true }),
    el("div", { class: "field", "data-field": "r-fix-note" }, el("label", { for: "r-fix-note" }, t("r_fix_note")), note,
      el("p", { class: "error", id: "r-fix-note-error", role: "alert" })),
    general, submit);
  fillFields();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const proposed = form.querySelector("#r-fix-proposed");
    const value = proposed.value.trim();
    if (!value) {
      form.querySelector("#r-fix-proposed-error").textContent = t("r_proposed_needed");
      proposed.setAttribute("aria-invalid", "true");
      proposed.focus();
      return;
    }
    submit.disabled = true;
    try {
      const saved = await store.requestCorrection(householdId, home.link.grid,
        [{ record: recordSelect.value, field: `/${fieldSelect.value}`, proposed: value }], note.value.trim());
      await sync.wrote(saved);
      form.classList.remove("r-editing");
      app.flash(t(navigator.onLine ? "r_correction_sent" : "r_correction_kept"));
      location.hash = "#/household";
    } catch (err) {
      general.textContent = message(err?.message || String(err));
      submit.disabled = false;
    }
  });
  return [
    backLink("#/household"),
    heading(t("r_something_wrong")),
    el("p", { class: "about" }, t("r_correction_about")),
    form,
  ];
}
