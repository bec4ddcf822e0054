// Questionnaires (问卷调查), offline: the questionnaires addressed to the resident's household
// (synced as notices are), a form per questionnaire whose skip logic follows the answers as
// they are typed, and the answer queued on the phone (outbox.js) with the phone's own request
// id, sent when the network is there. The checks here are the server's
// (server/domain/questionnaires.py), so a mistake is shown at its field before anything is
// queued; the server decides whether the answer counts (the first of the household it
// receives) and its word is kept on the phone: 已提交, or 已由家人填写.

import { el } from "../dom.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { keptJson } from "./apicopy.js";
import { backLink, heading } from "./ui.js";

const TOLD = "linli-questionnaire-told";
const DATE = /^\d{4}-\d{2}-\d{2}$/;

function keyOf(doc) {
  return String(doc.key || "");
}

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- the rules, as the server states them -----------------------------------------------------

// Whether `question` is shown, given the answers kept so far and which questions are shown.
export function shown(question, answers, visible) {
  const rule = question.show_if;
  if (!rule) return true;
  if (!visible[rule.question] || !(rule.question in answers)) return rule.op === "!=" && Boolean(visible[rule.question]);
  const given = answers[rule.question];
  const equal = Array.isArray(given) ? given.includes(rule.value) : given === rule.value;
  return rule.op === "=" ? equal : !equal;
}

function empty(value) {
  return value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length);
}

// One question's problem, in the server's words (zh / en), or "".
export function valueProblem(question, value) {
  const label = `“${question.label}”`;
  const values = (question.choices || []).map((c) => c.value);
  const say = (zh, en) => `${label}${zh} / ${label} ${en}`;
  if (question.kind === "single" && !values.includes(value)) return say("应选一个给出的选项", "must be one of its choices");
  if (question.kind === "multiple" && (!Array.isArray(value) || value.some((v) => !values.includes(v)))) {
    return say("应选给出的选项（不重复）", "must be some of its choices, each once");
  }
  if (question.kind === "text" && [...String(value).normalize("NFKC").trim()].length > 2000) {
    return `${label}太长，最多 2000 个字 / ${label} is too long (at most 2000 characters)`;
  }
  if (question.kind === "number") {
    if (typeof value !== "number" || !Number.isFinite(value)) return say("应为数字", "must be a number");
    if (question.integer && !Number.isInteger(value)) return say("应为整数", "must be a whole number");
    const low = question.min ?? null;
    const high = question.max ?? null;
    if ((low !== null && value < low) || (high !== null && value > high)) {
      return say(`应在 ${low ?? "…"} 到 ${high ?? "…"} 之间`, `must be between ${low ?? "…"} and ${high ?? "…"}`);
    }
  }
  if (question.kind === "date" && (!DATE.test(String(value)) || Number.isNaN(Date.parse(`${value}T00:00:00Z`))
      || new Date(`${value}T00:00:00Z`).toISOString().slice(0, 10) !== value)) {
    return say("应为日期（年-月-日）", "must be a date (YYYY-MM-DD)");
  }
  if (question.kind === "rating" && !(Number.isInteger(value) && value >= 1 && value <= 5)) {
    return say("应为 1 到 5 分", "must be a rating from 1 to 5");
  }
  return "";
}

// The answers kept (hidden questions' dropped), which questions are shown, and the problems by
// question name.
export function check(questions, answers) {
  const kept = {};
  const visible = {};
  const problems = {};
  for (const question of questions) {
    visible[question.name] = shown(question, kept, visible);
    const value = answers[question.name];
    if (!visible[question.name] || empty(value)) {
      if (visible[question.name] && question.required) {
        problems[question.name] = `“${question.label}”为必答题 / “${question.label}” must be answered`;
      }
      continue;
    }
    const problem = valueProblem(question, value);
    if (problem) problems[question.name] = problem;
    else kept[question.name] = value;
  }
  return { kept, visible, problems };
}

// --- what the phone knows of each questionnaire ------------------------------------------------

function toldAll() {
  return keptJson(TOLD);
}

// The server's answer to an answer sent (kept on this phone: a household's answer is not the
// resident's own record, so no synced document tells it).
export function rememberTold(item, reply) {
  const all = toldAll();
  all[`${item.shown.account}:${item.shown.key}`] = { status: reply.body.status, told: reply.body.told || "" };
  localStorage.setItem(TOLD, JSON.stringify(all));
}

export function questionnaires(store) {
  return [...store.docs.values()].filter((d) => d.type === "questionnaire" && d.status === "published")
    .sort((a, b) => String(b.published_at).localeCompare(String(a.published_at)));
}

// Where the resident stands: queued (待发送), refused with its reason, or what the server said.
export function standing(store, doc) {
  const queued = store.outbox.items.filter((i) => i.kind === "questionnaire" && i.shown.key === keyOf(doc));
  const last = queued[queued.length - 1];
  if (last?.refused) return { status: "refused", text: message(last.refused.reason) };
  if (last) return { status: "pending", text: t("q_pending") };
  const told = toldAll()[`${store.me.name}:${keyOf(doc)}`];
  if (told) return { status: told.status, text: told.status === "counted" ? t("q_counted") : message(told.told) };
  const mine = store.docs.get(`allocation:questionnaire.${keyOf(doc)}:${store.me.name}`);
  if (mine?.status === "confirmed") return { status: "counted", text: t("q_counted") };
  return null;
}

function chip(state) {
  if (!state) return el("span", { class: "chip chip-unread" }, t("q_open"));
  const kind = state.status === "counted" ? "chip-visited" : state.status === "pending" ? "chip-waiting" : "chip-refused";
  return el("span", { class: `chip ${kind}`, "data-status": state.status }, state.text);
}

export function questionnairesView(app) {
  const { store } = app.resident;
  const list = questionnaires(store);
  return [
    backLink("#/"),
    heading(t("q_questionnaires")),
    el("p", { class: "hint", role: "status", id: "q-count" }, list.length ? tf("q_count", { n: list.length }) : t("q_none")),
    list.length ? el("ul", { class: "list", id: "q-list" }, list.map((doc) => el("li", { "data-id": doc._id },
      el("a", { href: `#/questionnaire/${encodeURIComponent(doc._id)}` },
        el("span", { class: "main" }, doc.title), chip(standing(store, doc)),
        el("span", { class: "meta" }, tf("q_closes", { time: cityTime(Date.parse(doc.closes_at), { date: true }) })))))) : null,
  ];
}

// --- the form ----------------------------------------------------------------------------------

function field(question) {
  const name = `q-${question.name}`;
  const choices = question.choices || [];
  if (question.kind === "single" || question.kind === "multiple") {
    const type = question.kind === "single" ? "radio" : "checkbox";
    return el("fieldset", { class: "choices" }, el("legend", {}, question.label),
      choices.map((c) => el("label", { class: "choice" },
        el("input", { type, name, value: c.value }), ` ${c.label}`)));
  }
  if (question.kind === "rating") {
    return el("fieldset", { class: "choices rating" }, el("legend", {}, question.label),
      [1, 2, 3, 4, 5].map((n) => el("label", { class: "choice" }, el("input", { type: "radio", name, value: String(n) }), ` ${n}`)));
  }
  const attrs = { id: name, name };
  if (question.kind === "number") Object.assign(attrs, { type: "number", step: question.integer ? "1" : "any", inputmode: "decimal" });
  if (question.kind === "date") attrs.type = "date";
  const input = question.kind === "text" ? el("textarea", { ...attrs, rows: "3", maxlength: "2000" }) : el("input", attrs);
  return el("label", { for: name }, question.label, input);
}

function read(form, question) {
  const name = `q-${question.name}`;
  if (question.kind === "multiple") return [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
  if (question.kind === "single") return form.querySelector(`input[name="${name}"]:checked`)?.value;
  if (question.kind === "rating") {
    const picked = form.querySelector(`input[name="${name}"]:checked`);
    return picked ? Number(picked.value) : undefined;
  }
  const raw = form.elements[name]?.value ?? "";
  if (question.kind === "number") return raw === "" ? undefined : Number(raw);
  return raw;
}

export function questionnaireView(app, id) {
  const { store, sync } = app.resident;
  const doc = store.docs.get(id);
  if (!doc || doc.type !== "questionnaire") return [backLink("#/questionnaires"), heading(t("not_found"))];
  const state = standing(store, doc);
  const status = el("p", { class: "hint", id: "q-status", role: "status", "data-status": state?.status || "" }, state?.text || "");
  const head = [backLink("#/questionnaires", t("q_questionnaires")), heading(doc.title),
    doc.description ? el("p", {}, doc.description) : null,
    el("p", { class: "meta" }, [tf("q_closes", { time: cityTime(Date.parse(doc.closes_at), { date: true }) }),
      t(doc.per === "household" ? "q_per_household" : "q_per_resident"), doc.anonymous ? t("q_anonymous") : t("q_named")].join(" · ")),
    status];
  if (state && state.status !== "refused") return head;
  const questions = doc.questions || [];
  const blocks = questions.map((q) => el("div", { class: "question", "data-name": q.name },
    field(q), el("p", { class: "field-error", id: `q-error-${q.name}`, role: "alert" })));
  const send = el("button", { type: "submit", class: "primary", id: "q-send" }, t("q_send"));
  const form = el("form", { id: "q-form", "data-keep": "" }, blocks, el("div", { class: "actions" }, send));
  const answers = () => Object.fromEntries(questions.map((q) => [q.name, read(form, q)]));
  const refresh = (showErrors) => {
    const found = check(questions, answers());
    blocks.forEach((block, n) => {
      const name = questions[n].name;
      block.hidden = !found.visible[name];
      block.querySelector(".field-error").textContent = showErrors ? message(found.problems[name] || "") : "";
    });
    return found;
  };
  form.addEventListener("input", () => refresh(false));
  form.addEventListener("change", () => refresh(false));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const found = refresh(true);
    if (Object.keys(found.problems).length) {
      form.querySelector(".field-error:not(:empty)")?.closest(".question")?.querySelector("input, textarea")?.focus();
      return;
    }
    send.disabled = true;
    const body = { request: randomHex(12), version: doc.version, answers: found.kept };
    if (doc.anonymous) body.secret_key = randomHex(32);
    await sync.send({ kind: "questionnaire", key: `questionnaire:${keyOf(doc)}:${Date.now()}`,
      path: `/api/questionnaires/${keyOf(doc)}/answers`, body,
      shown: { key: keyOf(doc), account: store.me.name, title: doc.title } });
    location.hash = "#/questionnaires";
  });
  setTimeout(() => refresh(false));
  return [...head, form];
}
