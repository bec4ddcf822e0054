// Owners' votes (业主表决, docs/votes.md): the votes of the compounds where the property register
// names the resident an owner, read from GET /api/votes and kept on the phone (a local document
// that never replicates) so the screens open offline and say how old their copy is. A ballot is
// queued on the phone (outbox.js) with its own request id, kept for every retry, so the server
// takes it once however often it is sent; until the server has it the screen says 待发送. The
// server's order of receipt decides (the last ballot before the close counts), never this
// phone's clock. Results are shown once the vote has closed; before, only participation.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, message, pick, t, tf } from "../i18n.js";
import { backLink, heading } from "./ui.js";

const CACHE = "_local/linli-votes";
const CHOICES = ["yes", "no", "abstain"];

export function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function when(value) {
  const ms = Date.parse(value || "");
  return Number.isNaN(ms) ? "" : cityTime(ms, { date: true });
}

function percent(share) {
  return share ? `${share.percent} %` : "";
}

// The phone's copy: {list, details: {id: vote}, at}, loaded once per session.
async function cache(app) {
  const r = app.resident;
  if (!r.votes) {
    try {
      const doc = await r.store.db.get(CACHE);
      r.votes = { list: doc.list || [], details: doc.details || {}, at: doc.at || 0, rev: doc._rev };
    } catch {
      r.votes = { list: [], details: {}, at: 0, rev: undefined };
    }
  }
  return r.votes;
}

async function keep(app, votes) {
  const { db } = app.resident.store;
  for (;;) {
    try {
      const res = await db.put({ _id: CACHE, _rev: votes.rev, list: votes.list, details: votes.details, at: votes.at });
      votes.rev = res.rev;
      return;
    } catch (err) {
      if (err.status !== 409) return;
      votes.rev = (await db.get(CACHE))._rev;
    }
  }
}

// Read again from the server when online (at most every 2 s, unless `force`), then redraw.
async function refresh(app, id = null, force = false) {
  const votes = await cache(app);
  if (!navigator.onLine || (!force && Date.now() - (votes.tried || 0) < 2000)) return;
  votes.tried = Date.now();
  try {
    const listed = await callApi("/api/votes");
    if (!listed.ok) return;
    votes.list = listed.body.votes || [];
    if (id) {
      const one = await callApi(`/api/votes/${encodeURIComponent(id)}`);
      if (one.ok) votes.details[id] = one.body.vote;
      else if (one.status === 404) delete votes.details[id];
    }
    votes.at = Date.now();
    await keep(app, votes);
    app.resident.sync.dataChanged();
  } catch {
    // offline or slow: the phone's copy stays, with its time
  }
}

function queued(app, id) {
  return app.resident.store.outbox.items.filter((i) => i.kind === "ballot" && i.shown.vote === id);
}

function stateChip(vote) {
  const open = vote.state === "open";
  return el("span", { class: `chip ${open ? "chip-waiting" : vote.passed ? "chip-visited" : "chip-refused"}`,
    "data-state": vote.state }, open ? t("vt_open") : vote.passed ? t("vt_passed") : t("vt_not_passed"));
}

function copyLine(votes) {
  return el("p", { class: "hint", id: "vt-copy" },
    votes.at ? `${t("r_copy_of")}：${cityTime(votes.at, { date: true })}` : t("vt_never_read"));
}

export async function votesView(app) {
  const votes = await cache(app);
  refresh(app);
  return [
    backLink("#/"),
    heading(t("vt_votes")),
    copyLine(votes),
    votes.list.length ? el("ul", { class: "list votes", id: "vt-list" }, votes.list.map((vote) => el("li", { "data-id": vote.id },
      el("a", { href: `#/vote/${encodeURIComponent(vote.id)}` },
        el("span", { class: "main" }, vote.title), stateChip(vote),
        el("span", { class: "meta" }, `${pick(vote.matter_label)} · ${tf("vt_closes", { time: when(vote.closes_at) })}`),
        el("span", { class: "meta" }, tf("vt_took_part", { area: percent(vote.participation?.area_share),
          owners: percent(vote.participation?.owners_share) })))))) :
      el("p", { class: "hint", id: "vt-none" }, t("vt_none")),
  ];
}

function ballotForm(app, vote, detail) {
  const form = el("form", { id: "vt-form" });
  const units = detail?.my_units || [];
  if (units.length > 1) {
    form.append(el("label", { for: "vt-unit" }, t("vt_unit")),
      el("select", { id: "vt-unit", name: "unit" }, units.map((u) => el("option", { value: u }, u.split(":").pop()))));
  }
  const election = Array.isArray(vote.candidates);
  const options = election ? vote.candidates.map((c) => [c.id, c.name]) :
    CHOICES.map((c) => [c, t(`vt_${c}`)]);
  form.append(el("fieldset", {}, el("legend", {}, election ? tf("vt_pick", { n: vote.seats }) : t("vt_choice")),
    options.map(([value, label]) => el("label", { class: "choice" },
      el("input", { type: election ? "checkbox" : "radio", name: "choice", value }), label))));
  const problem = el("p", { class: "error", id: "vt-problem", role: "alert" });
  form.append(problem, el("p", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "vt-cast" }, t("vt_cast"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const picked = [...form.querySelectorAll("input[name=choice]:checked")].map((i) => i.value);
    if (!picked.length && !election) {
      problem.textContent = t("vt_choose");
      return;
    }
    if (election && picked.length > vote.seats) {
      problem.textContent = tf("vt_too_many", { n: vote.seats });
      return;
    }
    const request = randomHex(12);
    const body = { request, ...(election ? { picks: picked } : { choice: picked[0] }) };
    const unit = form.querySelector("#vt-unit")?.value;
    if (unit) body.unit = unit;
    if (vote.secret) body.secret_key = randomHex(32);
    await app.resident.sync.send({ kind: "ballot", key: `ballot:${vote.id}:${request}`,
      path: `/api/votes/${encodeURIComponent(vote.id)}/ballot`, body,
      shown: { vote: vote.id, choice: election ? picked : picked[0], unit: unit || units[0] || "" } });
    form.reset();
    document.activeElement?.blur();
    app.resident.sync.dataChanged();  // shown at once as waiting to be sent
    setTimeout(() => refresh(app, vote.id, true), 1500);  // then as the server took it
  });
  return form;
}

function shownChoice(vote, choice) {
  if (Array.isArray(choice)) {
    const names = new Map((vote.candidates || []).map((c) => [c.id, c.name]));
    return choice.map((c) => names.get(c) || c).join("、") || t("vt_nobody");
  }
  return CHOICES.includes(choice) ? t(`vt_${choice}`) : String(choice ?? "");
}

function myBallots(app, vote, detail) {
  const rows = [];
  for (const item of queued(app, vote.id)) {
    rows.push(el("li", { "data-status": item.refused ? "refused" : "waiting" },
      el("span", { class: "main" }, shownChoice(vote, item.shown.choice)),
      el("span", { class: `chip ${item.refused ? "chip-refused" : "chip-waiting"}` },
        item.refused ? `${t("vt_not_taken")}：${message(item.refused.reason)}` : t("vt_waiting"))));
  }
  for (const ballot of (detail?.my_ballots || []).slice().reverse()) {
    rows.push(el("li", { "data-status": ballot.status, "data-receipt": ballot.receipt },
      el("span", { class: "main" }, shownChoice(vote, ballot.choice)),
      el("span", { class: `chip ${ballot.status === "counted" ? "chip-visited" : "chip-refused"}` },
        t(`vt_status_${ballot.status}`)),
      ballot.clash ? el("span", { class: "meta" }, t("vt_clash")) : null,
      el("span", { class: "meta" }, `${t("vt_receipt")} ${ballot.receipt}`)));
  }
  return rows.length ? el("section", { class: "card", id: "vt-mine" }, el("h3", {}, t("vt_my_ballots")),
    el("ul", { class: "list" }, rows)) : null;
}

function resultCard(vote, result) {
  const part = result.participation;
  const lines = [
    el("p", {}, tf("vt_result_part", { area: percent(part.area_share), owners: percent(part.owners_share) }),
      " ", part.met ? t("vt_quorum_met") : t("vt_quorum_missed")),
  ];
  if (result.approval) {
    lines.push(el("p", {}, tf("vt_result_yes", { area: percent(result.approval.area_share),
      owners: percent(result.approval.owners_share), threshold: result.approval_threshold })));
  }
  if (result.candidates) {
    const names = new Map((vote.candidates || []).map((c) => [c.id, c.name]));
    lines.push(el("ul", { class: "list", id: "vt-candidates" }, result.candidates.map((c) => el("li", {
      "data-elected": String(result.elected.includes(c.id)) },
    el("span", { class: "main" }, names.get(c.id) || c.id),
    el("span", { class: "meta" }, tf("vt_votes_of", { owners: c.owners, area: percent(c.area_share) })),
    result.elected.includes(c.id) ? el("span", { class: "chip chip-visited" }, t("vt_elected")) :
      result.tied.includes(c.id) ? el("span", { class: "chip chip-waiting" }, t("vt_tied")) : null))));
  }
  lines.push(el("p", { class: "main", id: "vt-outcome" }, result.passed ? t("vt_passed") : t("vt_not_passed")));
  return el("section", { class: "card", id: "vt-result" }, el("h3", {}, t("vt_result")), lines);
}

export async function voteView(app, id) {
  const votes = await cache(app);
  refresh(app, id, !votes.details[id]);  // a vote not read yet is read at once
  const vote = votes.details[id] || votes.list.find((v) => v.id === id);
  if (!vote) return [backLink("#/votes"), heading(t("not_found")), copyLine(votes)];
  const detail = votes.details[id];
  const open = vote.state === "open";
  return [
    backLink("#/votes", t("vt_votes")),
    heading(vote.title),
    el("p", { class: "meta" }, `${pick(vote.matter_label)} · ${tf("vt_closes", { time: when(vote.closes_at) })}`),
    vote.body ? el("article", { class: "notice-body" }, vote.body.split(/\n\s*\n/).map((p) => el("p", {}, p))) : null,
    el("p", { class: "hint", id: "vt-participation" }, tf("vt_took_part", { area: percent(vote.participation?.area_share),
      owners: percent(vote.participation?.owners_share) })),
    copyLine(votes),
    open ? el("p", { class: "hint" }, t(vote.secret ? "vt_secret_help" : "vt_change_help")) : null,
    open && detail ? ballotForm(app, vote, detail) : null,
    open && !detail ? el("p", { class: "hint", id: "vt-need-online" }, t("vt_need_online")) : null,
    myBallots(app, vote, detail),
    !open && detail?.result ? resultCard(vote, detail.result) : null,
  ];
}
