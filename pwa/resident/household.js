// The resident's household (我的住户), offline: the household and its present members as the
// registry and the worker's last visit hold them, ID numbers and phones masked by the server
// (server/domain/household_view.py), every code by its label. "Something is wrong" (信息有误)
// writes a correction request on the phone; it waits there until the server has it, and the
// worker accepts or declines it; the answer shows here after the next sync.

import { TooSlow, Unreachable, callApi } from "../api.js";
import { el } from "../dom.js";
import { fieldLabel, message, t, tf } from "../i18n.js";
import { addressText, valueText } from "../views.js";
import { clearErrors, field, pauseText, sendForm, showProblems } from "./fields.js";
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

// A request in words: which item, what it should be (a code by its label), and where it stands.
function correctionItem(schemas, request) {
  const what = (request.changes || []).map((c) => {
    const type = String(c.record).split(":")[0];
    const name = String(c.field).replace(/^\//, "");
    const prop = latestOf(schemas, type).properties?.[name] || {};
    const value = prop["x-enum-labels"] ? codeLabel(schemas, type, name, c.proposed) : c.proposed;
    return `${label(schemas, type, name)} → ${value}`;
  }).join("；");
  let state;
  if (request.refused) state = el("span", { class: "chip chip-declined" }, `${t("r_not_taken")}：${message(request.refused.reason)}`);
  else if (request.waiting) state = el("span", { class: "chip chip-waiting" }, t("state_waiting"));
  else state = el("span", { class: `chip chip-${request.status}` }, codeLabel(schemas, "correction_request", "status", request.status));
  return el("li", { class: "correction", "data-id": request._id, "data-status": request.waiting ? "waiting" : request.status },
    el("span", { class: "main" }, what || t("r_correction")), state,
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
    const waiting = requests.filter((r) => r.waiting).length;
    nodes.push(el("section", { class: "household", "data-household": link.household, "aria-label": record?.address ? addressText(record.address) : t("r_my_household") },
      el("h3", {}, record?.address ? addressText(record.address) : t("r_household_unknown")),
      el("p", {}, el("span", { class: "chip" }, codeLabel(app.schemas, "resident", "role", link.role))),
      record ? facts(app.schemas, record, HOUSEHOLD_FIELDS.filter((n) => n !== "address")) : null,
      el("h3", {}, t("members")),
      members.length ? el("ul", { class: "list members" }, members.map((p) => memberItem(app.schemas, p)))
        : el("p", { class: "empty", id: "r-no-members" }, t(sync.status().lastSync ? "no_members" : "r_members_after_sync")),
      el("p", { class: "hint" }, t("r_masked_note")),
      navigator.onLine ? fullNumberForm(app) : null,
      el("p", { class: "actions" },
        el("a", { href: `#/correct/${encodeURIComponent(link.household)}`, class: "button", id: "r-wrong" }, t("r_something_wrong"))),
      requests.length ? el("section", { "aria-label": t("r_my_corrections") },
        el("h3", {}, t("r_my_corrections")),
        waiting ? el("p", { class: "hint" }, tf("r_waiting_n", { n: waiting })) : null,
        el("ul", { class: "list corrections" }, requests.map((r) => correctionItem(app.schemas, r)))) : null));
  }
  return nodes;
}

// --- the full ID number, to the person themself ---------------------------------------------

// After the password, the server gives the full number of the member bearing the resident's
// own name (`POST /api/residents/id-number`, logged there). Shown on this screen only: never
// stored on the phone, gone when the screen is left.
function fullNumberForm(app) {
  const shownNumber = el("p", { class: "main", id: "r-full-number", role: "status" });
  const general = el("p", { class: "error", id: "r-full-general", role: "alert" });
  const submit = el("button", { type: "submit", id: "r-full-submit" }, t("r_show_full_number"));
  const form = el("form", { id: "full-number-form", class: "record-form", novalidate: true },
    field("r-full-password", t("password"), { type: "password", autocomplete: "current-password", required: true },
      t("r_full_number_hint")),
    general, submit, shownNumber);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    shownNumber.textContent = "";
    const password = form.querySelector("#r-full-password");
    sendForm(form, submit, general,
      () => callApi("/api/residents/id-number", { method: "POST", body: JSON.stringify({ password: password.value }) }),
      (reply) => {
        if (reply.ok) {
          password.value = "";
          shownNumber.textContent = `${reply.body.name}：${reply.body.id_number || t("value_absent")}`;
        } else if (reply.status === 429) general.textContent = pauseText("r_paused", reply.retryAfter || 60).text;
        else showProblems(form, general, reply.body.reason, { "r-full-password": "密码" });
      });
  });
  return form;
}

// --- "something is wrong" --------------------------------------------------------------------

// What a resident may ask to correct (server/domain/resident_queue.py, CORRECTABLE).
const CORRECTABLE = {
  household: ["head_name", "phone", "tenure", "area_m2", "vehicles", "pets"],
  person: ["name", "sex", "birth_year", "birth_month", "id_number", "phone", "relationship",
    "registration_place", "education", "marital_status", "employment"],
};

function options(items) {
  return items.map(([value, text]) => el("option", { value }, text));
}

// The "should be" control for a field: its labels to choose from when it is a code, else text.
function proposedControl(schemas, type, name) {
  const prop = latestOf(schemas, type).properties?.[name] || {};
  const labels = prop["x-enum-labels"];
  const attrs = { id: "r-fix-proposed", name: "r-fix-proposed", "aria-describedby": "r-fix-proposed-error" };
  if (labels) {
    return el("select", attrs, el("option", { value: "" }, t("choose")),
      options(Object.keys(labels).map((code) => [code, codeLabel(schemas, type, name, code)])));
  }
  const numeric = prop.type === "integer" || prop.type === "number";
  return el("input", { ...attrs, maxlength: String(MAX_PROPOSED), autocomplete: "off",
    inputmode: numeric ? "decimal" : null });
}

export function correctionView(app, householdId) {
  const { store, sync } = app.resident;
  const home = store.households().find((h) => h.link.household === householdId);
  if (!home) return [backLink("#/household"), heading(t("not_found"))];
  const records = [home.record, ...store.members(householdId)].filter(Boolean);
  const general = el("p", { class: "error", id: "r-fix-general", role: "alert" });
  const recordSelect = el("select", { id: "r-fix-record" },
    options(records.map((r) => [r._id, r.type === "household" ? t("r_the_household") : tf("r_member_named", { name: r.name })])));
  const fieldSelect = el("select", { id: "r-fix-field", "aria-describedby": "r-fix-now" });
  const now = el("p", { class: "hint", id: "r-fix-now", "aria-live": "polite" });
  const proposedBox = el("div", { class: "field", "data-field": "r-fix-proposed" });
  const record = () => records.find((r) => r._id === recordSelect.value);
  const showField = () => {
    const doc = record();
    now.textContent = `${t("r_now_reads")}：${shown(app.schemas, doc, fieldSelect.value) ?? t("value_absent")}`;
    proposedBox.replaceChildren(el("label", { for: "r-fix-proposed" }, t("r_proposed")),
      proposedControl(app.schemas, doc.type, fieldSelect.value),
      el("p", { class: "error", id: "r-fix-proposed-error", role: "alert" }));
  };
  const fillFields = () => {
    const doc = record();
    fieldSelect.replaceChildren(...options(CORRECTABLE[doc.type].map((n) => [n, label(app.schemas, doc.type, n)])));
    showField();
  };
  recordSelect.addEventListener("change", fillFields);
  fieldSelect.addEventListener("change", showField);
  const note = el("textarea", { id: "r-fix-note", maxlength: String(MAX_NOTE), rows: "3", "aria-describedby": "r-fix-note-error" });
  const submit = el("button", { type: "submit", class: "primary", id: "r-fix-submit" }, t("r_send_correction"));
  const form = el("form", { id: "correction-form", class: "record-form", novalidate: true, "data-keep": true },
    el("div", { class: "field" }, el("label", { for: "r-fix-record" }, t("r_which_record")), recordSelect),
    el("div", { class: "field" }, el("label", { for: "r-fix-field" }, t("r_which_field")), fieldSelect, now),
    proposedBox,
    el("div", { class: "field", "data-field": "r-fix-note" }, el("label", { for: "r-fix-note" }, t("r_fix_note")), note,
      el("p", { class: "error", id: "r-fix-note-error", role: "alert" })),
    general, submit);
  fillFields();
  const done = (key) => {
    app.flash(t(key));
    location.hash = "#/household";
  };
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
    const body = { changes: [{ record: recordSelect.value, field: `/${fieldSelect.value}`, proposed: value }] };
    if (note.value.trim()) body.note = note.value.trim();
    if (store.households().length > 1) body.household = householdId;
    const item = { kind: "correction", key: `correction:${Date.now()}`, path: "/api/residents/corrections", body,
      shown: { _id: `waiting:${Date.now()}`, household: householdId, changes: body.changes, note: body.note, status: "open" } };
    submit.disabled = true;
    general.textContent = t("r_sending");
    try {
      const reply = await callApi(item.path, { method: "POST", body: JSON.stringify(body) });
      general.textContent = "";
      if (reply.ok) {
        sync.taken(item, reply);
        return done("r_correction_sent");
      }
      if (reply.status === 401) return app.askLogin(t("login_again"));
      if (reply.status >= 500 || (reply.status === 429 && reply.retryAfter)) {
        await sync.send(item);
        return done("r_correction_kept");
      }
      showProblems(form, general, reply.body.reason, { "r-fix-proposed": fieldLabelZh(app.schemas, record().type, fieldSelect.value),
        "r-fix-note": "说明" });
    } catch (err) {
      if (!(err instanceof Unreachable) && !(err instanceof TooSlow)) throw err;
      await sync.send(item);
      done("r_correction_kept");
    } finally {
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

function fieldLabelZh(schemas, type, name) {
  return latestOf(schemas, type).properties?.[name]?.title || name;
}
