// The supervisor's queue of conflicts: the fields the server's resolver could not decide (two
// people changed the same field at the same time), each shown with every side's value, who wrote
// it and when the server received it, to be decided one record at a time. The queue lives on the
// server (`GET /api/conflicts`, `POST /api/conflicts/decide`) and spans the supervisor's grids,
// so this screen needs the network; it says so when there is none.

import { callApi } from "./api.js";
import { el } from "./dom.js";
import { cityTime, fieldLabel, message, t } from "./i18n.js";
import { fieldProblems } from "./validate.js";
import { addressText, gridName, latestSchema, typeLabel, valueText } from "./views.js";

const DECIDERS = new Set(["supervisor", "admin"]);
const OTHER = "other";

export function canDecide(me) {
  return Boolean(me) && DECIDERS.has(me.role);
}

function propOf(schemas, type, field) {
  return ((latestSchema(schemas, type).schema || {}).properties || {})[field] || {};
}

function receivedText(iso) {
  const ms = Date.parse(iso || "");
  return ms ? cityTime(ms, { date: true }) : ""; // 北京时间, whatever the phone's zone
}

// A value typed by the supervisor, read as the field's schema types it: numbers and yes/no where
// the field wants them, a code where its label was typed, a list split at commas.
export function parseTyped(prop, text) {
  const raw = text.trim();
  const types = [].concat(prop.type || []);
  const codeOf = (p, word, labels = (p || {})["x-enum-labels"] || {}) => {
    if (!p || !Array.isArray(p.enum)) return word;
    const hit = p.enum.find((v) => String(v) === word ||
      [].concat(labels[v] || []).some((l) => String(l).toLowerCase() === word.toLowerCase()));
    return hit === undefined ? word : hit;
  };
  if (prop.enum) return codeOf(prop, raw);
  if (types.includes("array")) return raw.split(/[,，、;；\s]+/).filter(Boolean)
    .map((w) => codeOf(prop.items, w, prop["x-enum-labels"] || (prop.items || {})["x-enum-labels"]));
  if ((types.includes("integer") || types.includes("number")) && /^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  if (types.includes("boolean")) {
    if (["true", "是", "yes"].includes(raw.toLowerCase())) return true;
    if (["false", "否", "no"].includes(raw.toLowerCase())) return false;
  }
  return raw;
}

// One undecided field: a radio per side, and one to type a value instead.
function fieldChoice(app, conflict, f, key) {
  const prop = propOf(app.schemas, conflict.record_type, f.field);
  const label = fieldLabel(prop, f.field);
  const sides = [f.chosen, ...(f.alternatives || [])].filter(Boolean);
  const name = `${key}-${f.field}`;
  const typedId = `${name}-typed`;
  const typed = el("input", { type: "text", id: typedId, autocomplete: "off", class: "typed" });
  const otherRadio = el("input", { type: "radio", name, value: OTHER, id: `${name}-other` });
  typed.addEventListener("input", () => { otherRadio.checked = true; });
  const error = el("p", { class: "error", id: `${name}-error` });
  const fieldset = el("fieldset", { class: "decision", "data-field": f.field, "aria-describedby": error.id },
    el("legend", {}, label),
    el("div", { class: "sides-grid" }, sides.map((side, i) => {
      const id = `${name}-${i}`;
      const received = receivedText(side.received_at);
      const about = [(side.by && (conflict.people || {})[side.by]) || side.by || t("someone"), received && `${t("received_at")} ${received}`, i === 0 && t("provisional")];
      return el("label", { class: "side-choice", for: id },
        el("input", { type: "radio", name, value: String(i), id }),
        el("span", { class: "value" },
          valueText(app.schemas, conflict.record_type, f.field, side.value, { missing: side.missing })),
        el("span", { class: "meta" }, about.filter(Boolean).join(" · ")));
    })),
    el("div", { class: "typed-choice" },
      el("label", { class: "choice", for: otherRadio.id }, otherRadio, " ", t("type_value")),
      el("label", { class: "visually-hidden", for: typedId }, `${t("type_value")}：${label}`),
      typed),
    error);
  // The decision for this field, or a problem to show at it.
  const decide = () => {
    const picked = fieldset.querySelector(`input[name="${CSS.escape(name)}"]:checked`);
    if (!picked) return { problem: t("choose_each") };
    if (picked.value === OTHER) {
      if (!typed.value.trim()) return { problem: t("type_something") };
      const value = parseTyped(prop, typed.value);
      const problems = fieldProblems(conflict.record_type, f.field, value);
      if (problems.length) return { problem: problems.map((p) => message(p.message)).join("；") };
      return { decision: { field: f.field, value } };
    }
    const side = sides[Number(picked.value)];
    // A masked value (no unmask right) cannot be sent back: the side is named by its revision.
    if (side.masked) return { decision: { field: f.field, rev: side.rev } };
    return { decision: side.missing ? { field: f.field } : { field: f.field, value: side.value } };
  };
  return { fieldset, error, decide };
}

function conflictCard(app, conflict, n, reload) {
  const key = `c${n}`;
  const titleId = `${key}-title`;
  const undecided = (conflict.fields || []).filter((f) => f.undecided !== false);
  const choices = undecided.map((f) => fieldChoice(app, conflict, f, key));
  const status = el("p", { class: "error form-status", role: "alert" });
  const button = el("button", { type: "submit", class: "primary" }, t("decide"));
  const form = el("form", { class: "record-form conflict-form", novalidate: "", "aria-labelledby": titleId },
    ...choices.map((c) => c.fieldset), status, el("div", { class: "form-actions" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    const decisions = [];
    let problem = false;
    for (const c of choices) {
      const { decision, problem: text } = c.decide();
      c.error.textContent = text || "";
      c.fieldset.classList.toggle("has-error", Boolean(text));
      if (text) problem = true;
      else decisions.push(decision);
    }
    if (problem) return;
    button.disabled = true;
    status.textContent = t("deciding");
    let answer;
    try {
      answer = await callApi("/api/conflicts/decide", { method: "POST",
        body: JSON.stringify({ grid: conflict.grid, id: conflict.id, decisions }) });
    } catch {
      status.textContent = t("needs_network");
      button.disabled = false;
      return;
    }
    if (answer.ok) {
      app.flash(t("decided"));
      await reload();
      return;
    }
    const reason = message(answer.body.reason || answer.body.error || String(answer.status));
    if (answer.status === 409) {
      await reload(`${t("changed_meanwhile")}：${reason}`);
      return;
    }
    status.textContent = reason;
    button.disabled = false;
  });
  const record = conflict.grid === app.grid?.code ? app.index?.get(conflict.record) : null;
  const household = record && (record.type === "household" ? record._id : record.household);
  return el("section", { class: "card conflict", "aria-labelledby": titleId, "data-id": conflict.id },
    // The record by its address or name when the phone holds it, never by its key.
    el("h3", { id: titleId }, [typeLabel(app.schemas, conflict.record_type),
      record && (record.address ? addressText(record.address) : record.name)].filter(Boolean).join(" · ")),
    el("p", { class: "meta" }, [gridName(app, conflict.grid),
      conflict.resolved_at && `${t("resolved_at")} ${receivedText(conflict.resolved_at)}`].filter(Boolean).join(" · ")),
    household ? el("p", {}, el("a", { href: `#/h/${encodeURIComponent(household)}` }, t("open_household"))) : null,
    form);
}

// The screen: its nodes at once, the queue filled in when the server answers.
export function conflictsView(app) {
  const box = el("div", { id: "conflicts", "aria-live": "polite", "aria-busy": "true" },
    el("p", { class: "empty" }, t("loading")));
  const notice = el("p", { class: "notice", role: "status" });
  const show = (...nodes) => {
    box.replaceChildren(...nodes);
    box.setAttribute("aria-busy", "false");
  };
  const load = async (note = "") => {
    notice.textContent = note;
    let answer;
    try {
      answer = await callApi("/api/conflicts");
    } catch {
      show(el("p", { class: "empty needs-network" }, t("needs_network")));
      return;
    }
    if (answer.status === 404) return show(el("p", { class: "empty" }, t("conflicts_unavailable")));
    if (answer.status === 401) return show(el("p", { class: "empty" }, t("login_again")));
    if (answer.status === 403) return show(el("p", { class: "empty" }, t("supervisors_only")));
    if (!answer.ok) return show(el("p", { class: "error", role: "alert" }, message(answer.body.reason || String(answer.status))));
    const conflicts = Array.isArray(answer.body.conflicts) ? answer.body.conflicts : [];
    if (conflicts.length === 0) return show(el("p", { class: "empty" }, t("no_conflicts")));
    const people = answer.body.people || {}; // logins -> full names (姓名)
    show(...conflicts.map((c, n) => conflictCard(app, { ...c, people }, n, load)));
  };
  if (!canDecide(app.me)) {
    show(el("p", { class: "empty" }, t("supervisors_only")));
  } else {
    load();
  }
  return [
    el("nav", { class: "crumbs" }, el("a", { href: "#/" }, app.grid ? app.grid.name : t("back"))),
    el("h2", { tabindex: "-1", class: "view-title" }, t("conflict_queue")),
    el("p", {}, t("conflicts_help")),
    notice,
    box,
  ];
}
