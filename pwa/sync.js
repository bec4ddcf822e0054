// A grid's records on the phone and their replication with the server. The phone keeps one
// PouchDB database (IndexedDB) per user and grid and replicates it both ways with the grid's
// database behind the gateway (`/couch/grid-<code>`), live, retrying with back-off whenever the
// network comes and goes.
//
// What the sync bar shows is kept here, in the phone's database so it survives a reload:
// - waiting: records saved on the phone that the server has not acknowledged (the outbox);
// - refused: records the server refused, with its reason; they stay on the phone and go again
//   when the worker corrects and saves them (a new revision is a new change to push).
// - problem: why the replication is failing right now, if it is (see `describeProblem`). The bar
//   shows it, never "synced", until both directions have caught up again.
// - download: until the pull has once caught up with the grid (`downloaded`, kept in the outbox
//   document), the grid on the phone is incomplete: the bar says so, with the records on the
//   phone against the grid database's count (its info, which the replication asks anyway). A
//   pull cut off resumes from PouchDB's last checkpoint when the network returns (the
//   replication's name, which finds that checkpoint, never depends on the network: remote.js).
// Local documents (`_local/...`) never replicate, so the outbox and drafts stay on the phone.

/* global PouchDB */

import { remoteDatabase } from "./remote.js";

const OUTBOX = "_local/linli-outbox";
// Records per batch of the pull. Each batch costs three round trips besides its bytes (the
// documents, then the server's checkpoint read and written), so on a slow link (400 ms) fewer,
// bigger batches are most of the first download's time saved; the server gzips each batch
// (server/sync/replication.py relay). A 500-household grid comes down in three.
const PULL_BATCH = 1000;
// Retries after a failure: 1 s, doubling to a minute, so a phone neither hammers a failing
// server nor waits long once it is back.
const RETRY_FIRST_MS = 1000;
const RETRY_MOST_MS = 60000;
const DIRECTIONS = ["push", "pull"];

function isAuthError(err) {
  return Boolean(err) && (err.status === 401 || err.name === "unauthorized");
}

// PouchDB's words for a pull stopped at a document (see describeProblem).
const STUCK_AT_DOCUMENT = new Set(["There was a problem getting docs.",
  "batch processing terminated with error"]);

function nextDelay(delay) {
  return delay ? Math.min(delay * 2, RETRY_MOST_MS) : RETRY_FIRST_MS;
}

// What went wrong with the replication, as the sync bar names it. PouchDB gives HTTP errors as
// {status, name, reason}, a failed fetch as a TypeError, a document the pull could not get as
// "There was a problem getting docs.", a batch the phone could not store as "batch processing
// terminated with error" (PouchDB's words when the cause had none), and a document a batch
// refused as {id, error, reason}.
export function describeProblem(err) {
  const status = Number(err && err.status) || 0;
  const name = String((err && (err.name || err.error)) || "");
  const reason = String((err && (err.reason || err.message)) || name || "");
  const id = (err && (err.id || err.docId)) || "";
  if (status === 401 || name === "unauthorized") return { kind: "login", status: 401, reason, id };
  if (status === 403 || name === "forbidden") return { kind: "forbidden", status: 403, reason, id };
  if (id || (!status && STUCK_AT_DOCUMENT.has(reason))) return { kind: "document", status, reason, id };
  // The gateway answers 404 for a grid the worker no longer has, as for one that never was.
  if (status === 404) return { kind: "missing", status, reason, id };
  if (status === 429 || status === 503) return { kind: "busy", status, reason, id };
  if (status >= 500) return { kind: "server", status, reason, id };
  if (!status && (err instanceof TypeError || /fetch|network/i.test(reason))) {
    return { kind: "network", status, reason, id };
  }
  return { kind: "failed", status, reason, id };
}

export function localDbName(user, gridDb) {
  return `linli-${user}-${gridDb}`;
}

// A user who may no longer keep a grid on the phone (no unmask right) should not keep its
// records either: each grid's copy is deleted, unless it still holds records the server has
// not acknowledged (those stay until they can be sent, so nothing is lost). The grids kept.
export async function forgetGrids(user, grids) {
  const kept = [];
  for (const grid of grids) {
    const db = new PouchDB(localDbName(user, grid.db));
    let pending = {};
    try {
      pending = (await db.get(OUTBOX)).pending || {};
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    if (Object.keys(pending).length) kept.push(grid.code);
    else await db.destroy();
  }
  return kept;
}

// The record types filed under a campaign (server/domain/campaigns.py rule 1): their ids start
// with the type.
const CAMPAIGN_TYPES = ["screening", "census_household"];

// The local records of campaigns the server purged from a grid (`purged` in /api/me), found by
// their ids' ranges.
async function purgedRecords(db, purged) {
  const found = [];
  for (const type of CAMPAIGN_TYPES) {
    const rows = (await db.allDocs({ startkey: `${type}:`, endkey: `${type}:\ufff0`, include_docs: true, conflicts: true })).rows;
    found.push(...rows.filter((row) => row.doc && purged.includes(row.doc.campaign)).map((row) => row.id));
  }
  return found;
}

// A campaign purged on the server leaves the phone at its next start: the grid's copy is made
// again without its records (every other record copied, with its revisions, into a new
// database, the old one destroyed, and the copy moved back; the outbox too, less those records),
// so nothing of them stays in IndexedDB, not even an old revision. The server refuses them if
// they were sent again. Returns how many records went.
export async function purgeCampaigns(user, grid) {
  const purged = grid.purged || [];
  if (!purged.length) return 0;
  const name = localDbName(user, grid.db);
  const db = new PouchDB(name);
  const gone = new Set(await purgedRecords(db, purged));
  if (!gone.size) return 0;
  let outbox = null;
  try {
    outbox = await db.get(OUTBOX);
  } catch (err) {
    if (err.status !== 404) throw err;
  }
  const spare = new PouchDB(`${name}-purging`);
  await db.replicate.to(spare, { filter: (doc) => !gone.has(doc._id) });
  await db.destroy();
  const fresh = new PouchDB(name);
  await spare.replicate.to(fresh);
  await spare.destroy();
  if (outbox) {
    const { _rev, ...box } = outbox;
    for (const id of gone) {
      delete (box.pending || {})[id];
      delete (box.refused || {})[id];
    }
    await fresh.put(box);
  }
  await fresh.compact();
  return gone.size;
}

// Records the worker no longer needs leave the phone at its next start (issue 23 item 4): a
// household that moved out (迁出) and every record filed under it (its persons, visits,
// screenings) are deleted from the grid's copy and the copy compacted, so no revision of them
// keeps their ID numbers or phones. Only on the phone: the deletion is never pushed (the push
// sends the outbox alone), and a record still waiting in the outbox stays until it is sent.
// Should the server change one again (a household moving back), the pull brings it back. Not
// before the grid has once been downloaded whole (the first download counts the grid's records).
// Returns how many records went.
export async function dropUnneeded(user, grid) {
  const db = new PouchDB(localDbName(user, grid.db));
  // The households first (a record's id starts with its type): most starts find none moved out
  // and read no further.
  const households = (await db.allDocs({ startkey: "household:", endkey: "household:\ufff0", include_docs: true })).rows;
  const moved = new Set(households.filter((row) => row.doc && row.doc.type === "household" && row.doc.status === "moved_out")
    .map((row) => row.id));
  if (!moved.size) return 0;
  let box = {};
  try {
    box = await db.get(OUTBOX);
  } catch (err) {
    if (err.status !== 404) throw err;
  }
  if (!box.downloaded && !box.last_sync) return 0; // not during the first download: it counts
  const rows = (await db.allDocs({ include_docs: true })).rows.filter((row) => row.doc && !row.id.startsWith("_"));
  const pending = box.pending || {};
  const gone = rows.filter((row) => (moved.has(row.id) || moved.has(row.doc.household)) && !Object.hasOwn(pending, row.id))
    .map((row) => ({ _id: row.id, _rev: row.doc._rev, _deleted: true }));
  if (!gone.length) return 0;
  await db.bulkDocs(gone);
  // Only their revisions are compacted: a first compact() of the whole copy takes seconds of the
  // phone's time (every record), for nothing of these. compactDocument is what compact() runs
  // for each record.
  if (typeof db.compactDocument === "function") {
    for (const { _id } of gone) await db.compactDocument(_id, 0);
  } else await db.compact();
  return gone.length;
}

// The copies of grids the user no longer has (moved to another grid, or taken off one) leave
// the phone, as `forgetGrids` does: kept only while they hold records not yet sent. Returns the
// grids whose copies went.
export async function forgetOtherGrids(user, grids) {
  const prefix = `_pouch_${localDbName(user, "")}`;
  const mine = new Set(grids.map((grid) => grid.db));
  const others = (await indexedDB.databases()).map(({ name }) => name)
    .filter((name) => name.startsWith(prefix) && !name.endsWith("-purging"))
    .map((name) => name.slice(prefix.length)).filter((db) => db.startsWith("grid-") && !mine.has(db));
  const kept = await forgetGrids(user, others.map((db) => ({ db, code: db.slice("grid-".length) })));
  return others.filter((db) => !kept.includes(db.slice("grid-".length)));
}

export class GridSync {
  constructor(user, grid) {
    this.user = user;
    this.grid = grid;
    this.db = new PouchDB(localDbName(user, grid.db));
    this.remote = remoteDatabase(grid.db);
    this.handle = null;
    this.listeners = new Set();
    this.outbox = { pending: {}, refused: {}, last_sync: 0 };
    this.state = navigator.onLine ? "syncing" : "offline";
    // Why the sync is failing, by where: push, pull, sync (it ended itself) or pulled (a record
    // the phone's database refused).
    this.problems = {};
    this.caughtUp = { push: false, pull: false };
    this.refusedPulls = {}; // the records the phone's database refused, by id (problems.pulled)
    this.restartDelay = 0;
    this.restartTimer = null;
    this.queue = Promise.resolve(); // outbox writes, one at a time
    // The first download's progress: records on the phone, records of the grid (0: not known
    // yet), and whether a count of the phone's is under way or asked again meanwhile.
    this.download = { have: 0, total: 0 };
    this.counting = null;
  }

  // Whether the grid has once been downloaded whole (a phone synced before this mark was kept
  // has a last sync, which needed the pull caught up).
  downloaded() {
    return Boolean(this.outbox.downloaded || this.outbox.last_sync);
  }

  // The records on the phone, counted again (once at a time, and once more if asked meanwhile);
  // with `remote`, the grid's count asked of the server too.
  countDownload(remote = false) {
    if (remote) {
      this.remote.info().then((info) => {
        // Kept with the outbox, so a phone cut off and opened again offline still says how
        // much of the grid it lacks.
        const total = Number(info.doc_count) || 0;
        this.download.total = total;
        if (this.outbox.download_total !== total) {
          this.updateOutbox((box) => {
            box.download_total = total;
          });
        } else this.emit();
      }, () => {}); // offline: the total stays as last known
    }
    if (this.counting) {
      this.counting.again = true;
      return;
    }
    this.counting = { again: false };
    this.db.info().then((info) => {
      this.download.have = Number(info.doc_count) || 0;
    }, () => {}).finally(() => {
      const again = this.counting.again;
      this.counting = null;
      this.emit();
      if (again) this.countDownload();
    });
  }

  async open() {
    try {
      const stored = await this.db.get(OUTBOX);
      this.outbox = { pending: {}, refused: {}, last_sync: 0, ...stored };
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    // A mark left by a tab closed between marking a save and writing it: the record's revision
    // on the phone now, for the push and `reconcile` to clear; none if it was never written.
    const unsure = Object.keys(this.outbox.pending).filter((id) => this.outbox.pending[id] === "?");
    if (unsure.length) {
      const found = await this.db.allDocs({ keys: unsure });
      await this.updateOutbox((box) => {
        for (const row of found.rows) {
          if (box.pending[row.key] !== "?") continue;
          if (row.value) box.pending[row.key] = row.value.rev; // a deletion too
          else delete box.pending[row.key];
        }
      });
    }
    // The grid's count from the login's /api/me until the phone has asked the grid itself: the
    // bar says how much is missing a round trip sooner (400 ms on a slow link).
    this.download.total = this.outbox.download_total || Number(this.grid.doc_count) || 0;
    return this;
  }

  onStatus(listener) {
    this.listeners.add(listener);
    listener(this.status());
    return () => this.listeners.delete(listener);
  }

  // The first problem the worker must know of: a refusal of the whole grid before a document,
  // before a server or network failure.
  problem() {
    const found = Object.values(this.problems).filter(Boolean);
    const rank = ["login", "forbidden", "missing", "document", "server", "failed", "busy", "network"];
    found.sort((a, b) => rank.indexOf(a.kind) - rank.indexOf(b.kind));
    return found[0] || null;
  }

  status() {
    const problem = this.problem();
    return {
      state: problem && this.state !== "login" && this.state !== "offline" ? "error" : this.state,
      problem,
      lastSync: this.outbox.last_sync || 0,
      waiting: Object.keys(this.outbox.pending).length,
      download: { complete: this.downloaded(), have: this.download.have, total: this.download.total },
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
      // The push has a record to send: not caught up until it has (its "paused" says so).
      this.caughtUp.push = false;
      if (this.state === "idle") this.state = "syncing";
    });
    let res;
    try {
      res = await this.db.put(doc);
    } catch (err) {
      await this.updateOutbox((box) => {
        if (box.pending[doc._id] === "?") delete box.pending[doc._id];
      });
      this.nothingToPush();
      throw err;
    }
    await this.updateOutbox((box) => {
      if (box.pending[doc._id] === "?") box.pending[doc._id] = res.rev;
    });
    return res;
  }

  start() {
    if (this.handle) return;
    clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.state = navigator.onLine ? "syncing" : "offline";
    this.caughtUp = { push: false, pull: false };
    // A new start tries again: what the network did before is no longer known.
    for (const [where, problem] of Object.entries(this.problems)) {
      if (where === "pulled" || problem.kind === "network") delete this.problems[where];
    }
    this.refusedPulls = {};
    if (!this.downloaded()) this.countDownload(true);
    this.emit();
    const handle = this.db.sync(this.remote, {
      live: true,
      retry: true,
      pull: { batch_size: PULL_BATCH },
      // Only what the worker wrote goes up. Without the filter every record the pull brings
      // down would be offered back to the server (a _revs_diff per batch, for nothing). A record
      // enters the outbox before it is written, so none can slip past.
      push: { batch_size: 100, filter: (doc) => Object.hasOwn(this.outbox.pending, doc._id) },
      // Called right after the failure it answers ("requestError" below): its retry time.
      back_off_function: (delay) => {
        const next = nextDelay(delay);
        const problem = this.problems[this.lastFailed];
        if (handle === this.handle && problem) {
          problem.retryAt = Date.now() + next;
          this.emit();
        }
        return next;
      },
    });
    this.handle = handle;
    const current = () => this.handle === handle;
    handle.on("change", (info) => {
      if (current() && info.direction === "pull") {
        // A refused record that comes down again and is taken (corrected, or deleted) is no
        // longer a problem. The change lists only the records the phone took.
        let taken = false;
        for (const doc of info.change.docs || []) {
          if (this.refusedPulls[doc._id]) taken = delete this.refusedPulls[doc._id];
        }
        if (taken) this.namePulled();
        if (!this.downloaded()) this.countDownload();
      }
      if (current() && info.direction === "push") {
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
      if (!current() || !id) return;
      if (event.direction === "pull") {
        // The phone's own database refused a record of the grid: the worker cannot fix it.
        // The pull went on past it: it stays named until the record comes down again and is
        // taken, or the next start.
        this.refusedPulls[id] = { ...describeProblem({ ...err, id }), kind: "document" };
        this.namePulled();
        return;
      }
      const reason = err.reason || err.message || "forbidden";
      this.updateOutbox((box) => {
        box.refused[id] = { reason, rev: box.pending[id] || null, at: Date.now() };
        delete box.pending[id];
      });
    });
    // Each direction on its own: a two-way sync reports "paused" without the error when either
    // side fails, and would look caught up while the pull is stuck on a document.
    for (const direction of DIRECTIONS) {
      const replication = handle[direction];
      replication.on("requestError", (err) => {
        if (!current()) return;
        if (isAuthError(err)) return this.needLogin();
        this.lastFailed = direction;
        this.caughtUp[direction] = false;
        this.problems[direction] = { ...describeProblem(err), direction };
        this.emit();
      });
      replication.on("active", () => {
        if (!current()) return;
        // Busy again: until it pauses cleanly it is not caught up, whatever the other side says.
        this.caughtUp[direction] = false;
        this.state = "syncing";
        this.emit();
      });
      replication.on("paused", (err) => {
        if (!current() || err) return; // a failure: "requestError" has told it
        this.caughtUp[direction] = true;
        delete this.problems[direction];
        if (direction === "pull" && !this.downloaded()) {
          // Caught up with the grid for the first time: the phone holds it whole. Marked at
          // once (the bar may say synced in this same event), then kept.
          this.outbox.downloaded = true;
          this.updateOutbox(() => {});
        }
        if (this.caughtUp.push && this.caughtUp.pull) this.settled();
        else this.emit();
      });
    }
    handle.on("error", (err) => {
      // The replication has ended itself: a 401 or 403 (PouchDB does not retry those).
      if (!current()) return;
      this.handle = null;
      if (isAuthError(err)) return this.needLogin();
      this.problems.sync = describeProblem(err);
      this.restartDelay = nextDelay(this.restartDelay);
      this.problems.sync.retryAt = Date.now() + this.restartDelay;
      this.restartTimer = setTimeout(() => this.start(), this.restartDelay);
      this.emit();
    });
  }

  // The first record the phone refused and still has not taken, if any.
  namePulled() {
    const [first] = Object.values(this.refusedPulls);
    if (first) this.problems.pulled = first;
    else delete this.problems.pulled;
    this.emit();
  }

  // A save that wrote nothing gives the push nothing to do, so no "paused" would come to say it
  // is caught up again: said here, if the push is waiting for changes with no error.
  nothingToPush() {
    const push = this.handle && this.handle.push;
    if (this.caughtUp.push || !push || push.state !== "pending" || this.problems.push) return;
    if (Object.values(this.outbox.pending).includes("?")) return; // another save under way
    this.caughtUp.push = true;
    if (this.caughtUp.pull) this.settled();
    else this.emit();
  }

  // Both directions caught up with no error: the grid is in sync.
  settled() {
    if (!navigator.onLine) {
      this.state = "offline";
      this.emit();
      return;
    }
    this.problems = this.problems.pulled ? { pulled: this.problems.pulled } : {};
    this.restartDelay = 0;
    this.state = "idle";
    this.updateOutbox((box) => {
      box.last_sync = Date.now();
    });
    this.reconcile();
  }

  stop() {
    clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (this.handle) {
      const handle = this.handle;
      this.handle = null;
      handle.cancel();
    }
  }

  needLogin() {
    this.stop();
    this.problems = {};
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
