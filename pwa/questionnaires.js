// Questionnaires (问卷调查), the supervisor's side: the list, the builder (questions of six
// kinds, required or not, skip logic on an earlier question, or imported from an XLSForm
// workbook), publishing, and the results by question with ECharts charts, by grid with the
// small-count rule, and the XLSX export. They live on the server (server/web/questionnaires.py):
// these screens need the network and say so. ECharts (vendor/echarts-5.6.0.min.mjs, Apache-2.0)
// is loaded by the results screen alone, never precached: a megabyte no worker's phone needs.

import { callApi, Unreachable } from "./api.js";
import { el } from "./dom.js";
import { message, t, tf } from "./i18n.js";
import { check } from "./resident/questionnaires.js";

const AUTHORS = new Set(["supervisor", "admin"]);
const KINDS = ["single", "multiple", "text", "number", "date", "rating"];
const LEVELS = ["city", "street", "community", "grid"];
const ECHARTS = "vendor/echarts-5.6.0.min.mjs";

export function canManageQuestionnaires(me) {
  return Boolean(me) && AUTHORS.has(me.role);
}

export function questionnairesLink(me) {
  return canManageQuestionnaires(me) ? el("a", { href: "#/questionnaires", id: "questionnaires-link" }, t("q_questionnaires")) : null;
}

function reasonOf(answer) {
  return message(answer.body.reason || String(answer.status));
}

function offline(err) {
  return el("p", { class: "error", role: "alert" }, err instanceof Unreachable ? t("qs_offline") : String(err.message || err));
}

// `#/questionnaires`, `#/questionnaires/new`, `#/questionnaires/results/<key>`.
export function questionnairesView(app, what, key) {
  if (!canManageQuestionnaires(app.me)) return [el("p", { class: "empty" }, t("not_found"))];
  if (what === "new") return builderView();
  if (what === "results" && key) return resultsView(key);
  return listView();
}

function listView() {
  const box = el("div", { id: "qs-list", "aria-busy": "true" }, el("p", { class: "hint" }, t("loading")));
  (async () => {
    try {
      const answer = await callApi("/api/questionnaires");
      if (!answer.ok) throw new Error(reasonOf(answer));
      const docs = answer.body.questionnaires || [];
      box.replaceChildren(docs.length ? el("ul", { class: "list" }, docs.map((d) => el("li", { "data-key": d.key },
        el("a", { href: `#/questionnaires/results/${d.key}` }, el("span", { class: "main" }, d.title),
          el("span", { class: "meta" }, `v${d.version} · ${d.status}`))))) : el("p", { class: "empty" }, t("qs_none")));
    } catch (err) {
      box.replaceChildren(offline(err));
    }
    box.removeAttribute("aria-busy");
  })();
  return [el("h2", { class: "view-title", tabindex: "-1" }, t("q_questionnaires")),
    el("p", { class: "actions" }, el("a", { href: "#/questionnaires/new", id: "qs-new", class: "button primary" }, t("qs_new"))),
    box];
}

// --- the builder ----------------------------------------------------------------------------------

function kindSelect(value) {
  return el("select", { class: "qs-kind" }, KINDS.map((k) => el("option", { value: k, selected: k === value ? "" : null }, t(`qs_kind_${k}`))));
}

function questionBlock(question, index, onChange) {
  const choices = el("textarea", { class: "qs-choices", rows: "3", placeholder: t("qs_choices_hint") },
    (question.choices || []).map((c) => c.label).join("\n"));
  const when = el("select", { class: "qs-if" }, el("option", { value: "" }, t("qs_always")));
  const whenValue = el("input", { class: "qs-if-value", placeholder: t("qs_if_value"), value: question.show_if?.value ?? "" });
  const block = el("fieldset", { class: "qs-question", "data-index": String(index) },
    el("legend", {}, tf("qs_question_n", { n: index + 1 })),
    el("label", {}, t("qs_label"), el("input", { class: "qs-label", value: question.label || "", maxlength: "200" })),
    el("label", {}, t("qs_kind"), kindSelect(question.kind || "single")),
    el("label", { class: "choice" }, el("input", { type: "checkbox", class: "qs-required", checked: question.required ? "" : null }), ` ${t("qs_required")}`),
    el("label", { class: "qs-choices-label" }, t("qs_choices"), choices),
    el("label", {}, t("qs_show_if"), when, whenValue));
  block.dataset.showIf = question.show_if?.question || "";
  block.addEventListener("change", onChange);
  return block;
}

// The questions as the server takes them, read from the blocks: names q1, q2...; a choice's
// value is its number; a skip rule's value is an earlier choice's value by its label.
export function readQuestions(blocks) {
  const questions = [];
  blocks.forEach((block, n) => {
    const kind = block.querySelector(".qs-kind").value;
    const question = { name: `q${n + 1}`, label: block.querySelector(".qs-label").value.trim(), kind,
      required: block.querySelector(".qs-required").checked };
    if (kind === "single" || kind === "multiple") {
      question.choices = block.querySelector(".qs-choices").value.split("\n").map((s) => s.trim()).filter(Boolean)
        .map((label, i) => ({ value: `c${i + 1}`, label }));
    }
    if (kind === "number") question.integer = false;
    const target = block.querySelector(".qs-if").value;
    const earlier = questions.find((q) => q.name === target);
    if (earlier) {
      const typed = block.querySelector(".qs-if-value").value.trim();
      const choice = (earlier.choices || []).find((c) => c.label === typed || c.value === typed);
      const value = choice ? choice.value : ["number", "rating"].includes(earlier.kind) ? Number(typed) : typed;
      question.show_if = { question: target, op: "=", value };
    }
    questions.push(question);
  });
  return questions;
}

function builderView() {
  const list = el("div", { id: "qs-questions" });
  const problems = el("p", { class: "error", id: "qs-problems", role: "alert" });
  const refreshIfs = () => {
    const blocks = [...list.children];
    blocks.forEach((block, n) => {
      const select = block.querySelector(".qs-if");
      const kept = select.value || block.dataset.showIf;
      select.replaceChildren(el("option", { value: "" }, t("qs_always")), ...blocks.slice(0, n).map((earlier, m) =>
        el("option", { value: `q${m + 1}`, selected: kept === `q${m + 1}` ? "" : null },
          earlier.querySelector(".qs-label").value || tf("qs_question_n", { n: m + 1 }))));
      block.querySelector(".qs-choices-label").hidden = !["single", "multiple"].includes(block.querySelector(".qs-kind").value);
    });
  };
  const add = (question = { kind: "single" }) => {
    list.append(questionBlock(question, list.children.length, refreshIfs));
    refreshIfs();
  };
  const addButton = el("button", { type: "button", id: "qs-add" }, t("qs_add"));
  addButton.addEventListener("click", () => add());
  const file = el("input", { type: "file", id: "qs-xlsform", accept: ".xlsx" });
  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    if (!chosen) return;
    const bytes = new Uint8Array(await chosen.arrayBuffer());
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    try {
      const answer = await callApi("/api/questionnaires/xlsform", { method: "POST", body: JSON.stringify({ xlsx: btoa(text) }) });
      if (!answer.ok) throw new Error(reasonOf(answer));
      list.replaceChildren();
      if (answer.body.draft.title) form.elements.title.value = answer.body.draft.title;
      for (const q of answer.body.draft.questions) add(q);
      problems.textContent = "";
    } catch (err) {
      problems.textContent = err instanceof Unreachable ? t("qs_offline") : err.message;
    }
  });
  const level = el("select", { name: "level", id: "qs-level" }, LEVELS.map((l) => el("option", { value: l }, t(`qs_level_${l}`))));
  const form = el("form", { id: "qs-form", "data-keep": "" },
    el("label", {}, t("qs_title"), el("input", { name: "title", id: "qs-title", maxlength: "60", required: "" })),
    el("label", {}, t("qs_description"), el("textarea", { name: "description", rows: "2" })),
    el("label", {}, t("qs_audience"), level, el("input", { name: "codes", id: "qs-codes", placeholder: t("qs_codes_hint") })),
    el("label", {}, t("qs_per"), el("select", { name: "per", id: "qs-per" },
      el("option", { value: "household" }, t("q_per_household")), el("option", { value: "resident" }, t("q_per_resident")))),
    el("label", { class: "choice" }, el("input", { type: "checkbox", name: "anonymous", id: "qs-anonymous" }), ` ${t("q_anonymous")}`),
    el("label", {}, t("qs_closes"), el("input", { type: "datetime-local", name: "closes", id: "qs-closes", required: "" })),
    el("label", {}, t("qs_import"), file),
    list, el("p", { class: "actions" }, addButton),
    problems,
    el("p", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "qs-publish" }, t("qs_publish"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const questions = readQuestions([...list.children]);
    const closes = new Date(form.elements.closes.value);
    const codes = form.elements.codes.value.split(/[,，\s]+/).filter(Boolean);
    const draft = { title: form.elements.title.value.trim(), audience: { level: level.value, codes: level.value === "city" ? [] : codes },
      per: form.elements.per.value, anonymous: form.elements.anonymous.checked,
      closes_at: Number.isNaN(closes.getTime()) ? "" : closes.toISOString(), questions };
    if (level.value === "city") delete draft.audience.codes;
    if (form.elements.description.value.trim()) draft.description = form.elements.description.value.trim();
    check(questions, {}); // the same skip logic the residents' phones run: a broken rule throws here
    try {
      const answer = await callApi("/api/questionnaires", { method: "POST", body: JSON.stringify(draft) });
      if (!answer.ok) throw new Error(reasonOf(answer));
      location.hash = `#/questionnaires/results/${answer.body.questionnaire.key}`;
    } catch (err) {
      problems.textContent = err instanceof Unreachable ? t("qs_offline") : err.message;
    }
  });
  add();
  return [el("h2", { class: "view-title", tabindex: "-1" }, t("qs_new")), form];
}

// --- results ------------------------------------------------------------------------------------

function loadCharts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  return new Promise((resolve, reject) => {
    const script = el("script", { src: ECHARTS });
    script.addEventListener("load", () => resolve(window.echarts));
    script.addEventListener("error", () => reject(new Error(t("qs_charts_failed"))));
    document.head.append(script);
  });
}

function labelsOf(question, counts) {
  const named = Object.fromEntries((question.choices || []).map((c) => [c.value, c.label]));
  return Object.keys(counts).map((k) => named[k] || k);
}

function chartFor(echarts, node, question, figure) {
  const counts = figure.counts || {};
  const chart = echarts.init(node, null, { renderer: "svg", height: 220 });
  chart.setOption({ animation: false, grid: { left: 40, right: 10, top: 10, bottom: 30 },
    xAxis: { type: "category", data: labelsOf(question, counts) }, yAxis: { type: "value", minInterval: 1 },
    series: [{ type: "bar", data: Object.values(counts).map((v) => (v === null ? 0 : v)),
      label: { show: true, position: "top", formatter: (p) => (Object.values(counts)[p.dataIndex] === null ? "<5" : p.value) } }] });
}

function resultsView(key) {
  const box = el("div", { id: "qs-results", "aria-busy": "true" }, el("p", { class: "hint" }, t("loading")));
  (async () => {
    try {
      const answer = await callApi(`/api/questionnaires/${key}/results?level=grid`);
      if (!answer.ok) throw new Error(reasonOf(answer));
      const { questionnaire: doc, results } = answer.body;
      const parts = [el("h3", {}, doc.title),
        el("p", { class: "meta", id: "qs-answers", "data-count": String(results.answers) }, tf("qs_answers", { n: results.answers })),
        el("p", { class: "actions" }, el("a", { href: `/api/questionnaires/${key}/export`, id: "qs-export", download: "" }, t("qs_export")))];
      const charts = [];
      for (const question of doc.questions) {
        const figure = results.questions[question.name] || {};
        const node = el("div", { class: "qs-chart", "data-name": question.name });
        parts.push(el("section", { class: "card" }, el("h4", {}, question.label),
          el("p", { class: "meta" }, tf("qs_n", { n: figure.n ?? "<5" })), figure.counts ? node : null));
        if (figure.counts) charts.push([node, question, figure]);
      }
      parts.push(el("h4", {}, t("qs_by_grid")), el("table", { id: "qs-areas" },
        el("tr", {}, el("th", {}, t("qs_grid")), el("th", {}, t("qs_answer_count"))),
        (results.areas || []).map((a) => el("tr", { "data-code": a.code },
          el("td", {}, a.code), el("td", {}, a.withheld ? t("qs_withheld") : String(a.answers))))));
      box.replaceChildren(...parts);
      try {
        const echarts = await loadCharts();
        for (const [node, question, figure] of charts) chartFor(echarts, node, question, figure);
        box.dataset.charts = String(charts.length);
      } catch (err) {
        box.append(el("p", { class: "hint" }, err.message));
      }
    } catch (err) {
      box.replaceChildren(offline(err));
    }
    box.removeAttribute("aria-busy");
  })();
  return [el("p", {}, el("a", { href: "#/questionnaires" }, t("back"))), el("h2", { class: "view-title", tabindex: "-1" }, t("qs_results")), box];
}
