// A grid's records on the phone and their replication with the server. The phone keeps one
// PouchDB database (IndexedDB) per user and grid and replicates it both ways with the grid's
// database behind the gateway (`/couch/grid-<code>`), live, retrying with back-off whenever the
// network comes and goes.
//
// What the sync bar shows is kept here, in the phone's database so it survives a reload:
// - waiting: records saved on the phone that the server has not acknowledged (the outbox);
// - refused: records the server refused, with its reason; they stay on the phone and go again
//   when the worker corrects and saves them (a new revision is a new change to push).
// Local documents (`_local/...`) never replicate, so the outbox and drafts stay on the phone.

/* global PouchDB */

const OUTBOX = "_local/linli-outbox";
const PULL_BATCH = 500;

function isAuthError(err) {
  return Boolean(err) && (err.status === 401 || err.name === "unauthorized");
}

export function localDbName(user, gridDb) {
  return `linli-${user}-${gridDb}`;
}

export class GridSync {
  constructor(user, grid) {
    this.user = user;
    this.grid = grid;
    this.db = new PouchDB(localDbName(user, grid.db));
    this.remote = new PouchDB(new URL(`/couch/${grid.db}`, location.origin).href, {
      skip_setup: true,
      fetch: (url, opts) => PouchDB.fetch(url, { ...opts, credentials: "same-origin" }),
    });
    this.handle = null;
    this.listeners = new Set();
    this.outbox = { pending: {}, refused: {}, last_sync: 0 };
    this.state = navigator.onLine ? "syncing" : "offline";
    this.queue = Promise.resolve(); // outbox writes, one at a time
  }

  async open() {
    try {
      const stored = await this.db.get(OUTBOX);
      this.outbox = { pending: {}, refused: {}, last_sync: 0, ...stored };
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    return this;
  }

  onStatus(listener) {
    this.listeners.add(listener);
    listener(this.status());
    return () => this.listeners.delete(listener);
  }

  status() {
    return {
      state: this.state,
      lastSync: this.outbox.last_sync || 0,
      waiting: Object.keys(this.outbox.pending).length,
      refused: Object.entries(this.outbox.refused).map(([id, r]) => ({ id, ...r })),
    };
  }

  emit() {
    const status = this.status();
    for (const listener of this.listeners) listener(status);
  }

  // Outbox changes are read-modify-write of one local document, so they are queued.
  updateOutbox(change) {
    this.queue = this.queue.then(async () => {
      change(this.outbox);
      for (;;) {
        try {
          const res = await this.db.put({ ...this.outbox, _id: OUTBOX });
          this.outbox._rev = res.rev;
          break;
        } catch (err) {
          if (err.status !== 409) throw err;
          this.outbox._rev = (await this.db.get(OUTBOX))._rev;
        }
      }
      this.emit();
    }).catch((err) => console.error("outbox", err));
    return this.queue;
  }

  // Save a record the worker wrote; it is queued for the server until acknowledged.
  // Marked before it is written, so a refusal that comes back at once is not lost.
  async save(doc) {
    await this.updateOutbox((box) => {
      box.pending[doc._id] = "?";
      delete box.refused[doc._id];
    });
    let res;
    try {
      res = await this.db.put(doc);
    } catch (err) {
      await this.updateOutbox((box) => {
        if (box.pending[doc._id] === "?") delete box.pending[doc._id];
      });
      throw err;
    }
    await this.updateOutbox((box) => {
      if (box.pending[doc._id] === "?") box.pending[doc._id] = res.rev;
    });
    return res;
  }

  start() {
    if (this.handle) return;
    this.state = navigator.onLine ? "syncing" : "offline";
    this.emit();
    const handle = this.db.sync(this.remote, {
      live: true,
      retry: true,
      pull: { batch_size: PULL_BATCH },
      // Only what the worker wrote goes up. Without the filter every record the pull brings
      // down would be offered back to the server (a _revs_diff per batch, for nothing). A record
      // enters the outbox before it is written, so none can slip past.
      push: { batch_size: 100, filter: (doc) => Object.hasOwn(this.outbox.pending, doc._id) },
      back_off_function: (delay) => (delay === 0 ? 1000 : Math.min(delay * 2, 60000)),
    });
    this.handle = handle;
    handle.on("change", (info) => {
      if (info.direction === "push") {
        const docs = info.change.docs || [];
        this.updateOutbox((box) => {
          for (const doc of docs) {
            if (box.pending[doc._id] === doc._rev) delete box.pending[doc._id];
          }
        });
      }
    });
    handle.on("denied", (event) => {
      // A sync wraps the replication's refusal: {direction, doc: {id, error, reason}}.
      const err = event.doc && event.direction ? event.doc : event;
      const id = err.id || err._id;
      if (!id) return;
      const reason = err.reason || err.message || "forbidden";
      this.updateOutbox((box) => {
        box.refused[id] = { reason, rev: box.pending[id] || null, at: Date.now() };
        delete box.pending[id];
      });
    });
    handle.on("active", () => {
      this.state = "syncing";
      this.emit();
    });
    handle.on("paused", (err) => {
      if (isAuthError(err)) return this.needLogin();
      if (err || !navigator.onLine) {
        this.state = "offline";
        this.emit();
        return;
      }
      this.state = "idle";
      this.updateOutbox((box) => {
        box.last_sync = Date.now();
      });
      this.reconcile();
    });
    handle.on("error", (err) => {
      if (isAuthError(err)) return this.needLogin();
      this.state = "error";
      this.error = err;
      this.emit();
    });
  }

  stop() {
    if (this.handle) {
      this.handle.cancel();
      this.handle = null;
    }
  }

  needLogin() {
    this.stop();
    this.state = "login";
    this.emit();
  }

  // The server's word on what is still waiting: a record written on the phone whose revision
  // the server already holds (its acknowledgement was lost to a closed tab) leaves the outbox.
  async reconcile() {
    const ids = Object.keys(this.outbox.pending).filter((id) => this.outbox.pending[id] !== "?");
    if (ids.length === 0) return;
    const revs = {};
    for (const id of ids) revs[id] = [this.outbox.pending[id]];
    let missing;
    try {
      missing = await this.remote.revsDiff(revs);
    } catch {
      return;
    }
    await this.updateOutbox((box) => {
      for (const id of ids) {
        if (!missing[id] && box.pending[id] === revs[id][0]) delete box.pending[id];
      }
    });
  }

  // Drafts: what the worker has typed into a form and not yet saved, kept as typed.
  async loadDraft(key) {
    try {
      return (await this.db.get(`_local/draft~${key}`)).values;
    } catch {
      return null;
    }
  }

  async saveDraft(key, values) {
    const id = `_local/draft~${key}`;
    let rev;
    try {
      rev = (await this.db.get(id))._rev;
    } catch {
      rev = undefined;
    }
    try {
      await this.db.put({ _id: id, _rev: rev, values, at: Date.now() });
    } catch (err) {
      if (err.status !== 409) throw err;
    }
  }

  async dropDraft(key) {
    try {
      const doc = await this.db.get(`_local/draft~${key}`);
      await this.db.remove(doc);
    } catch {
      // no draft
    }
  }
}

// Ask the browser to keep the phone's data under storage pressure, and tell how much is left.
export async function storageReport() {
  const report = { persisted: null, low: false };
  if (!navigator.storage) return report;
  try {
    report.persisted = navigator.storage.persisted ? await navigator.storage.persisted() : null;
    if (report.persisted === false && navigator.storage.persist) {
      report.persisted = await navigator.storage.persist();
    }
    if (navigator.storage.estimate) {
      const { usage = 0, quota = 0 } = await navigator.storage.estimate();
      report.low = quota > 0 && (quota - usage < 50 * 1024 * 1024 || usage / quota > 0.9);
    }
  } catch {
    // not offered by this browser
  }
  return report;
}
