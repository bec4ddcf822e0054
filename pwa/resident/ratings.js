// Rating the property company (物业服务评价, docs/fees.md "Ratings"), on a paid bill's screen:
// 1–5 on each aspect and a comment, queued on the phone (outbox.js) like the resident's other
// writes, so it is made offline and sent when the network is there. The server counts the
// first rating of the household and period it receives: this phone may be told 已评价 (another
// phone of the household was first), and the screen then shows the rating that counts, read
// from GET /api/fees/ratings (a local copy, apicopy.js), never the one this phone made.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { message, t, tf } from "../i18n.js";
import { ApiCopy, dateOf, keptJson, requestId } from "./apicopy.js";

const COPY = "_local/linli-fee-ratings";
const TOLD = "linli-fee-ratings-told";
export const ASPECTS = ["cleaning", "security", "repairs", "attitude"];

async function copyOf(app) {
  const r = app.resident;
  if (!r.feeRatings) r.feeRatings = await ApiCopy.open(r.store.db, COPY, { ratings: [] });
  return r.feeRatings;
}

async function refreshRatings(app) {
  const copy = await copyOf(app);
  const changed = await copy.refresh(async (c) => {
    const reply = await callApi("/api/fees/ratings");
    if (!reply.ok) return false;
    c.data = { ratings: reply.body.ratings || [] };
    return true;
  });
  if (changed) app.resident.sync.dataChanged();
}

// Ratings sent from this screen whose outbox write is not done yet: shown as being saved (the
// screen says 待发送 only once the phone keeps it), by a redraw meanwhile too, not as the form.
const sending = new Map();

function toldAll() {
  return keptJson(TOLD);
}

// What the server said of a rating this phone sent (sync.js `taken`): counted or 已评价.
export function rememberRating(account, item, reply) {
  const all = toldAll();
  all[`${account}:${item.shown.bill}`] = { status: reply.body.status, told: reply.body.told || "" };
  localStorage.setItem(TOLD, JSON.stringify(all));
}

function scoresList(scores) {
  return el("dl", { class: "rating-scores" }, ASPECTS.flatMap((a) => [el("dt", {}, t(`ra_${a}`)),
    el("dd", { "data-aspect": a }, tf("ra_out_of_5", { n: scores[a] }))]));
}

function queued(scores, state = "queued") {
  return [el("p", { id: "ra-state", "data-state": state, role: "status" }, t(`ra_${state}`)), scoresList(scores)];
}

function form(app, bill) {
  const chosen = {};
  const send = el("button", { type: "submit", id: "ra-send", class: "primary", disabled: "" }, t("ra_send"));
  const groups = ASPECTS.map((aspect) => el("fieldset", { class: "rating-aspect", "data-aspect": aspect },
    el("legend", {}, t(`ra_${aspect}`)),
    ...[1, 2, 3, 4, 5].map((n) => {
      const input = el("input", { type: "radio", name: `ra-${aspect}`, value: String(n) });
      input.addEventListener("change", () => {
        chosen[aspect] = n;
        if (ASPECTS.every((a) => chosen[a])) send.removeAttribute("disabled");
      });
      return el("label", { class: "choice" }, input, String(n));
    })));
  const comment = el("textarea", { id: "ra-comment", maxlength: "500", rows: "3" });
  const box = el("form", { id: "ra-form", class: "rating-form" }, el("p", { class: "hint" }, t("ra_hint")), ...groups,
    el("label", { for: "ra-comment" }, t("ra_comment")), comment, el("div", { class: "actions" }, send));
  box.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!ASPECTS.every((a) => chosen[a])) return;
    send.setAttribute("disabled", "");
    const body = { request: requestId(), scores: { ...chosen }, comment: comment.value.trim() };
    // the form leaves the screen at once (a screen is never redrawn over a form being filled)
    sending.set(bill.bill, body.scores);
    const saving = queued(body.scores, "saving");
    box.replaceWith(...saving);
    try {
      await app.resident.sync.send({ kind: "fee_rating", key: `fee_rating:${bill.bill}`, replaces: true,
        path: `/api/fees/bills/${encodeURIComponent(bill.bill)}/rating`, body, shown: { bill: bill.bill, scores: body.scores } });
    } finally {
      sending.delete(bill.bill);
    }
    if (saving[0].isConnected) saving[0].replaceWith(queued(body.scores)[0]);
  });
  return box;
}

// The rating part of a bill's screen: the household's rating that counts, this phone's queued
// one, a refusal, or the form (for a paid or an exempt bill).
export async function ratingSection(app, bill) {
  const copy = await copyOf(app);
  refreshRatings(app);
  const counted = (copy.data.ratings || []).find((r) => r.bill === bill.bill);
  const nodes = [el("h3", {}, t("ra_title"))];
  const told = toldAll()[`${app.resident.sync.me.name}:${bill.bill}`];
  const mine = app.resident.store.outbox.items.filter((i) => i.kind === "fee_rating" && i.shown.bill === bill.bill);
  if (counted) {
    if (told?.status === "rated_already") nodes.push(el("p", { id: "ra-told", role: "status" }, message(told.told)));
    nodes.push(el("p", { id: "ra-state", "data-state": "counted" }, tf("ra_counted", { date: dateOf(counted.received_at) })),
      scoresList(counted.scores), counted.comment ? el("p", { class: "comment" }, counted.comment) : null);
  } else if (mine.some((i) => i.refused)) {
    const refused = mine.find((i) => i.refused).refused;
    nodes.push(el("p", { id: "ra-state", "data-state": "refused", role: "status" }, `${t("ra_refused")}：${message(refused.reason)}`));
  } else if (sending.has(bill.bill)) {
    nodes.push(...queued(sending.get(bill.bill), "saving"));
  } else if (mine.length) {
    nodes.push(...queued(mine[0].shown.scores));
  } else if (told) {
    nodes.push(el("p", { id: "ra-state", "data-state": told.status, role: "status" }, message(told.told)));
  } else if (bill.state === "paid" || bill.state === "exempt") {
    nodes.push(form(app, bill));
  } else {
    nodes.push(el("p", { class: "hint", id: "ra-state", "data-state": "unpaid" }, t("ra_after_paying")));
  }
  return el("section", { id: "ra", class: "rating" }, ...nodes.filter(Boolean));
}
