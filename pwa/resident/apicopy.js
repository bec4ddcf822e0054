// A copy of what the server's routes answered, kept in one local document of the phone's
// database (`_local/` never replicates), so a screen opens offline and says how old it is.
// `read(copy)` asks the routes and fills `copy.data`; it runs at most every 2 s unless forced,
// and only online; a failure leaves the copy as it was. (votes.js keeps its own of the same.)

import { cityTime } from "../i18n.js";

// A queued request's own id (24 hex digits): the server takes a retry as the same request.
export function requestId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// A stored date-time as the city reads it ("" when it is none).
export function dateOf(value) {
  const ms = Date.parse(value || "");
  return Number.isNaN(ms) ? "" : cityTime(ms, { date: true });
}

// A JSON object this phone keeps in localStorage under `key` ({} when none or unreadable):
// what the server told of a request sent, which no synced document says.
export function keptJson(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || "{}");
  } catch {
    return {};
  }
}

export class ApiCopy {
  constructor(db, id, empty) {
    this.db = db;
    this.id = id;
    this.data = empty;
    this.at = 0;
    this.rev = undefined;
    this.tried = 0;
  }

  static async open(db, id, empty) {
    const copy = new ApiCopy(db, id, empty);
    try {
      const doc = await db.get(id);
      Object.assign(copy, { data: doc.data || empty, at: doc.at || 0, rev: doc._rev });
    } catch {
      // nothing kept yet
    }
    return copy;
  }

  async refresh(read, force = false) {
    if (!navigator.onLine || (!force && Date.now() - this.tried < 2000)) return false;
    this.tried = Date.now();
    try {
      if (!(await read(this))) return false;
    } catch {
      return false;  // offline or slow: the copy stays, with its time
    }
    this.at = Date.now();
    for (;;) {
      try {
        this.rev = (await this.db.put({ _id: this.id, _rev: this.rev, data: this.data, at: this.at })).rev;
        return true;
      } catch (err) {
        if (err.status !== 409) return true;
        this.rev = (await this.db.get(this.id))._rev;
      }
    }
  }
}
