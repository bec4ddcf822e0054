// Community star rating (三类五星, `#/stars`, docs/star-rating.md): the sheets a supervisor or
// an assessor plays a part in, and one sheet (`#/stars/<compound>/<round>`) as each part works
// it: the community's evidence per indicator, the scorer's points and comments, the street's
// review (approve with the property company's share, or return with a reason), the published
// result and the compound's earlier rounds. What each user may do comes from the parts the
// server gives the sheet (`parts`), never from role names here. The sheets are the server's
// (/api/stars/): these screens need the network and say so.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, message, pick, t, tf } from "../i18n.js";
import { photoInput } from "../resident/reports.js";

const READERS = new Set(["supervisor", "assessor", "admin"]);

export function canSeeStars(me) {
  return Boolean(me) && READERS.has(me.role);
}

export function starsLink(me) {
  return canSeeStars(me) ? el("a", { href: "#/stars", id: "stars-link" }, t("st_link")) : null;
}

function yuan(fen) {
  return (fen / 100).toFixed(2);
}

function starsText(n) {
  return "★".repeat(n) + "☆".repeat(5 - n);
}

function resultLine(result) {
  return tf("st_result", { stars: starsText(result.stars), type: pick([result.type, result.type_en]), total: result.total });
}

function stateChip(sheet) {
  return el("span", { class: "chip", "data-state": sheet.state }, pick(sheet.state_label));
}

async function ask(path, status, options) {
  try {
    const answer = await callApi(path, options);
    if (!answer.ok) {
      status.textContent = answer.status === 401 ? t("login_again") : message(answer.body.reason || String(answer.status));
      return null;
    }
    return answer.body;
  } catch {
    status.textContent = t("st_online");
    return null;
  }
}

function send(method, body) {
  return { method, body: JSON.stringify(body) };
}

// --- the list ------------------------------------------------------------------------------

function sheetRow(s, total) {
  return el("li", { "data-compound": s.compound, "data-round": s.round },
    el("a", { href: `#/stars/${encodeURIComponent(s.compound)}/${encodeURIComponent(s.round)}` },
      el("strong", {}, s.compound_name || s.compound), ` · ${tf("st_round_label", { round: s.round })} `, stateChip(s),
      el("span", { class: "meta" }, s.result ? resultLine(s.result) : tf("st_counts", { ...s, total }))));
}

function openForm(status) {
  const compound = el("input", { id: "st-compound", name: "compound", type: "text", required: true, autocapitalize: "off", spellcheck: "false" });
  const round = el("input", { id: "st-round", name: "round", type: "text", required: true, inputmode: "numeric", value: String(new Date().getFullYear()) });
  const form = el("form", { class: "record-form", id: "st-open" },
    el("h3", {}, t("st_open")),
    el("div", { class: "field" }, el("label", { for: "st-compound" }, t("st_compound")), compound),
    el("div", { class: "field" }, el("label", { for: "st-round" }, t("st_round")), round),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, t("st_open_button"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const found = await ask("/api/stars/sheets", status, send("POST", { compound: compound.value.trim(), round: round.value.trim() }));
    if (found) location.hash = `#/stars/${encodeURIComponent(found.sheet.compound)}/${encodeURIComponent(found.sheet.round)}`;
  });
  return form;
}

export function starsView(app, compound, round) {
  if (compound && round) return sheetView(app, compound, round);
  const status = el("p", { class: "status-line", role: "status", id: "st-status" });
  const list = el("section", { id: "st-list" }, el("p", { class: "empty" }, "…"));
  (async () => {
    const [found, sheet] = [await ask("/api/stars/sheets", status), await ask("/api/stars/sheet", status)];
    if (!found || !sheet) return list.replaceChildren();
    list.replaceChildren(found.sheets.length
      ? el("ul", { class: "list", id: "st-sheets" }, found.sheets.map((s) => sheetRow(s, sheet.indicators.length)))
      : el("p", { class: "empty" }, t("st_none")));
  })();
  // A street supervisor opens rounds; the server says no to anyone else, by name.
  const opens = app.me.role === "supervisor" && !["community", "grid"].includes(app.me.home?.level);
  return [el("h2", { class: "view-title", id: "st-title", tabindex: "-1" }, t("st_title")), status, list,
    opens ? openForm(status) : null];
}

// --- one sheet -----------------------------------------------------------------------------

function evidenceBlock(entry) {
  if (!entry) return el("p", { class: "empty" }, t("st_no_evidence"));
  return el("div", { class: "evidence" },
    el("p", { class: "note" }, entry.text),
    entry.photos.length ? el("div", { class: "photos" }, entry.photos.map((src, n) =>
      el("img", { src, alt: `${t("st_photos")} ${n + 1}`, loading: "lazy", width: "96", height: "72" }))) : null,
    el("p", { class: "meta" }, tf("st_evidence_line", { by: entry.by_name, at: cityTime(Date.parse(entry.at), { date: true }) })));
}

function scoreBlock(entry, indicator) {
  if (!entry) return el("p", { class: "empty" }, t("st_not_scored"));
  return el("p", { class: "score", "data-points": String(entry.points) },
    tf("st_score_line", { points: entry.points, max: indicator.max_points, by: entry.by_name, comment: entry.comment }));
}

function evidenceForm(indicator, entry, put) {
  const id = `st-ev-${indicator.id}`;
  const text = el("textarea", { id: `${id}-text`, name: "text", maxlength: "500", rows: "3" }, entry?.text || "");
  const photos = [];
  const [file, picked] = photoInput(`${id}-photos`, photos);
  const form = el("form", { class: "record-form", "data-form": "evidence" },
    el("div", { class: "field" }, el("label", { for: `${id}-text` }, t("st_note")), text),
    el("div", { class: "field" }, el("label", { for: `${id}-photos` }, t("st_photos")), file, picked),
    el("div", { class: "actions" }, el("button", { type: "submit" }, t("st_save_evidence"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    put("evidence", { indicator: indicator.id, text: text.value, photos: photos.map((p) => ({ data: p.data })) });
  });
  return form;
}

function scoreForm(indicator, entry, put) {
  const id = `st-sc-${indicator.id}`;
  const points = el("input", { id: `${id}-points`, name: "points", type: "number", min: "0", max: String(indicator.max_points),
    step: "1", inputmode: "numeric", required: true, value: entry ? String(entry.points) : "" });
  const comment = el("input", { id: `${id}-comment`, name: "comment", type: "text", maxlength: "300", required: true, value: entry?.comment || "" });
  // novalidate: the server's check names the field in both languages, the browser's would not.
  const form = el("form", { class: "record-form", "data-form": "score", novalidate: true },
    el("div", { class: "field" }, el("label", { for: `${id}-points` }, `${t("st_points")}（0–${indicator.max_points}）`), points),
    el("div", { class: "field" }, el("label", { for: `${id}-comment` }, t("st_comment")), comment),
    el("div", { class: "actions" }, el("button", { type: "submit" }, t("st_save_score"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // Sent as typed: "2.5" or "" reaches the server, which names the field (no silent rounding).
    const typed = points.value.trim();
    put("scores", { indicator: indicator.id, points: /^-?\d+$/.test(typed) ? Number(typed) : typed, comment: comment.value });
  });
  return form;
}

function indicatorCard(sheet, indicator, put) {
  const evidence = sheet.evidence[indicator.id];
  const score = sheet.scores[indicator.id];
  const parts = new Set(sheet.parts);
  const scorer = indicator.scored_by;
  return el("li", { class: "card", "data-indicator": indicator.id },
    el("h4", {}, indicator.title),
    el("p", { class: "meta" }, tf("st_points_of", { max: indicator.max_points }), " · ",
      tf("st_scored_by", { who: t(`st_${scorer}`) })),
    el("p", { class: "meta" }, tf("st_evidence_needed", { what: indicator.evidence })),
    evidenceBlock(evidence),
    parts.has("community") && sheet.state === "collecting" ? evidenceForm(indicator, evidence, put) : null,
    scoreBlock(score, indicator),
    parts.has(scorer) && sheet.state === "scoring" ? scoreForm(indicator, score, put) : null);
}

function moveButton(act, state, label, move, extra = () => ({})) {
  const button = el("button", { type: "button", class: "primary", "data-act": act }, t(label));
  button.addEventListener("click", () => move({ act, state, ...extra() }));
  return button;
}

function reviewForms(sheet, data, move, status) {
  const expected = expectedResult(sheet, data);
  const award = data.awards_fen[String(expected.stars)] || 0;
  const max = Math.floor((award * data.property_share_max_percent) / 100);
  const share = el("input", { id: "st-share", name: "property_fen", type: "text", inputmode: "decimal", value: yuan(max) });
  const reason = el("input", { id: "st-reason", name: "reason", type: "text", maxlength: "300" });
  const shareFen = () => {
    const typed = share.value.trim();
    if (!/^\d+(\.\d{1,2})?$/.test(typed)) return null;
    const [whole, cents = ""] = typed.split(".");
    return Number(whole) * 100 + Number(cents.padEnd(2, "0"));
  };
  const approve = el("button", { type: "button", class: "primary", "data-act": "approve" }, t("st_approve"));
  approve.addEventListener("click", () => {
    const fen = shareFen();
    if (fen === null) status.textContent = t("st_share_bad");
    else move({ act: "approve", state: "review", property_fen: fen });
  });
  return el("section", { id: "st-review" },
    el("p", { id: "st-expected" }, tf("st_expected", { result: resultLine(expected) })),
    el("div", { class: "field" }, el("label", { for: "st-share" }, t("st_share")), share,
      el("p", { class: "hint" }, tf("st_share_max", { max: yuan(max), award: yuan(award), percent: data.property_share_max_percent }))),
    el("div", { class: "actions" }, approve),
    el("div", { class: "field" }, el("label", { for: "st-reason" }, t("st_reason")), reason),
    el("div", { class: "actions" }, moveButton("return", "review", "st_return", move, () => ({ reason: reason.value }))));
}

// The total, stars and type the current scores give, by the sheet's bands (as the server will).
function expectedResult(sheet, data) {
  const total = Object.values(sheet.scores).reduce((sum, s) => sum + s.points, 0);
  const band = data.bands.find((b) => total >= b.min_points) || data.bands[data.bands.length - 1];
  return { total, stars: band.stars, type: band.type, type_en: band.type_en };
}

function actions(sheet, data, move, status) {
  const parts = new Set(sheet.parts);
  if (sheet.state === "collecting" && parts.has("community")) return moveButton("submit_evidence", "collecting", "st_submit_evidence", move);
  if (sheet.state === "scoring" && parts.has("assessor")) return moveButton("submit_scores", "scoring", "st_submit_scores", move);
  if (sheet.state === "review" && parts.has("street")) return reviewForms(sheet, data, move, status);
  return null;
}

function historyList(sheet) {
  return el("ol", { class: "plain-list", id: "st-history" }, sheet.history.map((h) => el("li", { "data-act": h.act },
    tf("st_step", { at: cityTime(Date.parse(h.at), { date: true }), by: h.by_name, act: t(`st_act_${h.act}`) }),
    h.reason ? el("p", { class: "note" }, h.reason) : null)));
}

function roundsList(rounds, current) {
  return el("ul", { class: "list", id: "st-rounds" }, rounds.map((r) => el("li", { "data-round": r.round, "aria-current": r.round === current ? "page" : null },
    el("a", { href: `#/stars/${encodeURIComponent(r.compound)}/${encodeURIComponent(r.round)}` },
      tf("st_round_label", { round: r.round }), " ", stateChip(r), r.result ? el("span", { class: "meta" }, resultLine(r.result)) : null))));
}

function sheetBody(found, data, put, move, status) {
  const { sheet, rounds } = found;
  const parts = sheet.parts.map((p) => t(`st_part_${p}`));
  return [
    el("h3", { id: "st-name" }, `${sheet.compound_name || sheet.compound} · ${tf("st_round_label", { round: sheet.round })} `, stateChip(sheet)),
    el("p", { class: "meta", id: "st-parts" }, tf("st_your_part", { parts: parts.length ? parts.join("、") : t("st_readonly") })),
    sheet.result ? el("p", { id: "st-result", "data-stars": String(sheet.result.stars) }, resultLine(sheet.result), el("br"),
      tf("st_award", { award: yuan(sheet.result.award_fen), share: yuan(sheet.result.property_fen) })) : null,
    el("p", { id: "st-counts" }, tf("st_counts", { ...sheet, total: data.indicators.length })),
    actions(sheet, data, move, status),
    ...data.categories.map((c) => el("details", { class: "category", open: true, "data-category": c.id },
      el("summary", {}, pick([c.name, c.name_en])),
      el("ul", { class: "plain-list" }, data.indicators.filter((i) => i.category === c.id).map((i) => indicatorCard(sheet, i, put))))),
    el("h3", {}, t("st_history")), historyList(sheet),
    el("h3", {}, t("st_rounds")), roundsList(rounds, sheet.round),
  ];
}

export function sheetView(app, compound, round) {
  const base = `/api/stars/sheets/${encodeURIComponent(compound)}/${encodeURIComponent(round)}`;
  const status = el("p", { class: "status-line", role: "status", id: "st-status" });
  const body = el("section", { id: "st-sheet", "data-compound": compound, "data-round": round }, el("p", { class: "empty" }, "…"));
  let data = null;
  const show = (found) => {
    const open = new Set([...body.querySelectorAll("details:not([open])")].map((d) => d.dataset.category));
    body.replaceChildren(...sheetBody(found, data, put, move, status).filter(Boolean));
    for (const d of body.querySelectorAll("details")) if (open.has(d.dataset.category)) d.open = false;
  };
  const refresh = async () => {
    data = data || await ask("/api/stars/sheet", status);
    const found = data && await ask(base, status);
    if (found) show(found);
    else body.replaceChildren();
  };
  const write = async (path, options) => {
    status.textContent = "";
    const found = await ask(path, status, options);
    if (found) {
      status.textContent = t("st_saved");
      await refresh();
    }
  };
  const put = (what, payload) => write(`${base}/${what}`, send("PUT", payload));
  const move = (payload) => write(`${base}/acts`, send("POST", payload));
  refresh();
  return [el("h2", { class: "view-title", id: "st-title", tabindex: "-1" }, t("st_title")),
    el("nav", { class: "actions" }, el("a", { href: "#/stars", id: "st-back" }, t("st_sheets"))), status, body];
}
