// What a resident's phone holds (居民端本地数据): one PouchDB database per account (IndexedDB),
// read by every resident screen, so the household and the notices open with no network. It
// holds what the server lets this account hold (their household and its present members, their
// link, the notices for them) and what the resident writes (receipts, correction requests),
// which wait on the phone until the server has them.
//
// Until the first sync, the household comes from `/api/me` as remembered at the last login
// (the household record only; its members come with the sync).

/* global PouchDB */

export function residentDbName(user) {
  return `linli-${user}-resident`;
}

const PRESENT = new Set([undefined, null, "present"]);

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return Date.now().toString(36) + [...bytes].map((b) => b.toString(36).padStart(2, "0")).join("");
}

// The phone's clock with its offset, as the schemas' date-time wants it (the server stamps its
// own receipt time; this one is the resident's).
export function deviceTime(date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const abs = Math.abs(offset);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:` +
    `${pad(date.getMinutes())}:${pad(date.getSeconds())}${offset >= 0 ? "+" : "-"}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export class ResidentStore {
  constructor(me) {
    this.me = me;
    this.db = new PouchDB(residentDbName(me.name));
    this.docs = new Map();
  }

  async load() {
    const all = await this.db.allDocs({ include_docs: true });
    for (const row of all.rows) if (!row.id.startsWith("_")) this.docs.set(row.id, row.doc);
    return this;
  }

  apply(doc) {
    if (doc._deleted) this.docs.delete(doc._id);
    else this.docs.set(doc._id, doc);
  }

  // The active links of the account, each with its household as the phone holds it: the
  // synced record if there is one, else the one `/api/me` gave at login.
  households() {
    const links = (this.me.resident?.households || []).filter((l) => l.status === "active");
    const synced = [...this.docs.values()].filter((d) => d.type === "resident" && d.account === this.me.name);
    const byHousehold = new Map(links.map((l) => [l.household, l]));
    for (const link of synced) {
      if (link.status === "active" && !byHousehold.has(link.household)) byHousehold.set(link.household, link);
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

  receiptId(noticeId) {
    return `notice_receipt:${noticeId.slice("notice:".length)}:${this.me.name}`;
  }

  receipt(noticeId) {
    return this.docs.get(this.receiptId(noticeId)) || null;
  }

  unread() {
    return this.notices().filter((n) => !this.receipt(n._id)).length;
  }

  corrections(household) {
    return [...this.docs.values()]
      .filter((d) => d.type === "correction_request" && d.household === household)
      .sort((a, b) => String(b.device_time || "").localeCompare(String(a.device_time || "")));
  }

  // The household a receipt is written for: the first active one (a receipt counts a household).
  home() {
    return this.households()[0]?.link || null;
  }

  async put(doc) {
    const res = await this.db.put(doc);
    const saved = { ...doc, _rev: res.rev };
    this.apply(saved);
    return saved;
  }

  // Read (and, for a notice that asks for it, confirmed): one receipt per notice and account,
  // which gains `confirmed_at` once and never loses it.
  async markRead(notice, { confirm = false } = {}) {
    const home = this.home();
    if (!home) return null;
    const existing = this.receipt(notice._id);
    if (existing && (!confirm || existing.confirmed_at)) return existing;
    const now = deviceTime();
    const doc = existing ? { ...existing } : {
      _id: this.receiptId(notice._id), type: "notice_receipt", schema_version: 1,
      created_by: this.me.name, notice: notice._id, household: home.household, grid: home.grid,
      read_at: now, device_time: now,
    };
    if (confirm) doc.confirmed_at = now;
    return this.put(doc);
  }

  async requestCorrection(household, grid, changes, note) {
    const doc = { _id: `correction_request:${this.me.name}-${newKey()}`, type: "correction_request",
      schema_version: 1, grid, created_by: this.me.name, household, changes, status: "open",
      device_time: deviceTime() };
    if (note) doc.note = note;
    return this.put(doc);
  }
}
