// The handler's queue of problem reports (问题办理), offline: a grid worker, a property company
// or a liaison department sees the reports routed to them, moves one to its next state (受理,
// 派单, 处理中, 办结: the moves the server says their part allows) and attaches up to 3 "after"
// photos, scaled and stripped of EXIF on the phone as the resident's report photos are
// (pwa/resident/reports.js `scaledPhoto`). What the server answered is kept in a local copy
// (`_local/`, never replicated) of the handler's own phone database, so the queue opens with no
// network and says how old it is. A step is queued in an outbox (pwa/resident/outbox.js) with
// the phone's request id, kept for every retry, so the server stores it once; it goes up at
// the next sync. A refusal stays on the phone with the server's reason (zh-CN first, naming the
// field by its label), the note and photos kept for the handler to correct and send again.

/* global PouchDB */

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { ApiCopy, requestId } from "../resident/apicopy.js";
import { Outbox } from "../resident/outbox.js";
import { MAX_PHOTOS, categories, photoInput } from "../resident/reports.js";
import { backLink, heading } from "../resident/ui.js";

const HANDLERS = new Set(["worker", "property", "department", "supervisor"]);
const COPY = "_local/linli-handler-reports";
const DETAILS = 100; // reports whose steps the phone keeps (the newest)

// The one check of who has a queue of reports to handle.
export function handlesReports(me) {
  return Boolean(me) && HANDLERS.has(me.role);
}

export function reportsLink(me) {
  return handlesReports(me) ? el("a", { href: "#/handle", id: "handle-link" }, t("hq_link")) : null;
}

// The phone's side of the queue: the copy of the server's answers and the outbox of steps.
export class HandlerQueue {
  constructor(me, render) {
    this.db = new PouchDB(`linli-handler-${me.name}`);
    this.outbox = new Outbox(this.db);
    this.render = render;
    this.copy = null;
    this.flushing = null;
    this.online = () => this.sync();
  }

  async open() {
    this.copy = await ApiCopy.open(this.db, COPY, { reports: [], details: {} });
    await this.outbox.load();
    window.addEventListener("online", this.online);
    return this;
  }

  close() {
    clearTimeout(this.timer);
    window.removeEventListener("online", this.online);
  }

  // Queued steps first (in order, each once), then the server's list and each report's detail.
  sync() {
    if (!this.flushing) {
      this.flushing = this.pass().finally(() => {
        this.flushing = null;
        this.render();
      });
    }
    return this.flushing;
  }

  async pass() {
    if (!navigator.onLine) return;
    const before = this.outbox.items.length;
    this.failure = await this.outbox.flush((path, body) => callApi(path, { method: "POST", body: JSON.stringify(body) })
      .catch(() => ({ status: 0, ok: false, body: {} })));
    const due = this.outbox.items.length !== before || Date.now() - this.copy.tried >= 2000;
    const read = !due || await this.copy.refresh((copy) => this.read(copy), true);
    await categories();
    clearTimeout(this.timer);
    // The network back but not yet working, the server busy: tried again by itself.
    this.delay = this.failure || !read ? Math.min(60_000, (this.delay || 1000) * 2) : 0;
    if (this.delay) this.timer = setTimeout(() => this.sync(), this.delay);
  }

  async read(copy) {
    const list = await callApi("/api/reports");
    if (!list.ok) return false;
    const details = {};
    for (const report of list.body.reports.slice(0, DETAILS)) {
      const one = await callApi(`/api/reports/${encodeURIComponent(report._id)}`);
      if (one.ok) details[report._id] = one.body;
    }
    copy.data = { reports: list.body.reports, details };
    return true;
  }

  queued(id) {
    return this.outbox.items.filter((i) => i.shown.report === id);
  }

  async act(id, body, photos, replaces) {
    if (replaces) await this.outbox.drop(replaces);
    const request = requestId();
    const sent = { ...body, request };
    if (photos.length) sent.photos = photos.map((p) => ({ data: p.data }));
    await this.outbox.add({ kind: "report-step", key: `report-step:${request}`,
      path: `/api/reports/${encodeURIComponent(id)}/steps`, body: sent, shown: { report: id, to: body.to } });
    this.render();
    this.sync();
  }
}

// One queue per handler, opened at their first visit; it fills the screen shown again after
// each sync, unless the handler is typing in the form.
async function queueOf(app) {
  if (app.handler?.name !== app.me.name) {
    app.handler?.queue.close();
    const held = { name: app.me.name, box: null, id: "", queue: null };
    app.handler = held;
    held.queue = await new HandlerQueue(app.me, () => {
      if (held.box?.isConnected && !held.box.querySelector("#hq-form[data-dirty]")) fill(held);
    }).open();
    held.queue.sync();
  }
  return app.handler;
}

function fill(held) {
  held.box.replaceChildren(...(held.id ? reportNodes(held.queue, held.id) : listNodes(held.queue)).filter(Boolean));
  held.box.dataset.at = String(held.queue.copy.at);
}

const stateLabel = (code) => t(`rp_state_${code}`);
const when = (value) => (Date.parse(value || "") ? cityTime(Date.parse(value), { date: true }) : "");

function kept() {
  try {
    return JSON.parse(localStorage.getItem("linli-report-categories")) || {};
  } catch {
    return {};
  }
}

function named(list, code) {
  const found = (list || []).find((c) => c.code === code);
  return found ? message(`${found.zh} / ${found.en}`) : code;
}

function chip(state, queued) {
  const item = queued.at(-1);
  if (item?.refused) return el("span", { class: "chip chip-refused", "data-state": "refused" }, t("rp_refused"));
  if (item) return el("span", { class: "chip chip-waiting", "data-state": "queued" }, `${t("rp_queued")} → ${stateLabel(item.shown.to)}`);
  return el("span", { class: `chip ${state === "done" || state === "closed" ? "chip-visited" : "chip-waiting"}`, "data-state": state },
    stateLabel(state));
}

// `#/handle` (the queue) and `#/handle/<report id>` (one report, its steps and the next move).
export function handleView(app, id) {
  if (!handlesReports(app.me)) return [el("p", { class: "empty" }, t("not_found"))];
  const box = el("section", { id: "hq", "aria-live": "polite" }, el("p", { class: "meta" }, t("loading")));
  queueOf(app).then((held) => {
    Object.assign(held, { box, id: id || "" });
    fill(held);
    held.queue.sync(); // what waits goes up, the copy is renewed (at most every 2 s)
  });
  return [box];
}

function age(queue) {
  return el("p", { class: "hint", id: "hq-age", role: "status" },
    queue.copy.at ? tf("hq_copy_of", { time: cityTime(queue.copy.at, { date: true }) }) : t("hq_never"));
}

function listNodes(queue) {
  const { reports } = queue.copy.data;
  const { categories: cats } = kept();
  return [
    heading(t("hq_title")), age(queue),
    reports.length ? el("ul", { class: "list reports", id: "hq-list" }, reports.map((r) => el("li", { "data-id": r._id },
      el("a", { href: `#/handle/${encodeURIComponent(r._id)}` },
        el("span", { class: "main" }, named(cats, r.category)),
        chip(queue.copy.data.details[r._id]?.status.state || r.status?.state || "submitted", queue.queued(r._id)),
        r.status?.overdue?.length ? el("span", { class: "chip chip-refused" }, t("hq_overdue")) : null,
        el("span", { class: "meta" }, `${when(r.submitted_at)} · ${String(r.description).slice(0, 40)}`)))))
      : el("p", { class: "empty", id: "hq-none" }, t("hq_none")),
  ];
}

function reportNodes(queue, id) {
  const detail = queue.copy.data.details[id];
  if (!detail) return [backLink("#/handle", t("hq_title")), heading(t("not_found")), age(queue)];
  const { report, status, steps } = detail;
  const { categories: cats, handlers } = kept();
  const queued = queue.queued(id);
  return [
    backLink("#/handle", t("hq_title")),
    heading(named(cats, report.category)),
    el("p", { id: "hq-state", "data-state": status.state }, chip(status.state, queued)),
    age(queue),
    el("article", { class: "notice-body" }, el("p", {}, report.description),
      report.spot ? el("p", { class: "meta" }, report.spot) : null),
    el("ol", { class: "list steps", id: "hq-steps" }, steps.map((s) => el("li", { "data-to": s.to },
      `${when(s.at)} · ${stateLabel(s.to)}${s.note ? ` · ${s.note}` : ""}${s.photos?.length ? ` · ${tf("hq_photos_n", { n: s.photos.length })}` : ""}`))),
    ...queued.map((i) => el("p", { class: i.refused ? "error" : "hint", role: i.refused ? "alert" : "status", id: i.refused ? "hq-refused" : "hq-queued" },
      i.refused ? `${t("rp_refused")}：${message(i.refused.reason)}` : `${t("rp_queued")} → ${stateLabel(i.shown.to)}`)),
    stepForm(queue, detail, handlers, queued.find((i) => i.refused)),
  ];
}

// The next move: the states the server said this handler may move the report to, a note, the
// assignee of a dispatch and up to 3 after photos. A refused step fills it again.
function stepForm(queue, detail, handlers, refused) {
  const { report, status } = detail;
  const moves = detail.moves || [];
  if (!moves.length || (queue.queued(report._id).length && !refused)) return null;
  const photos = (refused?.body.photos || []).map((p) => ({ data: p.data }));
  const to = el("select", { id: "hq-to", name: "to" }, moves.map((m) => el("option", { value: m }, stateLabel(m))));
  if (refused) to.value = refused.body.to;
  const assignee = el("select", { id: "hq-assignee", name: "assignee" },
    (handlers || []).map((h) => el("option", { value: h.code }, message(`${h.zh} / ${h.en}`))));
  if (refused?.body.assignee) assignee.value = refused.body.assignee;
  const assigneeRow = el("div", { class: "field" }, el("label", { for: "hq-assignee" }, t("hq_assignee")), assignee);
  const showAssignee = () => { assigneeRow.hidden = to.value !== "dispatched"; };
  to.addEventListener("change", showAssignee);
  showAssignee();
  const note = el("textarea", { id: "hq-note", name: "note", maxlength: 1000, rows: 3 });
  note.value = refused?.body.note || "";
  const [file, picked] = photoInput("hq-photos", photos);
  const field = (fid, text, control) => el("div", { class: "field" }, el("label", { for: fid }, text), control);
  const form = el("form", { id: "hq-form", class: "record-form" },
    field("hq-to", t("hq_to"), to), assigneeRow,
    field("hq-note", t("hq_note"), note),
    field("hq-photos", tf("hq_after_photos", { n: MAX_PHOTOS }), file), picked,
    el("button", { type: "submit", class: "primary", id: "hq-submit" }, refused ? t("hq_send_again") : t("hq_submit")));
  form.addEventListener("input", () => { form.dataset.dirty = "1"; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.querySelector("button[type=submit]").disabled = true;
    delete form.dataset.dirty; // queued: the screen may show it
    const body = { from: status.state, to: to.value, round: status.round || 0 };
    if (to.value === "dispatched") body.assignee = assignee.value;
    if (note.value.trim()) body.note = note.value.trim();
    await queue.act(report._id, body, photos, refused);
  });
  return form;
}
