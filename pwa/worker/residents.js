// The grid worker's resident work (网格员的居民工作), on the phone and offline like any grid
// record: the sign-ups waiting to be confirmed at the door (待核实), confirming or declining one,
// making a one-time activation code with its QR, removing a resident who moved out, and
// answering a resident's correction request. Every act is a record saved on the phone and
// synced; the server checks it (server/domain/resident_queue.py) and, for a sign-up confirmed
// here, writes the resident's link once the decision stands (the first one it receives).
// People are shown by name and address, never by ids or codes.

import { el } from "../dom.js";
import { withEdits } from "../edits.js";
import { SYSTEM } from "../forms.js";
import { fieldLabel, formatTime, message, pick, t } from "../i18n.js";
import { addressText, deviceTime, latestSchema, problemsOf, schemaFor } from "../views.js";
import { qrSvg } from "./qr.js";

const WORDS = {
  residents_link: ["居民事务", "Residents"],
  queue_title: ["居民注册待核实", "Sign-ups to confirm"],
  queue_empty: ["没有待核实的注册", "No sign-ups waiting"],
  corrections_title: ["居民更正申请", "Corrections asked by residents"],
  corrections_empty: ["没有待处理的更正申请", "No corrections waiting"],
  typed_address: ["填写的住址", "Address as typed"],
  phone: ["手机号", "Phone"],
  received: ["提交时间", "Received"],
  match: ["匹配结果", "Matching"],
  candidates: ["可能的住户", "Possible households"],
  no_candidates: ["系统没有找到可能的住户，请搜索本网格的住户", "The matching found no household; search this grid's households"],
  find_household: ["搜索本网格住户", "Search this grid's households"],
  household: ["住户", "Household"],
  role: ["身份", "Role"],
  choose: ["请选择", "Choose"],
  choose_household: ["请选择住户", "Choose a household"],
  choose_role: ["请选择身份", "Choose a role"],
  confirm: ["上门核实，确认激活", "Confirmed at the door: activate"],
  make_code: ["生成激活码", "Make an activation code"],
  decline_reason: ["未通过原因", "Reason for declining"],
  decline: ["不通过", "Decline"],
  reason_needed: ["请填写原因", "Give a reason"],
  decided_here: ["已在本机处理，待同步", "Decided on this phone, waiting to sync"],
  code_title: ["激活码", "Activation code"],
  code_help: ["请居民在“激活”页面扫码或输入激活码，7 天内有效，仅能使用一次。",
    "The resident scans the code or types it on the Activate screen; valid 7 days, once."],
  valid_until: ["有效期至", "Valid until"],
  code_for: ["住户", "For"],
  revoke: ["作废此激活码", "Withdraw this code"],
  code_state_active: ["有效", "Active"],
  code_state_used: ["已使用", "Used"],
  code_state_revoked: ["已作废", "Withdrawn"],
  code_state_expired: ["已过期", "Expired"],
  qr_label: ["激活码二维码", "QR code of the activation code"],
  residents_here: ["本户居民", "Residents of this household"],
  codes_here: ["本户激活码", "Activation codes of this household"],
  remove_resident: ["移除（已迁出）", "Remove (moved out)"],
  removed_reason: ["移除原因", "Reason for removal"],
  resident_unknown: ["居民", "Resident"],
  correction_from: ["居民提交的更正", "Correction asked by a resident"],
  resident_note: ["居民说明", "Resident's note"],
  now_value: ["现在", "Now"],
  proposed: ["应改为", "Proposed"],
  answer: ["答复", "Answer"],
  accept: ["采纳并更正", "Accept and correct"],
  refuse: ["不采纳", "Decline"],
  answer_needed: ["请填写答复", "Write an answer"],
  empty_value: ["（空）", "(empty)"],
  back: ["返回", "Back"],
  overruled: ["您在离线时的处理与 {who} 的不同；服务器先收到的是 {who} 的处理，以此为准。",
    "You decided this offline differently from {who}; the server received {who}'s decision first, and it stands."],
};

function w(key) {
  return pick(WORDS[key]);
}

function heading(text) {
  return el("h2", { tabindex: "-1", class: "view-title" }, text);
}

function link(href, ...children) {
  return el("a", { href }, ...children);
}

function crumbs(href, text) {
  return el("nav", { class: "crumbs" }, link(href, text));
}

// A code's label in the language shown, from the schema of `type`.
function label(app, type, field, value) {
  const prop = latestSchema(app.schemas, type).schema?.properties?.[field] || {};
  return pick((prop["x-enum-labels"] || {})[value] || value);
}

function waitingChip(app, id) {
  const refused = app.sync.status().refused.find((r) => r.id === id);
  if (refused) return el("span", { class: "chip chip-refused", role: "alert" }, `${t("state_refused")}：${message(refused.reason)}`);
  return app.sync.outbox.pending[id] ? el("span", { class: "chip chip-waiting" }, t("state_waiting")) : null;
}

function docsOf(app, type) {
  return [...app.index.docs.values()].filter((d) => d.type === type && !d._deleted);
}

function householdText(app, id) {
  const h = app.index.get(id);
  if (!h) return w("household");
  return `${addressText(h.address)}${h.head_name ? ` · ${h.head_name}` : ""}`;
}

// A resident account's name, from their sign-up where the grid holds it.
function residentName(app, account) {
  return (app.index.get(`signup:${account}`) || {}).name || w("resident_unknown");
}

// --- the queue ---------------------------------------------------------------------------------

export function pendingCounts(app) {
  return {
    signups: docsOf(app, "signup").filter((d) => d.status === "pending").length,
    corrections: docsOf(app, "correction_request").filter((d) => d.status === "open").length,
  };
}

// The link on the grid screen, with what waits.
export function queueLink(app) {
  const { signups, corrections } = pendingCounts(app);
  return el("p", { class: "actions" }, el("a", { href: "#/residents", id: "residents-link" },
    `${w("residents_link")}（${signups + corrections}）`));
}

export function queueView(app) {
  const signups = docsOf(app, "signup")
    .filter((d) => d.status === "pending" || app.sync.outbox.pending[d._id])
    .sort((a, b) => String(a.received_at).localeCompare(String(b.received_at)));
  const corrections = docsOf(app, "correction_request")
    .filter((d) => d.status === "open" || app.sync.outbox.pending[d._id]);
  return [
    crumbs("#/", app.grid.name),
    heading(w("queue_title")),
    signups.length ? el("ul", { class: "list signups", id: "signup-list" }, signups.map((s) => el("li", {},
      link(`#/decide/${encodeURIComponent(s._id)}`,
        el("span", { class: "main" }, s.name),
        el("span", { class: "meta" }, s.address),
        el("span", { class: "chip" }, s.status === "pending" ? pick(matchLabel(app, s))
          : label(app, "signup", "status", s.status)),
        waitingChip(app, s._id)))))
      : el("p", { class: "empty" }, w("queue_empty")),
    el("h3", {}, w("corrections_title")),
    corrections.length ? el("ul", { class: "list corrections", id: "correction-list" }, corrections.map((c) => el("li", {},
      link(`#/correction/${encodeURIComponent(c._id)}`,
        el("span", { class: "main" }, householdText(app, c.household)),
        el("span", { class: "meta" }, c.changes.map((change) => fieldName(app, change)).join("、")),
        waitingChip(app, c._id)))))
      : el("p", { class: "empty" }, w("corrections_empty")),
  ];
}

function matchLabel(app, signup) {
  const prop = latestSchema(app.schemas, "signup").schema.properties.match.properties.status;
  const status = (signup.match || {}).status;
  return (prop["x-enum-labels"] || {})[status] || [status || "", status || ""];
}

// --- a sign-up ---------------------------------------------------------------------------------

function householdChoice(app, id, name, checked) {
  const inputId = `hh-${id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  return el("label", { class: "choice household-choice", for: inputId },
    el("input", { type: "radio", name, value: id, id: inputId, checked }),
    householdText(app, id));
}

function roleSelect(app, id) {
  const prop = latestSchema(app.schemas, "resident").schema.properties.role;
  return el("select", { id, required: true },
    el("option", { value: "" }, w("choose")),
    prop.enum.map((v) => el("option", { value: v }, pick(prop["x-enum-labels"][v]))));
}

// A screen the worker types into: a form, so the app's re-render on each synced change
// (app.js) leaves it alone, and Enter submits nothing by itself.
function workForm(...children) {
  const form = el("form", { class: "record-form" }, ...children);
  form.addEventListener("submit", (event) => event.preventDefault());
  return form;
}

function field(id, text, control, error = null) {
  return el("div", { class: "field" }, el("label", { for: id }, text), control, error);
}

async function saveAll(app, docs, error) {
  for (const doc of docs) {
    const problems = problemsOf(app, doc);
    if (problems.length) {
      error.textContent = problems.map((p) => message(p.message)).join("；");
      return false;
    }
  }
  try {
    for (const doc of docs) await app.sync.save(doc);
  } catch (err) {
    error.textContent = err.status === 409 ? message("这条记录刚被同步更新，请重新打开再处理 / This record was just "
      + "updated by a sync; open it again") : String(err.message || err);
    return false;
  }
  app.flash(t("saved"));
  return true;
}

const CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";

// Eight symbols without look-alikes, uniformly drawn (bytes above the last whole multiple of
// the alphabet are drawn again), as server/domain/activation.py makes them.
export function newCode() {
  const limit = 256 - (256 % CODE_ALPHABET.length);
  let code = "";
  while (code.length < 8) {
    for (const byte of crypto.getRandomValues(new Uint8Array(16))) {
      if (byte < limit && code.length < 8) code += CODE_ALPHABET[byte % CODE_ALPHABET.length];
    }
  }
  return code;
}

function newCodeDoc(app, household, role) {
  const code = newCode();
  const doc = { _id: `activation_code:${app.grid.code}-${code}`, type: "activation_code", schema_version: 1,
    grid: app.grid.code, created_by: app.me.name, household, code, created_at: deviceTime(), status: "active",
    device_time: deviceTime() };
  if (role) doc.role = role;
  return doc;
}

export function decideView(app, id) {
  const s = app.index.get(id);
  if (!s || s.type !== "signup") return [heading(t("not_found"))];
  const facts = [[w("typed_address"), s.address], [w("phone"), s.phone],
    [w("received"), formatTime(Date.parse(s.received_at))], [w("match"), pick(matchLabel(app, s))]];
  const top = [crumbs("#/residents", w("queue_title")), heading(s.name), waitingChip(app, id),
    el("dl", { class: "facts" }, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))];
  if (s.status !== "pending") {
    const decided = s.status === "activated" ? householdText(app, s.household) : s.decline_reason || "";
    return [...top, el("p", { class: "decided", role: "status" },
      `${label(app, "signup", "status", s.status)}${decided ? `：${decided}` : ""}`), overruled(app, id)];
  }
  const candidates = ((s.match || {}).candidates || []).filter((c) => app.index.get(c));
  const choices = el("div", { class: "choices", id: "household-choices" },
    candidates.map((c, i) => householdChoice(app, c, "household", i === 0 && candidates.length === 1)));
  const search = el("input", { type: "search", id: "household-search", autocomplete: "off",
    placeholder: t("search") });
  const found = el("div", { class: "choices", id: "household-found", "aria-live": "polite" });
  search.addEventListener("input", () => {
    const hits = search.value.trim() ? app.index.search(search.value, 10) : [];
    found.replaceChildren(...hits.filter((h) => !candidates.includes(h._id))
      .map((h) => householdChoice(app, h._id, "household", false)));
  });
  const role = roleSelect(app, "signup-role");
  const error = el("p", { class: "error", id: "signup-error", role: "alert" });
  const picked = () => (document.querySelector("input[name=household]:checked") || {}).value || "";
  const confirm = el("button", { type: "button", class: "primary", id: "signup-confirm" }, w("confirm"));
  const makeCode = el("button", { type: "button", id: "signup-make-code" }, w("make_code"));
  confirm.addEventListener("click", async () => {
    if (!picked()) return void (error.textContent = w("choose_household"));
    if (!role.value) return void (error.textContent = w("choose_role"));
    const now = deviceTime();
    const doc = { ...s, status: "activated", household: picked(), role: role.value, decided_by: app.me.name,
      decided_at: now, device_time: now };
    if (await saveAll(app, [doc], error)) location.hash = "#/residents";
  });
  makeCode.addEventListener("click", async () => {
    if (!picked()) return void (error.textContent = w("choose_household"));
    const doc = newCodeDoc(app, picked(), role.value);
    if (await saveAll(app, [doc], error)) location.hash = `#/code/${encodeURIComponent(doc._id)}`;
  });
  const reason = el("textarea", { id: "decline-reason", rows: "2", maxlength: "500" });
  const declineError = el("p", { class: "error", id: "decline-error", role: "alert" });
  const decline = el("button", { type: "button", id: "signup-decline" }, w("decline"));
  decline.addEventListener("click", async () => {
    if (!reason.value.trim()) return void (declineError.textContent = w("reason_needed"));
    const now = deviceTime();
    const doc = { ...s, status: "declined", decline_reason: reason.value.trim(), decided_by: app.me.name,
      decided_at: now, device_time: now };
    if (await saveAll(app, [doc], declineError)) location.hash = "#/residents";
  });
  return [
    ...top,
    workForm(
      el("fieldset", { class: "card" },
        el("legend", {}, w("household")),
        el("p", { class: "meta" }, candidates.length ? w("candidates") : w("no_candidates")),
        choices,
        field("household-search", w("find_household"), search),
        found),
      field("signup-role", w("role"), role),
      error,
      el("div", { class: "form-actions" }, confirm, makeCode),
      el("fieldset", { class: "card" }, el("legend", {}, w("decline")),
        field("decline-reason", w("decline_reason"), reason, declineError),
        el("div", { class: "form-actions" }, decline))),
  ];
}

// Two phones decided this record offline and the server kept the one it received first: the
// worker whose decision was not kept is told so, and by whom (resolution records).
function overruled(app, id) {
  const mine = app.index.resolutionsOn(id).some((r) => (r.fields || []).some((f) =>
    f.rule === "first_received" && (f.alternatives || []).some((a) => a.by === app.me.name)));
  if (!mine) return null;
  const doc = app.index.get(id) || {};
  return el("p", { class: "warn overruled", id: "overruled", role: "status" },
    tfw("overruled", { who: doc.decided_by || doc.answered_by || "" }));
}

function tfw(key, values) {
  return w(key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// --- activation codes --------------------------------------------------------------------------

const VALID_DAYS = 7;

function codeState(doc) {
  if (doc.used_by) return "used";
  if (doc.status === "revoked") return "revoked";
  const made = Date.parse(doc.created_at);
  return Number.isNaN(made) || Date.now() > made + VALID_DAYS * 86400000 ? "expired" : "active";
}

function shownCode(code) {
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

// What the QR holds: the app's activation screen with the code, so a phone's camera opens it.
export function activationUrl(code) {
  return new URL(`#/activate/${code}`, location.origin + location.pathname).href;
}

export function newCodeView(app, household) {
  const h = app.index.get(household);
  if (!h || h.type !== "household") return [heading(t("not_found"))];
  const role = roleSelect(app, "code-role");
  const error = el("p", { class: "error", id: "code-error", role: "alert" });
  const make = el("button", { type: "button", class: "primary", id: "code-make" }, w("make_code"));
  make.addEventListener("click", async () => {
    if (!role.value) return void (error.textContent = w("choose_role"));
    const doc = newCodeDoc(app, household, role.value);
    if (await saveAll(app, [doc], error)) location.hash = `#/code/${encodeURIComponent(doc._id)}`;
  });
  return [crumbs(`#/h/${encodeURIComponent(household)}`, t("back")), heading(w("make_code")),
    el("p", { class: "about" }, householdText(app, household)),
    workForm(field("code-role", w("role"), role), error, el("div", { class: "form-actions" }, make))];
}

export function codeView(app, id) {
  const doc = app.index.get(id);
  if (!doc || doc.type !== "activation_code") return [heading(t("not_found"))];
  const state = codeState(doc);
  const until = Date.parse(doc.created_at) + VALID_DAYS * 86400000;
  const error = el("p", { class: "error", id: "revoke-error", role: "alert" });
  const revoke = el("button", { type: "button", id: "code-revoke" }, w("revoke"));
  revoke.addEventListener("click", async () => {
    if (await saveAll(app, [{ ...doc, status: "revoked", device_time: deviceTime() }], error)) location.hash = `#/code/${encodeURIComponent(id)}`;
  });
  return [
    crumbs(`#/h/${encodeURIComponent(doc.household)}`, householdText(app, doc.household)),
    heading(w("code_title")),
    waitingChip(app, id),
    el("p", { class: `code-state chip chip-${state}`, id: "code-state" }, w(`code_state_${state}`)),
    state === "active" ? el("figure", { class: "code-card" },
      qrSvg(activationUrl(doc.code), `${w("qr_label")} ${shownCode(doc.code)}`),
      el("figcaption", {}, el("strong", { class: "code-text", id: "code-text" }, shownCode(doc.code)))) : null,
    el("dl", { class: "facts" },
      el("dt", {}, w("code_for")), el("dd", {}, householdText(app, doc.household)),
      doc.role ? [el("dt", {}, w("role")), el("dd", {}, label(app, "resident", "role", doc.role))] : null,
      el("dt", {}, w("valid_until")), el("dd", {}, formatTime(until))),
    state === "active" ? el("p", {}, w("code_help")) : null,
    error,
    state === "active" ? el("div", { class: "form-actions" }, revoke) : null,
  ];
}

// --- a household's residents and codes (on the household screen) ------------------------------

export function residentsSection(app, household) {
  const links = docsOf(app, "resident").filter((r) => r.household === household && r.status !== "removed");
  const codes = docsOf(app, "activation_code").filter((c) => c.household === household && codeState(c) === "active");
  return el("section", { class: "residents", "aria-label": w("residents_here") },
    el("h3", {}, w("residents_here")),
    links.length ? el("ul", { class: "list" }, links.map((r) => el("li", {},
      el("span", { class: "main" }, `${residentName(app, r.account)} · ${label(app, "resident", "role", r.role)}`),
      el("span", { class: "meta" }, label(app, "resident", "activation", r.activation)),
      waitingChip(app, r._id),
      el("span", { class: "row-actions" }, link(`#/resident-remove/${encodeURIComponent(r._id)}`, w("remove_resident")))))) : null,
    codes.length ? el("ul", { class: "list", "aria-label": w("codes_here") }, codes.map((c) => el("li", {},
      link(`#/code/${encodeURIComponent(c._id)}`, el("span", { class: "main" }, `${w("code_title")} ${shownCode(c.code)}`),
        el("span", { class: "meta" }, label(app, "resident", "role", c.role)))))) : null,
    el("div", { class: "actions" }, link(`#/newcode/${encodeURIComponent(household)}`, w("make_code"))));
}

export function removeResidentView(app, id) {
  const r = app.index.get(id);
  if (!r || r.type !== "resident") return [heading(t("not_found"))];
  const back = `#/h/${encodeURIComponent(r.household)}`;
  const reason = el("textarea", { id: "removed-reason", rows: "2", maxlength: "500", required: true });
  const error = el("p", { class: "error", id: "removed-error", role: "alert" });
  const form = el("form", { class: "record-form" },
    field("removed-reason", w("removed_reason"), reason, error),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "primary" }, w("remove_resident")),
      link(back, t("cancel"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!reason.value.trim()) return void (error.textContent = w("reason_needed"));
    const now = deviceTime();
    const doc = { ...r, status: "removed", removed_at: now, removed_reason: reason.value.trim(), device_time: now };
    if (await saveAll(app, [doc], error)) location.hash = back;
  });
  return [crumbs(back, t("back")), heading(`${w("remove_resident")}：${residentName(app, r.account)}`),
    el("p", { class: "about" }, householdText(app, r.household)), form];
}

// --- a correction request ----------------------------------------------------------------------

function fieldName(app, change) {
  const record = app.index.get(change.record);
  const type = record ? record.type : change.record.split(":")[0];
  const name = change.field.replace(/^\//, "").split("/")[0];
  const schema = record ? schemaFor(app.schemas, record) : latestSchema(app.schemas, type).schema;
  const who = record && record.type === "person" ? `${record.name} · ` : "";
  return `${who}${fieldLabel((schema?.properties || {})[name], name)}`;
}

function valueOf(app, record, field) {
  const name = field.replace(/^\//, "").split("/")[0];
  const value = record ? record[name] : undefined;
  if (value === undefined || value === "" || value === null) return w("empty_value");
  return label(app, record.type, name, value);
}

// The record with one accepted change placed as its field wants it (a number for a number;
// empty text removes an optional field), as server/domain/resident_queue.py apply_change.
export function applyChange(record, schema, field, proposed) {
  const name = field.replace(/^\//, "").split("/")[0];
  const prop = (schema.properties || {})[name] || {};
  const text = String(proposed).normalize("NFKC").trim();
  const changed = { ...record };
  if (text === "" && !(schema.required || []).includes(name)) {
    delete changed[name];
    return changed;
  }
  const number = Number(text);
  changed[name] = (prop.type === "integer" || prop.type === "number") && text !== "" && !Number.isNaN(number) ? number : text;
  return changed;
}

export function correctionView(app, id) {
  const c = app.index.get(id);
  if (!c || c.type !== "correction_request") return [heading(t("not_found"))];
  const top = [crumbs("#/residents", w("queue_title")), heading(w("correction_from")),
    el("p", { class: "about" }, householdText(app, c.household)), waitingChip(app, id),
    el("table", { class: "data changes", id: "correction-changes" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, w("household")), el("th", { scope: "col" }, w("now_value")),
        el("th", { scope: "col" }, w("proposed")))),
      el("tbody", {}, c.changes.map((change) => el("tr", {},
        el("th", { scope: "row" }, fieldName(app, change)),
        el("td", {}, valueOf(app, app.index.get(change.record), change.field)),
        el("td", {}, change.proposed || w("empty_value")))))),
    c.note ? el("p", { class: "note" }, `${w("resident_note")}：${c.note}`) : null];
  if (c.status !== "open") {
    return [...top, el("p", { class: "decided", role: "status" }, `${label(app, "correction_request", "status", c.status)}：${c.answer || ""}`),
      overruled(app, id)];
  }
  const answer = el("textarea", { id: "correction-answer", rows: "2", maxlength: "1000" });
  const error = el("p", { class: "error", id: "correction-error", role: "alert" });
  const answered = (status) => {
    const now = deviceTime();
    return { ...c, status, answer: answer.value.trim(), answered_by: app.me.name, answered_at: now, device_time: now };
  };
  const accept = el("button", { type: "button", class: "primary", id: "correction-accept" }, w("accept"));
  accept.addEventListener("click", async () => {
    if (!answer.value.trim()) return void (error.textContent = w("answer_needed"));
    const edited = new Map();
    for (const change of c.changes) {
      const before = edited.get(change.record) || app.index.get(change.record);
      if (!before) return void (error.textContent = t("not_found"));
      edited.set(change.record, applyChange(before, schemaFor(app.schemas, before), change.field, change.proposed));
    }
    const records = [...edited.entries()].map(([rid, after]) => withEdits(app.index.get(rid),
      { ...after, device_time: deviceTime() }, { types: app.schemas.types, by: app.me.name, appFilled: SYSTEM }));
    if (await saveAll(app, [...records, answered("accepted")], error)) location.hash = "#/residents";
  });
  const refuse = el("button", { type: "button", id: "correction-decline" }, w("refuse"));
  refuse.addEventListener("click", async () => {
    if (!answer.value.trim()) return void (error.textContent = w("answer_needed"));
    if (await saveAll(app, [answered("declined")], error)) location.hash = "#/residents";
  });
  return [...top, workForm(field("correction-answer", w("answer"), answer, error),
    el("div", { class: "form-actions" }, accept, refuse))];
}
