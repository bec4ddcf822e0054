// Bringing the resident's copy up to date (居民端同步), and saying honestly how up to date it is.
// On start and whenever the network comes back: `/api/me` (the account's state and links), the
// outbox sent (outbox.js), and a live pull of `/couch/linli-resident`, the one database the
// server makes of what this account may hold (docs/residents.md). After every pass of the pull
// the phone asks what it holds and may no longer (`POST /api/residents/purge`: moved out, a
// notice withdrawn) and removes it; a household gone means the whole copy goes, and is pulled
// again. `status()` is what the status line shows: never "up to date" while offline, failing,
// or with something the server does not have yet.

/* global PouchDB */

import { callApi } from "../api.js";
import { message } from "../i18n.js";
import { remoteDatabase } from "../remote.js";
import { LoginError, fetchMe } from "../session.js";
import { rememberTold } from "./questionnaires.js";
import { rememberRating } from "./ratings.js";
import { residentDbName } from "./store.js";

const REMOTE_DB = "linli-resident"; // /couch/linli-resident
const PULL_BATCH = 100;
const PURGE_BATCH = 200; // ids a purge request asks about, under the server's max_batch_docs
const RETRY_FIRST_MS = 2000;
const RETRY_MOST_MS = 60000;

function nextDelay(delay) {
  return delay ? Math.min(delay * 2, RETRY_MOST_MS) : RETRY_FIRST_MS;
}

function problemOf(err) {
  if (err?.status === 404) return message("服务器暂不提供居民同步 / The server does not offer residents' sync yet");
  return message(err?.reason || err?.message || String(err));
}

export class ResidentSync {
  constructor(me, store) {
    this.me = me;
    this.store = store;
    this.remote = remoteDatabase(REMOTE_DB);
    this.state = navigator.onLine ? "syncing" : "offline";
    this.problems = {}; // by where: me, outbox, pull, purge
    this.listeners = new Set();
    this.meListeners = new Set();
    this.dataListeners = new Set();
    this.pull = null;
    this.caughtUp = false; // the pull's last pass ended with nothing left and no error
    this.pullDelay = 0;
    this.flushDelay = 0;
    this.flushTimer = null;
    this.passes = Promise.resolve(); // the work after each pass of the pull, one at a time
    this.timer = null;
    this.running = false;
    this.stopped = false;
    this.online = () => this.start();
    this.offline = () => this.emit();
    window.addEventListener("online", this.online);
    window.addEventListener("offline", this.offline);
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  onMe(listener) {
    this.meListeners.add(listener);
  }

  // Called when what the screens show changed (the account, records pulled or purged, the
  // outbox), not for every status: a screen is redrawn only when there is something new.
  onData(listener) {
    this.dataListeners.add(listener);
  }

  emit() {
    for (const listener of this.listeners) listener(this.status());
  }

  dataChanged() {
    for (const listener of this.dataListeners) listener();
  }

  status() {
    const { outbox } = this.store;
    const problem = Object.values(this.problems).find(Boolean) || null;
    let state = this.state;
    if (state === "idle" && problem) state = "error";
    if (!navigator.onLine && state !== "login") state = "offline";
    return { state, problem, lastSync: outbox.lastSync, waiting: outbox.waiting().length,
      refused: outbox.refused().length };
  }

  // Something the resident did, for the server: kept on the phone and sent when it can be.
  async send(item) {
    await this.store.outbox.add(item);
    this.dataChanged();
    this.emit();
    this.flush();
  }

  async start() {
    if (this.stopped || !navigator.onLine) {
      this.emit();
      return;
    }
    if (this.running) return;
    this.running = true;
    clearTimeout(this.timer);
    this.state = "syncing";
    this.emit();
    try {
      const fresh = await fetchMe();
      const changed = JSON.stringify(fresh) !== JSON.stringify(this.me);
      this.me = fresh;
      for (const listener of this.meListeners) listener(fresh);
      if (changed) this.dataChanged();
      delete this.problems.me;
      await this.flush();
      // A pull already caught up sends no new "paused": this start's pass is done here.
      if (this.pull && this.caughtUp) {
        const pull = this.pull;
        await this.passDone(() => this.pull === pull);
      } else this.startPull();
    } catch (err) {
      if (err instanceof LoginError && err.status === 401) this.needLogin();
      else this.failed("me", problemOf(err));
    } finally {
      this.running = false;
      this.emit();
    }
  }

  failed(where, text) {
    this.problems[where] = text;
    this.state = navigator.onLine ? "error" : "offline";
    this.pullDelay = nextDelay(this.pullDelay);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), this.pullDelay);
    this.emit();
  }

  needLogin() {
    this.stopPull();
    this.state = "login";
    this.problems = {};
    this.emit();
  }

  async flush() {
    if (this.flushing || !navigator.onLine) return;
    this.flushing = true;
    try {
      const { outbox } = this.store;
      const before = outbox.items.length;
      const failure = await outbox.flush((path, body) => callApi(path, { method: "POST", body: JSON.stringify(body) })
        .catch(() => ({ status: 0, ok: false, body: {} })), (item, reply) => this.taken(item, reply));
      clearTimeout(this.flushTimer);
      if (failure?.status === 401) this.needLogin();
      else if (failure) {
        // The network or the server failed, or asked to wait: tried again by itself.
        this.problems.outbox = message(failure.body.reason || "") || `${failure.status || "?"}`;
        this.flushDelay = Math.max(nextDelay(this.flushDelay), (failure.retryAfter || 0) * 1000);
        this.flushTimer = setTimeout(() => this.flush(), this.flushDelay);
      } else {
        delete this.problems.outbox;
        this.flushDelay = 0;
      }
      if (outbox.items.length !== before || outbox.refused().length) this.dataChanged();
    } finally {
      this.flushing = false;
      this.emit();
    }
  }

  // What the server just took, shown as its record until the pull brings the record itself
  // (in memory only: the phone's database holds only what the pull wrote).
  taken(item, reply) {
    const { store } = this;
    if (item.kind === "receipt" && reply.body.receipt?._id) {
      const before = store.docs.get(reply.body.receipt._id) || {};
      store.apply({ ...before, ...reply.body.receipt, type: "notice_receipt", created_by: this.me.name });
    } else if (item.kind === "correction" && reply.body.id && !store.docs.has(reply.body.id)) {
      store.apply({ ...item.shown, _id: reply.body.id, type: "correction_request", status: reply.body.status || "open" });
    } else if (item.kind === "checkin" && reply.body.checkin?._id) {
      // The check-in as recorded (the code's time), until the pull brings the same.
      store.apply({ ...(store.docs.get(reply.body.checkin._id) || {}), ...reply.body.checkin, type: "checkin",
        created_by: this.me.name });
    } else if (item.kind === "ranking_choice" && typeof reply.body.show === "boolean") {
      const id = `volunteer_ranking:${this.me.name}`;
      store.apply({ ...(store.docs.get(id) || {}), _id: id, type: "volunteer_ranking", created_by: this.me.name,
        show: reply.body.show, ...(reply.body.name ? { name: reply.body.name } : {}) });
    } else if (["volunteer", "mutualaid"].includes(item.kind) && reply.body.status && reply.body.status !== "pending") {
      // The server's answer until the pull brings its allocation document (the same); a
      // mutual-aid claim's subject (a ride's seats, an item's stock) is the answer's `task`.
      const id = `allocation:${(reply.body.task || item.shown.task).replace(":", ".")}:${this.me.name}`;
      store.apply({ ...(store.docs.get(id) || {}), _id: id, type: "allocation", claimant: this.me.name,
        status: reply.body.status, line: reply.body.line, promoted: reply.body.promoted });
    } else if (item.kind === "party" && reply.body.member) {
      // The membership as the server now holds it, until the pull brings it (the same).
      const id = `party_member:${this.me.name}`;
      store.apply({ ...(store.docs.get(id) || {}), ...reply.body.member, _id: id, type: "party_member" });
    } else if (item.kind === "questionnaire") {
      rememberTold(item, reply);
    } else if (item.kind === "fee_rating") {
      rememberRating(this.me.name, item, reply);
    }
  }

  startPull() {
    if (this.pull) return;
    const pull = this.store.db.replicate.from(this.remote, {
      live: true, retry: true, batch_size: PULL_BATCH,
      back_off_function: (delay) => nextDelay(delay),
    });
    this.pull = pull;
    const current = () => this.pull === pull;
    pull.on("change", (info) => {
      if (!current()) return;
      for (const doc of info.docs || []) this.store.apply(doc);
      this.dataChanged();
    });
    pull.on("active", () => {
      if (!current()) return;
      this.caughtUp = false;
      this.state = "syncing";
      this.emit();
    });
    pull.on("paused", async (err) => {
      if (!current()) return;
      this.caughtUp = !err;
      if (err) {
        this.problems.pull = problemOf(err);
        this.state = navigator.onLine ? "error" : "offline";
        this.emit();
        return;
      }
      delete this.problems.pull;
      this.passes = this.passes.then(() => this.passDone(current)).catch((failure) => {
        this.problems.purge = problemOf(failure);
        this.emit();
      });
    });
    pull.on("error", (err) => {
      // Ended by itself: a 401 (log in again) or a 403/404 (not a resident's database).
      if (!current()) return;
      this.pull = null;
      if (err?.status === 401 || err?.name === "unauthorized") return this.needLogin();
      this.failed("pull", problemOf(err));
    });
  }

  // A pass of the pull caught up: what may no longer be held goes, what waits is sent, and
  // only then is the copy up to date.
  async passDone(current) {
    if (!current()) return;
    await this.purge();
    await this.flush();
    if (!current()) return;
    this.pullDelay = 0;
    this.state = "idle";
    if (!Object.values(this.problems).some(Boolean)) await this.store.outbox.synced();
    this.emit();
  }

  // What the phone holds and may no longer, removed; the whole copy when a household went.
  async purge() {
    const held = [...this.store.docs.keys()];
    const gone = [];
    try {
      for (let i = 0; i < held.length; i += PURGE_BATCH) {
        const reply = await callApi("/api/residents/purge", { method: "POST",
          body: JSON.stringify({ held: held.slice(i, i + PURGE_BATCH) }) });
        if (reply.status === 401) return this.needLogin();
        if (!reply.ok) throw new Error(reply.body.reason || String(reply.status));
        gone.push(...(reply.body.purge || []));
      }
      delete this.problems.purge;
    } catch (err) {
      this.problems.purge = problemOf(err);
      return;
    }
    if (!gone.length) return;
    if (gone.some((id) => this.store.docs.get(id)?.type === "household")) {
      await this.startOver();
      return;
    }
    for (const id of gone) {
      const doc = this.store.docs.get(id);
      if (!doc) continue;
      try {
        await this.store.db.remove(id, doc._rev);
      } catch (err) {
        if (err.status !== 404 && err.status !== 409) throw err;
      }
      this.store.docs.delete(id);
    }
    await this.store.db.compact();
    this.dataChanged();
  }

  // A household left (moved out): the copy is destroyed and pulled again from nothing, so a
  // household given back later comes back; what waits in the outbox stays.
  async startOver() {
    this.stopPull();
    const { outbox } = this.store;
    const items = outbox.items;
    await this.store.db.destroy();
    this.store.db = new PouchDB(residentDbName(this.me.name));
    this.store.docs.clear();
    outbox.db = this.store.db;
    outbox.rev = undefined;
    await outbox.change((box) => { box.items = items; });
    try {
      const fresh = await fetchMe(); // the link is gone from the account's state too
      this.me = fresh;
      for (const listener of this.meListeners) listener(fresh);
    } catch (err) {
      if (err instanceof LoginError && err.status === 401) return this.needLogin();
    }
    this.dataChanged();
    this.startPull();
  }

  stopPull() {
    this.caughtUp = false;
    if (this.pull) {
      const pull = this.pull;
      this.pull = null;
      pull.cancel();
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.flushTimer);
    this.stopPull();
    window.removeEventListener("online", this.online);
    window.removeEventListener("offline", this.offline);
  }
}
