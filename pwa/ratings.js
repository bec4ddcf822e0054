// The red and black list of property companies (红黑榜, docs/fees.md "Ratings"), the staff's
// side: supervisors and the admin see a period's lists with the reasons that put each company
// there, every company's score, credit grade and public answer; a property company sees its
// own score and parts and answers the period once, publicly. The board is the server's
// (GET /api/fees/ratings/board): this screen needs the network and says so.

import { callApi, Unreachable } from "./api.js";
import { el } from "./dom.js";
import { cityTime, message, t, tf } from "./i18n.js";

const READERS = new Set(["supervisor", "admin", "property"]);
const PARTS = ["ratings", "complaints", "handling"];
const PERIOD = /^20[0-9]{2}(-(0[1-9]|1[0-2]|Q[1-4]))?$/;

export function canSeeRatings(me) {
  return Boolean(me) && READERS.has(me.role);
}

export function ratingsLink(me) {
  return canSeeRatings(me) ? el("a", { href: "#/ratings", id: "ratings-link" }, t("rb_link")) : null;
}

// The quarter before the current one, in Beijing time: the last whole period to judge.
function lastQuarter(now = Date.now()) {
  const d = new Date(now + 8 * 3600 * 1000);
  const index = d.getUTCFullYear() * 4 + Math.floor(d.getUTCMonth() / 3) - 1;
  return `${Math.floor(index / 4)}-Q${(index % 4) + 1}`;
}

function score(value) {
  return value === null || value === undefined ? t("rb_no_score") : String(value);
}

function companyCard(row, listed) {
  const name = row.name || t("rb_unnamed");
  return el("li", { class: "card", "data-company": row.company },
    el("h4", {}, name, " ", el("span", { class: "chip", "data-grade": row.grade || "" }, tf("rb_grade", { grade: row.grade || "—" }))),
    el("p", {}, tf("rb_score", { score: score(row.score) })),
    listed ? el("ul", { class: "reasons" }, (row.reasons || []).map((r) => el("li", {}, message(r)))) : null,
    el("dl", { class: "parts" }, PARTS.flatMap((p) => [el("dt", {}, t(`rb_${p}`)), el("dd", {}, String(row.parts[p]))])),
    row.answer ? el("blockquote", { class: "answer" }, el("p", {}, el("strong", {}, t("rb_answer")), "：", row.answer.text),
      el("footer", { class: "meta" }, cityTime(Date.parse(row.answer.answered_at), { date: true }))) : null);
}

function answerForm(period, row, after) {
  const text = el("textarea", { id: "rb-answer-text", maxlength: "1000", rows: "4" });
  const status = el("p", { id: "rb-answer-status", role: "status" });
  const send = el("button", { type: "submit", class: "primary", id: "rb-answer-send" }, t("rb_answer_send"));
  const form = el("form", { id: "rb-answer" }, el("label", { for: "rb-answer-text" }, tf("rb_answer_for", { period })), text,
    el("div", { class: "actions" }, send), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.setAttribute("disabled", "");
    try {
      const reply = await callApi("/api/fees/ratings/answers", { method: "POST",
        body: JSON.stringify({ period, text: text.value.trim(), company: row.company }) });
      if (!reply.ok) throw new Error(message(reply.body.reason || String(reply.status)));
      after();
    } catch (err) {
      status.textContent = err instanceof Unreachable ? t("rb_offline") : String(err.message || err);
      send.removeAttribute("disabled");
    }
  });
  return form;
}

// `#/ratings` or `#/ratings/<period>`.
export function ratingsView(app, wanted) {
  if (!canSeeRatings(app.me)) return [el("p", { class: "empty" }, t("not_found"))];
  const period = PERIOD.test(wanted || "") ? wanted : lastQuarter();
  const box = el("div", { id: "rb-board", "aria-busy": "true" }, el("p", { class: "hint" }, t("loading")));
  const pick = el("input", { id: "rb-period", value: period, inputmode: "text", pattern: PERIOD.source, size: "8" });
  const go = el("form", { class: "search", id: "rb-pick" }, el("label", { for: "rb-period" }, t("rb_period")), pick,
    el("button", { type: "submit" }, t("rb_show")));
  go.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/ratings/${encodeURIComponent(pick.value.trim())}`;
  });
  const load = async () => {
    try {
      const reply = await callApi(`/api/fees/ratings/board?period=${encodeURIComponent(period)}`);
      if (!reply.ok) throw new Error(message(reply.body.reason || String(reply.status)));
      const board = reply.body;
      const mine = board.companies.filter((c) => c.mine);
      const staff = app.me.role !== "property";
      box.replaceChildren(...[
        ...mine.flatMap((row) => [el("h3", {}, t("rb_mine")), el("ul", { class: "cards", id: "rb-mine" }, companyCard(row, false)),
          row.answer ? null : answerForm(period, row, load)]),
        el("h3", {}, t("rb_red")),
        board.red.length ? el("ul", { class: "cards", id: "rb-red" }, board.red.map((r) => companyCard(r, true)))
          : el("p", { class: "empty", id: "rb-red-none" }, t("rb_none")),
        el("h3", {}, t("rb_black")),
        board.black.length ? el("ul", { class: "cards", id: "rb-black" }, board.black.map((r) => companyCard(r, true)))
          : el("p", { class: "empty", id: "rb-black-none" }, t("rb_none")),
        staff ? el("h3", {}, t("rb_all")) : null,
        staff ? el("ul", { class: "cards", id: "rb-all" }, board.companies.map((r) => companyCard(r, false))) : null,
        el("p", { class: "hint" }, tf("rb_formula", { periods: board.periods.join("、") })),
      ].filter(Boolean));
    } catch (err) {
      box.replaceChildren(el("p", { class: "error", role: "alert" }, err instanceof Unreachable ? t("rb_offline") : String(err.message || err)));
    }
    box.removeAttribute("aria-busy");
  };
  load();
  return [el("h2", { class: "view-title", tabindex: "-1" }, tf("rb_title", { period })), go, box];
}
