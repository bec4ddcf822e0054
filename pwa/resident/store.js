// What a resident's phone holds (居民端本地数据): one PouchDB database per account (IndexedDB),
// read by every resident screen, so the household and the notices open with no network. It is
// a copy of what the server lets this account hold (`/couch/linli-resident`: their household
// and its present members, their link, the notices for them, their receipts and requests),
// pulled by sync.js, and what the resident did on the phone and the server has not taken yet
// (outbox.js), which the screens show as such.
//
// Before the first pull, the household comes from `/api/me` as remembered at the last login.

/* global PouchDB */

import { Outbox } from "./outbox.js";

export function residentDbName(user) {
  return `linli-${user}-resident`;
}

const PRESENT = new Set([undefined, null, "present"]);

// A notice past its expiry: still readable, no longer counted nor answered (the server takes
// no receipt for it).
export function expired(notice, now = Date.now()) {
  return Boolean(notice.expires_at) && Date.parse(notice.expires_at) < now;
}

export class ResidentStore {
  constructor(me) {
    this.me = me;
    this.db = new PouchDB(residentDbName(me.name));
    this.docs = new Map();
    this.outbox = new Outbox(this.db);
  }

  async load() {
    const all = await this.db.allDocs({ include_docs: true });
    for (const row of all.rows) this.apply(row.doc);
    await this.outbox.load();
    return this;
  }

  // A record as the pull wrote it; the endpoint's doorbell (`linli-sync`) is no record.
  apply(doc) {
    if (!doc || doc._id.startsWith("_") || doc.type === "sync") return;
    if (doc._deleted) this.docs.delete(doc._id);
    else this.docs.set(doc._id, doc);
  }

  // The active links of the account, each with its household as the phone holds it: the
  // pulled record if there is one, else the one `/api/me` gave.
  households() {
    const links = (this.me.resident?.households || []).filter((l) => l.status === "active");
    const byHousehold = new Map(links.map((l) => [l.household, l]));
    for (const link of this.docs.values()) {
      if (link.type === "resident" && link.account === this.me.name && link.status === "active" &&
        !byHousehold.has(link.household)) byHousehold.set(link.household, link);
    }
    return [...byHousehold.values()].map((link) => ({
      link, record: this.docs.get(link.household) || link.record || null }));
  }

  members(household) {
    return [...this.docs.values()]
      .filter((d) => d.type === "person" && d.household === household && PRESENT.has(d.status))
      .sort((a, b) => String(a.relationship ?? "").localeCompare(String(b.relationship ?? "")) ||
        String(a.name).localeCompare(String(b.name), "zh-CN"));
  }

  // Notices: pinned first, then the newest.
  notices() {
    return [...this.docs.values()].filter((d) => d.type === "notice" && d.status !== "withdrawn")
      .sort((a, b) => Number(Boolean(b.pinned)) - Number(Boolean(a.pinned)) ||
        String(b.published_at || "").localeCompare(String(a.published_at || "")));
  }

  // The resident's receipt of a notice: the server's, or the one waiting on the phone
  // (`waiting: true`), a confirmation waiting over a read the server has.
  receipt(noticeId) {
    const stored = this.docs.get(`notice_receipt:${noticeId.slice("notice:".length)}:${this.me.name}`);
    const queued = this.outbox.items.find((i) => i.key === `receipt:${noticeId}`);
    if (!queued) return stored || null;
    if (stored?.confirmed_at || (stored && !queued.body.confirmed)) return stored;
    return { ...(stored || {}), read_at: stored?.read_at || queued.shown.read_at,
      confirmed_at: queued.body.confirmed ? queued.shown.confirmed_at : undefined, waiting: true,
      refused: queued.refused };
  }

  // Unread: the notices still in force that the resident has not opened.
  unread(now = Date.now()) {
    return this.notices().filter((n) => !expired(n, now) && !this.receipt(n._id)).length;
  }

  // The household's correction requests: the server's, then those waiting on the phone.
  corrections(household) {
    const stored = [...this.docs.values()]
      .filter((d) => d.type === "correction_request" && d.household === household)
      .sort((a, b) => String(b._id).localeCompare(String(a._id)));
    const queued = this.outbox.items.filter((i) => i.kind === "correction" && i.shown.household === household)
      .map((i) => ({ ...i.shown, waiting: !i.refused, refused: i.refused }));
    return [...queued, ...stored];
  }
}
