// A grid's records held in memory and indexed the ways a worker looks for them: buildings →
// units → rooms → households, a household's members, visits, census form, screenings and the
// supervisor's verdicts, a search over addresses and names, and each campaign's progress. A grid
// is a few thousand documents, so reading them once at start and applying each change as it comes
// answers every screen in well under a frame; nothing here touches the network. Every edit stamp
// in a record read here is shown to the phone's clock, so no edit made on this phone is stamped
// before one it has seen.

import { addressMatch, parseAddress } from "./address.js";
import { later, observe } from "./clock.js";

const SPACES = /[\s\u3000]+/g;

export function normalise(text) {
  return String(text ?? "").normalize("NFKC").toLowerCase().replace(SPACES, "");
}

export function householdKey(id) {
  return id.slice("household:".length);
}

export function buildingKey(address) {
  return `${address.compound}-${address.building}`;
}

// Natural order for building, unit and room labels: "2" before "10".
export function naturalCompare(a, b) {
  return String(a).localeCompare(String(b), "zh-CN", { numeric: true });
}

// A date-time with its offset as milliseconds, for ordering (0 when absent or unreadable).
function timeOf(text) {
  return Date.parse(text || "") || 0;
}

// The number an update sequence starts with (PouchDB's is a number, CouchDB 3's "N-...").
function seqNumber(seq) {
  return typeof seq === "number" ? seq : Number.parseInt(String(seq), 10) || 0;
}

// The latest of `latest` and the edit stamps in `doc`.
function latestEdit(doc, latest = null) {
  if (!Array.isArray(doc.edits)) return latest;
  for (const edit of doc.edits) if (edit) latest = later(latest, edit.at);
  return latest;
}

// The latest visit outcome decides where a household stands in the visiting round.
const VISITED = new Set(["completed", "moved", "demolished"]);

export class GridIndex {
  constructor() {
    this.docs = new Map();
    this.seqs = new Map(); // id -> the phone's update sequence of the doc, where known
    this.serverSeqs = new Map(); // id -> the server's update sequence of the doc, where asked
    this.dirty = true;
  }

  // What the household list needs first (buildings and households, a fifth of a grid's records),
  // so the list shows while the rest is read; `complete` says when everything is in.
  async loadFirst(db) {
    this.complete = false;
    let latest = null;
    for (const prefix of ["building:", "household:"]) {
      const result = await db.allDocs({ include_docs: true, startkey: prefix, endkey: `${prefix}\ufff0` });
      for (const row of result.rows) {
        if (!row.doc) continue;
        this.docs.set(row.id, row.doc);
        latest = latestEdit(row.doc, latest);
      }
    }
    if (latest) observe(latest);
    this.dirty = true;
    return this;
  }

  async loadRest(db) {
    const result = await db.allDocs({ include_docs: true });
    let latest = null;
    for (const row of result.rows) {
      if (!row.id.startsWith("_design/") && row.doc && !this.docs.has(row.id)) {
        this.docs.set(row.id, row.doc);
        latest = latestEdit(row.doc, latest);
      }
    }
    if (latest) observe(latest);
    await this.loadVerdictOrder(db);
    this.complete = true;
    this.dirty = true;
    return this;
  }

  // The order of a record's verdicts is the server's: the store's update sequence, which
  // orders them as the server took them. A verdict's device_time is what a phone said and
  // orders nothing (a phone set to 2099 would always be "newest"). The server's sequences are
  // asked for the records judged more than once (loadServerOrder, when online); offline, the phone's own sequence stands in: it follows the server's order for verdicts
  // pulled in different batches, not always within one.
  judgedTwice() {
    const byRecord = new Map();
    for (const doc of this.docs.values()) {
      if (doc.type === "verdict") byRecord.set(doc.record, [...(byRecord.get(doc.record) || []), doc._id]);
    }
    return [...byRecord.values()].filter((list) => list.length > 1).flat();
  }

  async loadVerdictOrder(db) {
    const ids = this.judgedTwice();
    if (!ids.length) return;
    const local = await db.changes({ doc_ids: ids, since: 0, style: "main_only" });
    for (const change of local.results) this.seqs.set(change.id, seqNumber(change.seq));
    this.dirty = true;
  }

  async loadServerOrder(remote, ids = this.judgedTwice()) {
    if (!ids.length) return;
    const answer = await remote.changes({ doc_ids: ids, since: 0, style: "main_only" });
    for (const change of answer.results) this.serverSeqs.set(change.id, seqNumber(change.seq));
    this.dirty = true;
  }

  async load(db) {
    await this.loadFirst(db);
    return this.loadRest(db);
  }

  // A change of the phone's database (`seq`: its update sequence there).
  apply(doc, seq) {
    if (doc._id.startsWith("_")) return;
    if (doc._deleted) {
      this.docs.delete(doc._id);
      this.seqs.delete(doc._id);
    } else {
      this.docs.set(doc._id, doc);
      if (seq !== undefined) this.seqs.set(doc._id, seqNumber(seq));
      const latest = latestEdit(doc);
      if (latest) observe(latest);
    }
    this.dirty = true;
  }

  get(id) {
    return this.docs.get(id) || null;
  }

  // Derived indexes, rebuilt on the first question after a change.
  build() {
    if (!this.dirty) return this;
    const households = [];
    const buildings = new Map();
    const members = new Map();
    const visits = new Map();
    const census = new Map();
    const screenings = new Map();
    const verdicts = new Map();
    const resolutions = new Map();
    const push = (map, key, value) => {
      const list = map.get(key);
      if (list) list.push(value);
      else map.set(key, [value]);
    };
    for (const doc of this.docs.values()) {
      switch (doc.type) {
        case "household":
          households.push(doc);
          break;
        case "building":
          buildings.set(`${doc.compound}-${doc.number}`, doc);
          break;
        case "person":
          push(members, doc.household, doc);
          break;
        case "household_visit":
          push(visits, doc.household, doc);
          break;
        case "census_household":
          census.set(`${doc.household}|${doc.campaign}`, doc);
          break;
        case "screening":
          push(screenings, doc.person, doc);
          break;
        case "verdict":
          push(verdicts, doc.record, doc);
          break;
        case "resolution":
          push(resolutions, doc.record, doc);
          break;
        default:
      }
    }
    for (const list of visits.values()) {
      list.sort((a, b) => (b.visited_on + (b.device_time || "")).localeCompare(a.visited_on + (a.device_time || "")));
    }
    // Newest first in the server's order when the server told it for all of them, else in
    // the order the phone took them (see judgedTwice); an unknown one came before the rest.
    for (const list of verdicts.values()) {
      const seqs = list.every((v) => this.serverSeqs.has(v._id)) ? this.serverSeqs : this.seqs;
      const seqOf = (doc) => seqs.get(doc._id) || 0;
      list.sort((a, b) => seqOf(b) - seqOf(a) || String(b._id).localeCompare(String(a._id)));
    }
    for (const list of resolutions.values()) {
      list.sort((a, b) => timeOf(b.resolved_at) - timeOf(a.resolved_at));
    }
    households.sort((a, b) =>
      naturalCompare(a.address.compound_name || a.address.compound, b.address.compound_name || b.address.compound) ||
      naturalCompare(a.address.building, b.address.building) ||
      naturalCompare(a.address.unit || "", b.address.unit || "") ||
      naturalCompare(a.address.room, b.address.room));
    const byBuilding = new Map();
    for (const h of households) push(byBuilding, buildingKey(h.address), h);
    Object.assign(this, { households, buildings, members, visits, census, screenings, verdicts, resolutions,
      byBuilding });
    this.searchable = households.map((h) => [h, normalise(this.searchText(h, members.get(h._id) || []))]);
    this.dirty = false;
    return this;
  }

  searchText(h, people) {
    const a = h.address;
    return [a.compound_name, `${a.building}幢${a.unit || ""}单元${a.room}室`, `${a.building}-${a.unit || ""}-${a.room}`,
      `${a.building}-${a.room}`, h.head_name, h.phone, ...people.map((p) => p.name)].join(" ");
  }

  // Buildings with their households, in address order; a building known only from its
  // households' addresses is listed too.
  buildingList() {
    this.build();
    return [...this.byBuilding.entries()].map(([key, list]) => ({
      key,
      compoundName: list[0].address.compound_name || list[0].address.compound,
      number: list[0].address.building,
      building: this.buildings.get(key) || null,
      households: list,
    }));
  }

  // A building's households by unit, then room.
  unitsOf(key) {
    this.build();
    const units = new Map();
    for (const h of this.byBuilding.get(key) || []) {
      const unit = h.address.unit || "";
      if (!units.has(unit)) units.set(unit, []);
      units.get(unit).push(h);
    }
    return [...units.entries()].sort((a, b) => naturalCompare(a[0], b[0]));
  }

  membersOf(householdId) {
    this.build();
    return (this.members.get(householdId) || []).slice().sort((a, b) =>
      naturalCompare(a.relationship, b.relationship) || naturalCompare(a._id, b._id));
  }

  visitsOf(householdId) {
    this.build();
    return this.visits.get(householdId) || [];
  }

  censusOf(householdId, campaign) {
    this.build();
    return this.census.get(`${householdId}|${campaign}`) || null;
  }

  screeningOf(personId, campaign) {
    this.build();
    return (this.screenings.get(personId) || []).find((s) => s.campaign === campaign) || null;
  }

  // Verdicts on a record, newest first.
  verdictsOn(recordId) {
    this.build();
    return this.verdicts.get(recordId) || [];
  }

  // The household's id and the ids of what was recorded about it: members, visits, screenings
  // and census forms.
  householdRecordIds(householdId) {
    this.build();
    const ids = [householdId, ...this.membersOf(householdId).map((p) => p._id),
      ...this.visitsOf(householdId).map((v) => v._id)];
    for (const p of this.membersOf(householdId)) {
      for (const s of this.screenings.get(p._id) || []) ids.push(s._id);
    }
    for (const doc of this.census.values()) {
      if (doc.household === householdId) ids.push(doc._id);
    }
    return ids;
  }

  // Every verdict on the household and on what was recorded about it.
  verdictsForHousehold(householdId) {
    return this.householdRecordIds(householdId)
      .flatMap((id) => this.verdictsOn(id).map((v) => ({ record: this.get(id), verdict: v })));
  }

  // How the server merged concurrent edits of a record, newest first.
  resolutionsOn(recordId) {
    this.build();
    return this.resolutions.get(recordId) || [];
  }

  // Every merge of the household and of what was recorded about it, newest first.
  resolutionsForHousehold(householdId) {
    return this.householdRecordIds(householdId)
      .flatMap((id) => this.resolutionsOn(id).map((r) => ({ record: this.get(id), resolution: r })))
      .sort((a, b) => timeOf(b.resolution.resolved_at) - timeOf(a.resolution.resolved_at));
  }

  visitState(householdId) {
    const latest = this.visitsOf(householdId)[0];
    if (!latest) return "to_visit";
    if (latest.outcome === "refused") return "refused";
    return VISITED.has(latest.outcome) ? "visited" : "to_visit";
  }

  search(query, limit = 50) {
    this.build();
    const words = String(query).normalize("NFKC").toLowerCase().split(/[\s\u3000]+/).filter(Boolean);
    if (words.length === 0) return [];
    const found = [];
    for (const [h, text] of this.searchable) {
      if (words.every((w) => text.includes(w))) {
        found.push(h);
        if (found.length >= limit) break;
      }
    }
    return found;
  }

  // The search as the grid screen shows it: [{household, near}]. An address (3-2-301,
  // 三幢二单元三零一...) finds its exact matches first, then the near misses (13幢 for 3幢,
  // another unit), marked `near`, never passed off as the one asked for; anything else (a name,
  // a phone) is the plain search.
  searchRanked(query, limit = 50) {
    const wanted = parseAddress(query);
    if (!wanted) return this.search(query, limit).map((household) => ({ household, near: false }));
    this.build();
    const words = normalise(wanted.compound) ? [normalise(wanted.compound)] : [];
    const exact = [];
    const near = [];
    for (const [h, text] of this.searchable) {
      if (!words.every((w) => text.includes(w))) continue;
      const how = addressMatch(wanted, h.address);
      if (how === "exact") exact.push({ household: h, near: false });
      else if (how === "near") near.push({ household: h, near: true });
    }
    return [...exact, ...near].slice(0, limit);
  }

  progress(campaigns) {
    this.build();
    const visits = { visited: 0, to_visit: 0, refused: 0, total: this.households.length };
    let enumerated = 0;
    let persons = 0;
    let screened = 0;
    for (const h of this.households) {
      visits[this.visitState(h._id)] += 1;
      if (this.census.has(`${h._id}|${campaigns.census}`)) enumerated += 1;
      for (const p of this.members.get(h._id) || []) {
        if (p.status !== "present") continue;
        persons += 1;
        if ((this.screenings.get(p._id) || []).some((s) => s.campaign === campaigns.screening)) screened += 1;
      }
    }
    return {
      visits,
      census: { done: enumerated, total: this.households.length },
      screening: { done: screened, total: persons },
    };
  }
}
