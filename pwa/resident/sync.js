// Bringing the resident's copy up to date (居民端同步), and saying honestly how up to date it is.
// On start and whenever the network comes back: `/api/me` (the account's state and links), then
// the replication of what the server allows this account, which also sends what the resident
// wrote. `status()` is what the status line shows: never "up to date" while offline, failing,
// or with records the server does not have yet.

import { LoginError, fetchMe } from "../session.js";
import { message } from "../i18n.js";

const OUTBOX = "_local/linli-resident-outbox";
const RETRY_FIRST_MS = 2000;
const RETRY_MOST_MS = 60000;

export class ResidentSync {
  constructor(me, store) {
    this.me = me;
    this.store = store;
    this.state = navigator.onLine ? "syncing" : "offline";
    this.problem = null;
    this.lastSync = 0;
    this.pending = {};
    this.listeners = new Set();
    this.meListeners = new Set();
    this.dataListeners = new Set();
    this.retryDelay = 0;
    this.timer = null;
    this.running = false;
    this.stopped = false;
    this.online = () => this.start();
    this.offline = () => this.emit();
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  onMe(listener) {
    this.meListeners.add(listener);
  }

  // Called when what the screens show changed (the account's state, records pulled or purged),
  // not for every status: a screen is redrawn only when there is something new on it.
  onData(listener) {
    this.dataListeners.add(listener);
  }

  dataChanged() {
    for (const listener of this.dataListeners) listener();
  }

  emit() {
    for (const listener of this.listeners) listener(this.status());
  }

  status() {
    const waiting = Object.keys(this.pending).length;
    let state = this.state;
    if (!navigator.onLine && state !== "login") state = "offline";
    return { state, problem: this.problem, lastSync: this.lastSync, waiting };
  }

  async loadOutbox() {
    try {
      const box = await this.store.db.get(OUTBOX);
      this.pending = box.pending || {};
      this.lastSync = box.last_sync || 0;
      this.outboxRev = box._rev;
    } catch (err) {
      if (err.status !== 404) throw err;
    }
  }

  async saveOutbox() {
    for (;;) {
      try {
        const res = await this.store.db.put({ _id: OUTBOX, _rev: this.outboxRev, pending: this.pending,
          last_sync: this.lastSync });
        this.outboxRev = res.rev;
        return;
      } catch (err) {
        if (err.status !== 409) throw err;
        this.outboxRev = (await this.store.db.get(OUTBOX))._rev;
      }
    }
  }

  // A record the resident wrote: waiting until the server has it.
  async wrote(doc) {
    this.pending[doc._id] = doc._rev;
    await this.saveOutbox();
    this.emit();
    this.start();
  }

  async start() {
    if (this.stopped) return;
    if (!this.outboxLoaded) {
      this.outboxLoaded = true;
      await this.loadOutbox();
      window.addEventListener("online", this.online);
      window.addEventListener("offline", this.offline);
    }
    if (this.running || !navigator.onLine) {
      this.emit();
      return;
    }
    clearTimeout(this.timer);
    this.running = true;
    this.state = "syncing";
    this.emit();
    try {
      const fresh = await fetchMe();
      const changed = JSON.stringify(fresh) !== JSON.stringify(this.me);
      this.me = fresh;
      for (const listener of this.meListeners) listener(fresh);
      if (changed) this.dataChanged();
      await this.replicate();
      this.problem = null;
      this.retryDelay = 0;
      this.state = "idle";
      this.lastSync = Date.now();
      await this.saveOutbox();
    } catch (err) {
      if (err instanceof LoginError && err.status === 401) {
        this.state = "login";
        this.problem = null;
      } else {
        this.state = navigator.onLine ? "error" : "offline";
        this.problem = message(err?.message || String(err));
        this.retryDelay = Math.min(this.retryDelay ? this.retryDelay * 2 : RETRY_FIRST_MS, RETRY_MOST_MS);
        this.timer = setTimeout(() => this.start(), this.retryDelay);
      }
    } finally {
      this.running = false;
      this.emit();
    }
  }

  // The replication of the account's allowed records: still to come from the server (the
  // resident sync endpoint); until then the phone holds what `/api/me` gives.
  async replicate() {}

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.online);
    window.removeEventListener("offline", this.offline);
  }
}
