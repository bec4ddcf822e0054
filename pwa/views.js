// The worker's screens: the grid (progress, search, buildings), a building's units and rooms, a
// household (members, visits, verdicts to act on), the record forms, and the refused records.
// Each screen is a function of the app's state that returns its nodes; app.js routes to them.

import { el } from "./dom.js";
import { withEdits } from "./edits.js";
import { SYSTEM, buildForm } from "./forms.js";
import { fieldLabel, formatTime, lang, message, pick, t, tf } from "./i18n.js";
import { householdKey, naturalCompare } from "./records.js";
import { inboxLink, reviewState, reviewStateLabel } from "./worker/inbox.js";
import { queueLink, residentsSection } from "./worker/residents.js";
import { roomProblems } from "./rules.js";
import { documentProblems } from "./validate.js";

// --- small helpers ---------------------------------------------------------------------------

export function latestSchema(schemas, type) {
  const versions = schemas.types[type] || {};
  const latest = Math.max(...Object.keys(versions).map(Number));
  return { version: latest, schema: versions[latest] };
}

// A record type's name in the language shown, from its latest schema's title.
export function typeLabel(schemas, type) {
  const schema = latestSchema(schemas, type).schema;
  if (!schema) return type;
  return lang() === "en" ? schema["x-title-en"] || schema.title : schema.title;
}

// A grid's name among the user's grids, or its code.
export function gridName(app, code) {
  return (app.me.grids.find((g) => g.code === code) || {}).name || code;
}

function schemaFor(schemas, doc) {
  return (schemas.types[doc.type] || {})[doc.schema_version] || latestSchema(schemas, doc.type).schema;
}

function codeLabel(schemas, type, field, value) {
  const prop = latestSchema(schemas, type).schema?.properties?.[field] || {};
  return pick((prop["x-enum-labels"] || {})[value] || value);
}

export function addressText(address) {
  if (!address) return "";
  const unit = address.unit ? (lang() === "en" ? `Unit ${address.unit}, ` : `${address.unit}单元`) : "";
  if (lang() === "en") return `${address.compound_name || address.compound} Bldg ${address.building}, ${unit}Room ${address.room}`;
  return `${address.compound_name || address.compound} ${address.building}幢${unit}${address.room}室`;
}

function pad(n) {
  return String(n).padStart(2, "0");
}

export function today() {
  const d = new Date();
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// The phone's clock with its offset, as the schemas' date-time wants it. Recorded, never trusted
// alone: the server stamps its own receipt time.
export function deviceTime() {
  const d = new Date();
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:` +
    `${pad(d.getMinutes())}:${pad(d.getSeconds())}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function uniqueSuffix() {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return Date.now().toString(36) + [...bytes].map((b) => b.toString(36).padStart(2, "0")).join("");
}

function link(href, ...children) {
  return el("a", { href }, ...children);
}

function chip(kind, text) {
  return el("span", { class: `chip chip-${kind}` }, text);
}

function recordState(app, id) {
  const status = app.sync.status();
  const refused = status.refused.find((r) => r.id === id);
  if (refused) return chip("refused", `${t("state_refused")}：${message(refused.reason)}`);
  if (app.sync.outbox.pending[id]) return chip("waiting", t("state_waiting"));
  return null;
}

function heading(text, level = 2) {
  return el(`h${level}`, { tabindex: "-1", class: "view-title" }, text);
}

// --- the grid --------------------------------------------------------------------------------

function progressCard(title, parts, total) {
  const done = parts[0][1];
  const percent = total ? Math.round((done * 100) / total) : 0;
  return el("section", { class: "card progress", "aria-label": title },
    el("h3", {}, title),
    el("progress", { max: String(total || 1), value: String(done), "aria-label": `${title} ${percent}%` }),
    el("p", {}, parts.map(([label, n]) => el("span", { class: "figure" }, `${label} ${n}`)),
      el("span", { class: "figure" }, `${t("of")} ${total}`)));
}

export function gridView(app) {
  const { index, grid } = app;
  // A grid not yet downloaded whole shows no figures as if they were the grid's.
  const incomplete = !app.sync.status().download.complete;
  const progress = index.complete && !incomplete ? index.progress(app.me.campaigns) : null;
  const results = el("ul", { class: "list", id: "search-results", "aria-live": "polite" });
  const search = el("input", { type: "search", id: "search", placeholder: t("search"),
    "aria-label": t("search_label"), autocomplete: "off", value: app.query || "" });
  const runSearch = () => {
    app.query = search.value;
    const found = index.searchRanked(search.value);
    results.replaceChildren(...found.map(({ household, near }) => householdItem(app, household, near)));
    if (search.value.trim() && found.length === 0) results.append(el("li", { class: "empty" }, t("no_results")));
    else if (found.length && found.every((f) => f.near)) results.prepend(el("li", { class: "empty", id: "no-exact" }, t("no_exact")));
  };
  search.addEventListener("input", runSearch);
  if (app.query) runSearch();
  const buildings = index.buildingList().sort((a, b) =>
    naturalCompare(a.compoundName, b.compoundName) || naturalCompare(a.number, b.number));
  let picker = null;
  if (app.me.grids.length > 1) {
    const select = el("select", { id: "grid-picker" },
      app.me.grids.map((g) => el("option", { value: g.code, selected: g.code === grid.code }, g.name)));
    select.addEventListener("change", () => app.switchGrid(select.value));
    picker = el("div", { class: "field" }, el("label", { for: "grid-picker" }, t("my_grids")), select);
  }
  return [
    heading(grid.name),
    picker,
    progress ? el("div", { class: "cards" },
      progressCard(t("progress_visits"), [[t("visited"), progress.visits.visited],
        [t("to_visit"), progress.visits.to_visit], [t("refused_visit"), progress.visits.refused]],
      progress.visits.total),
      progressCard(t("progress_census"), [[t("enumerated"), progress.census.done]], progress.census.total),
      progressCard(t("progress_screening"), [[t("screened"), progress.screening.done]], progress.screening.total))
      : el("p", incomplete ? { class: "cards warn", id: "grid-incomplete", role: "alert" }
        : { class: "cards empty", "aria-busy": "true" }, t(incomplete ? "grid_incomplete_help" : "loading")),
    inboxLink(app),
    queueLink(app),
    el("div", { class: "search" }, search),
    results,
    el("h3", {}, t("buildings")),
    el("ul", { class: "list buildings" }, buildings.map((b) => {
      const visited = b.households.filter((h) => index.visitState(h._id) === "visited").length;
      return el("li", {}, link(`#/b/${encodeURIComponent(b.key)}`,
        el("span", { class: "main" }, lang() === "en" ? `${b.compoundName} Bldg ${b.number}` : `${b.compoundName} ${b.number}幢`),
        el("span", { class: "meta" }, `${visited}/${b.households.length} ${t("visited")}`)));
    })),
  ];
}

function householdItem(app, h, near = false) {
  const state = app.index.visitState(h._id);
  return el("li", near ? { class: "near", "data-near": "" } : {}, link(`#/h/${encodeURIComponent(h._id)}`,
    el("span", { class: "main" }, addressText(h.address)),
    near ? el("span", { class: "chip chip-near" }, t("near_match")) : null,
    el("span", { class: "meta" }, h.head_name || ""),
    chip(state, t(state === "refused" ? "refused_visit" : state))));
}

// --- a building ------------------------------------------------------------------------------

export function buildingView(app, key) {
  const units = app.index.unitsOf(key);
  if (units.length === 0) return [heading(t("not_found"))];
  const first = units[0][1][0].address;
  const title = lang() === "en" ? `${first.compound_name} Bldg ${first.building}` : `${first.compound_name} ${first.building}幢`;
  return [
    el("nav", { class: "crumbs" }, link("#/", app.grid.name)),
    heading(title),
    ...units.map(([unit, households]) => el("section", { class: "unit" },
      el("h3", {}, unit ? (lang() === "en" ? `Unit ${unit}` : `${unit}单元`) : t("households")),
      el("ul", { class: "list rooms" }, households.map((h) => {
        const state = app.index.visitState(h._id);
        return el("li", {}, link(`#/h/${encodeURIComponent(h._id)}`,
          el("span", { class: "main" }, lang() === "en" ? `Room ${h.address.room}` : `${h.address.room}室`),
          el("span", { class: "meta" }, h.head_name || ""),
          chip(state, t(state === "refused" ? "refused_visit" : state)),
          recordState(app, h._id)));
      })))),
  ];
}

// --- a household -----------------------------------------------------------------------------

export function householdView(app, id) {
  const { index, schemas } = app;
  const h = index.get(id);
  if (!h || h.type !== "household") return [heading(t("not_found"))];
  const members = index.membersOf(id);
  const visits = index.visitsOf(id);
  const census = index.censusOf(id, app.me.campaigns.census);
  // The latest verdict on each record (newest first per record), with where the record stands:
  // one fixed since reads 已修改, never 有问题 again.
  const judged = new Set();
  const verdicts = index.verdictsForHousehold(id).filter(({ verdict }) => !judged.has(verdict.record) &&
    judged.add(verdict.record));
  const hh = encodeURIComponent(id);
  const facts = [["head_name", h.head_name], ["phone", h.phone], ["tenure", h.tenure && codeLabel(schemas, "household", "tenure", h.tenure)],
    ["area_m2", h.area_m2], ["special_groups", (h.special_groups || []).map((g) => codeLabel(schemas, "household", "special_groups", g)).join("、")]]
    .filter(([, v]) => v !== undefined && v !== "" && v !== null);
  const householdSchema = schemaFor(schemas, h);
  return [
    el("nav", { class: "crumbs" }, link("#/", app.grid.name), " › ",
      link(`#/b/${encodeURIComponent(`${h.address.compound}-${h.address.building}`)}`,
        lang() === "en" ? `Bldg ${h.address.building}` : `${h.address.building}幢`)),
    heading(addressText(h.address)),
    recordState(app, id),
    el("dl", { class: "facts" }, facts.flatMap(([name, value]) => [
      el("dt", {}, fieldLabel(householdSchema.properties[name], name)), el("dd", {}, String(value))])),
    verdicts.length ? el("section", { class: "card verdicts", "aria-label": t("verdicts") },
      el("h3", {}, t("verdicts")),
      el("ul", { class: "list" }, verdicts.map(({ record, verdict }) => {
        const state = reviewState(app, record, verdict);
        const shown = state === "to_fix" ? verdict.decision : state;
        return el("li", { class: `verdict verdict-${shown}`, "data-record": verdict.record },
          el("span", { class: "main" }, `${reviewStateLabel(app, shown)}${verdict.comment ? `：${verdict.comment}` : ""}`),
          el("span", { class: "meta" }, record ? recordTitle(app, record) : verdict.record),
          record && record.type !== "household" ? link(editHref(record), t("edit")) : null);
      }))) : null,
    mergeSection(app, index.resolutionsForHousehold(id)),
    el("div", { class: "actions" },
      link(`#/new/household_visit/${hh}`, t("record_visit")),
      link(`#/edit/${hh}`, t("edit_household")),
      link(census ? `#/edit/${encodeURIComponent(census._id)}` : `#/new/census_household/${hh}`, t("census_form")),
      link(`#/new/person/${hh}`, t("add_member"))),
    residentsSection(app, id),
    el("section", {},
      el("h3", {}, t("members")),
      members.length ? el("ul", { class: "list members" }, members.map((p) => memberItem(app, p)))
        : el("p", { class: "empty" }, t("no_members"))),
    el("section", {},
      el("h3", {}, t("visits")),
      visits.length ? el("ul", { class: "list visits" }, visits.map((v) => el("li", {},
        el("span", { class: "main" }, `${v.visited_on} ${codeLabel(schemas, "household_visit", "outcome", v.outcome)}`),
        el("span", { class: "meta" }, v.notes || ""), recordState(app, v._id),
        link(`#/edit/${encodeURIComponent(v._id)}`, t("edit")))))
        : el("p", { class: "empty" }, t("no_visits"))),
  ];
}

// --- merges of concurrent edits, as the worker sees them ------------------------------------

const SHORT = 20; // characters of a value shown in a merge note

// A field's value in words: codes by their labels, an address as written, `limit` characters at
// most. `missing` (the field was absent on that side) reads "(empty)".
export function valueText(schemas, type, field, value, { missing = false, limit = 0 } = {}) {
  const prop = (latestSchema(schemas, type).schema?.properties || {})[field] || {};
  const labelOf = (p, v) => pick(((p || {})["x-enum-labels"] || {})[v] ?? v);
  let text;
  if (missing || value === undefined || value === null || value === "") text = t("value_absent");
  else if (Array.isArray(value)) text = value.map((v) => labelOf(prop["x-enum-labels"] ? prop : prop.items, v)).join("、");
  else if (typeof value === "boolean") text = t(value ? "yes" : "no");
  else if (field === "address" && typeof value === "object") text = addressText(value);
  else if (typeof value === "object") text = JSON.stringify(value);
  else text = labelOf(prop, value);
  const chars = Array.from(text);
  return limit && chars.length > limit ? `${chars.slice(0, limit).join("")}…` : text;
}

function isMine(app, side) {
  return Boolean(side) && side.by === app.me.name;
}

function whoOf(app, side) {
  if (!side || !side.by) return t("someone");
  return isMine(app, side) ? t("you") : side.by;
}

// The header of a merge: whose edits met.
function mergeHeadline(app, resolution) {
  const names = new Set();
  for (const r of resolution.revisions || []) if (r.by) names.add(r.by);
  for (const f of resolution.fields || []) {
    for (const side of [f.chosen, ...(f.alternatives || [])]) if (side && side.by) names.add(side.by);
  }
  for (const name of [...names]) if (name.startsWith("linli-") || name === resolution.decided_by) names.delete(name);
  const others = [...names].filter((n) => n !== app.me.name);
  const joined = others.join("、");
  if (names.has(app.me.name)) return others.length ? tf("merged_with", { names: joined }) : t("merged_own");
  return others.length ? tf("merged_among", { names: joined }) : t("merged_unknown");
}

// Each side's value, the worker's own marked.
function sidesOf(app, type, f) {
  const sides = [f.chosen, ...(f.alternatives || [])].filter(Boolean);
  return el("span", { class: "sides" }, sides.map((side) => el("span", { class: `side${isMine(app, side) ? " side-mine" : ""}` },
    isMine(app, side) ? chip("mine", t("your_edit")) : `${whoOf(app, side)}${lang() === "en" ? ":" : "："}`,
    " ", valueText(app.schemas, type, f.field, side.value, { missing: side.missing, limit: SHORT }))));
}

// What one field's merge means for the worker, or null for the routine ones (a change on one
// side only, or the same value on both), which are only named together.
function fieldNote(app, resolution, f) {
  const type = resolution.record_type;
  const schema = latestSchema(app.schemas, type).schema || {};
  const field = fieldLabel((schema.properties || {})[f.field], f.field);
  const chosen = f.chosen || {};
  const value = valueText(app.schemas, type, f.field, chosen.value, { missing: chosen.missing, limit: SHORT });
  const ruleProp = latestSchema(app.schemas, "resolution").schema?.properties.fields.items.properties.rule || {};
  const rule = pick((ruleProp["x-enum-labels"] || {})[f.rule] || f.rule);
  if (f.rule === "supervisor" || (resolution.status === "decided" && f.rule === "concurrent_edits")) {
    const who = resolution.decided_by || chosen.by || t("a_supervisor");
    return el("li", { class: "merge-field merge-decided", "data-field": f.field },
      tf("decided_field", { who, field, value }));
  }
  if (f.undecided) {
    const count = 1 + (f.alternatives || []).length;
    const sides = count === 2 ? t("sides_two") : tf("sides_many", { n: count });
    return el("li", { class: "merge-field merge-undecided", "data-field": f.field },
      el("span", {}, tf("both_changed_open", { field, sides, who: whoOf(app, chosen), value })), sidesOf(app, type, f));
  }
  if (f.rule === "one_side_changed" || f.rule === "same_value" || f.rule === "edit_beats_deletion") return null;
  const text = f.rule === "set_union" ? tf("rule_field_merged", { field, rule, value })
    : tf("rule_field", { field, rule, who: whoOf(app, chosen), value });
  return el("li", { class: "merge-field", "data-field": f.field }, el("span", {}, text),
    (f.alternatives || []).length ? sidesOf(app, type, f) : null);
}

function mergeItem(app, record, resolution) {
  const type = resolution.record_type;
  const schema = latestSchema(app.schemas, type).schema || {};
  const fields = resolution.fields || [];
  const notes = fields.map((f) => fieldNote(app, resolution, f)).filter(Boolean);
  const quiet = fields.filter((f) => (f.rule === "one_side_changed" || f.rule === "same_value") && !f.undecided)
    .map((f) => fieldLabel((schema.properties || {})[f.field], f.field));
  const deletionLost = (resolution.revisions || []).some((r) => r.deleted) ||
    fields.some((f) => f.rule === "edit_beats_deletion");
  if (deletionLost) notes.unshift(el("li", { class: "merge-field merge-deletion" }, t("deletion_lost")));
  if (quiet.length) {
    notes.push(el("li", { class: "merge-field merge-quiet" }, tf("merged_quietly", { fields: quiet.join("、") })));
  }
  const what = record ? recordTitle(app, record) : resolution.record;
  const status = codeLabel(app.schemas, "resolution", "status", resolution.status);
  return el("li", { class: `merge merge-${resolution.status}`, "data-resolution": resolution._id, "data-record": resolution.record },
    el("span", { class: "main" }, mergeHeadline(app, resolution)),
    chip(resolution.status === "open" ? "waiting" : "merged", status),
    el("span", { class: "meta" }, `${what} · ${formatTime(Date.parse(resolution.resolved_at))}`),
    notes.length ? el("ul", { class: "merge-fields" }, notes) : null);
}

// The merges of a household and of what was recorded about it, newest first.
function mergeSection(app, merges) {
  if (merges.length === 0) return null;
  return el("section", { class: "card merges", "aria-labelledby": "merges-title" },
    el("h3", { id: "merges-title" }, t("merges")),
    el("ul", { class: "list" }, merges.map(({ record, resolution }) => mergeItem(app, record, resolution))));
}

function recordTitle(app, record) {
  const schema = schemaFor(app.schemas, record);
  const name = record.type === "person" || record.type === "screening"
    ? (app.index.get(record.person || record._id) || {}).name || "" : "";
  return `${lang() === "en" ? schema["x-title-en"] : schema.title}${name ? ` · ${name}` : ""}`;
}

function editHref(record) {
  return `#/edit/${encodeURIComponent(record._id)}`;
}

function memberItem(app, p) {
  const { schemas } = app;
  const screening = app.index.screeningOf(p._id, app.me.campaigns.screening);
  const gone = p.status !== "present";
  return el("li", { class: gone ? "gone" : "" },
    el("span", { class: "main" }, `${p.name} · ${codeLabel(schemas, "person", "relationship", p.relationship)}`),
    el("span", { class: "meta" }, `${codeLabel(schemas, "person", "sex", p.sex)} ${p.birth_year}` +
      (gone ? ` · ${codeLabel(schemas, "person", "status", p.status)}` : "")),
    recordState(app, p._id),
    el("span", { class: "row-actions" },
      link(`#/edit/${encodeURIComponent(p._id)}`, t("edit")),
      gone ? null : link(screening ? `#/edit/${encodeURIComponent(screening._id)}` : `#/new/screening/${encodeURIComponent(p._id)}`,
        t("screen")),
      gone ? null : link(`#/remove/${encodeURIComponent(p._id)}`, t("remove_member"))));
}

// --- forms -----------------------------------------------------------------------------------

// A new record of `type` about `about` (a household, or a person for a screening).
export function newRecord(app, type, about) {
  const { version } = latestSchema(app.schemas, type);
  const base = { type, schema_version: version, grid: app.grid.code, created_by: app.me.name };
  const aboutDoc = app.index.get(about);
  if (!aboutDoc) return null;
  if (type === "household_visit") {
    return { ...base, _id: `household_visit:${householdKey(about)}-${uniqueSuffix()}`, household: about,
      visited_on: today() };
  }
  if (type === "person") {
    return { ...base, _id: `person:${householdKey(about)}-${uniqueSuffix()}`, household: about, status: "present" };
  }
  if (type === "census_household") {
    const campaign = app.me.campaigns.census;
    const present = app.index.membersOf(about).filter((p) => p.status === "present").length;
    return { ...base, _id: `census_household:${householdKey(about)}-${campaign}`, household: about, campaign,
      enumerated_on: today(), household_type: aboutDoc.household_type, persons_registered: present };
  }
  if (type === "screening") {
    const campaign = app.me.campaigns.screening;
    return { ...base, _id: `screening:${about.slice("person:".length)}-${campaign}`, person: about,
      household: aboutDoc.household, campaign, screened_on: today() };
  }
  return null;
}

const HIDDEN = {
  household: ["registry", "address/compound"],
};

// Every problem the server would find in `doc`, found on the phone.
export function problemsOf(app, doc) {
  const problems = documentProblems(doc, today());
  if (problems.length === 0 && doc.type === "household") {
    const building = app.index.buildings.get(`${doc.address.compound}-${doc.address.building}`);
    if (building) {
      for (const p of roomProblems(doc.address, building)) problems.push({ ...p, field: `/address${p.field}` });
    }
  }
  return problems;
}

// The record to save: `after`, with who changed which field since `before` (null for a new
// record) stamped in `edits` where its type keeps them (edits.js).
function stampEdits(app, before, after) {
  return withEdits(before, after, { types: app.schemas.types, by: app.me.name, appFilled: SYSTEM });
}

// `draftKey` names the draft: a new record's id is made afresh each time its form opens, so its
// draft is kept under what it is about ("a new visit to household X").
export async function formView(app, doc, { isNew, back, draftKey, fixed = {} }) {
  const schema = schemaFor(app.schemas, doc);
  const draft = await app.sync.loadDraft(draftKey);
  let timer = null;
  const built = buildForm({
    schema, doc: { ...doc, ...fixed }, draft, hidden: HIDDEN[doc.type] || [],
    onInput: (raw) => {
      clearTimeout(timer);
      timer = setTimeout(() => app.sync.saveDraft(draftKey, raw), 250);
    },
  });
  const status = el("p", { class: "form-status", role: "status" }, draft ? t("draft_restored") : "");
  const refusal = app.sync.status().refused.find((r) => r.id === doc._id);
  const title = `${lang() === "en" ? schema["x-title-en"] : schema.title}`;
  const about = doc.household ? app.index.get(doc.household) : null;
  built.form.append(el("div", { class: "form-actions" },
    el("button", { type: "submit", class: "primary" }, t("save")),
    link(back, t("cancel"))));
  built.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearTimeout(timer);
    const updated = stampEdits(app, isNew ? null : doc, { ...built.apply({ ...doc, ...fixed }), device_time: deviceTime() });
    const problems = problemsOf(app, updated);
    if (problems.length) {
      built.showProblems(problems);
      status.textContent = "";
      return;
    }
    built.clearProblems();
    try {
      await app.sync.save(updated);
    } catch (err) {
      built.showProblems([{ field: "", message: err.status === 409
        ? "这条记录刚被同步更新，请重新打开再修改 / This record was just updated by a sync; open it again to edit"
        : `${err.message || err}` }]);
      return;
    }
    await app.sync.dropDraft(draftKey);
    app.flash(t("saved"));
    location.hash = back;
  });
  return [
    el("nav", { class: "crumbs" }, link(back, t("back"))),
    heading(title),
    about ? el("p", { class: "about" }, addressText(about.address)) : null,
    doc.type === "screening" ? el("p", { class: "about" }, `${t("screen_of")}：${(app.index.get(doc.person) || {}).name || ""}`) : null,
    refusal ? el("div", { class: "refusal", role: "alert" }, `${t("state_refused")}：${message(refusal.reason)}`) : null,
    isNew ? null : recordState(app, doc._id),
    status,
    built.form,
  ];
}

export function refusedView(app) {
  const refused = app.sync.status().refused;
  return [
    el("nav", { class: "crumbs" }, link("#/", app.grid.name)),
    heading(t("refused_title")),
    el("p", {}, t("refused_help")),
    refused.length ? el("ul", { class: "list refused" }, refused.map((r) => {
      const doc = app.index.get(r.id);
      return el("li", {},
        el("span", { class: "main" }, doc ? recordTitle(app, doc) : r.id),
        el("span", { class: "meta reason" }, message(r.reason)),
        doc ? link(editHref(doc), t("edit")) : null);
    })) : el("p", { class: "empty" }, t("no_refused")),
  ];
}

export { schemaFor };

// Removing a member keeps the person on record with why they left (迁出 / 已故): a removal is an
// edit of the status, so it reaches the server and the census like any other.
export function removeView(app, person) {
  const back = `#/h/${encodeURIComponent(person.household)}`;
  const prop = schemaFor(app.schemas, person).properties.status;
  const select = el("select", { id: "remove-reason", required: true },
    el("option", { value: "" }, t("choose")),
    ...prop.enum.filter((v) => v !== "present").map((v) => el("option", { value: v }, pick(prop["x-enum-labels"][v]))));
  const error = el("p", { class: "error", id: "remove-error", role: "alert" });
  select.setAttribute("aria-describedby", "remove-error");
  const form = el("form", { class: "record-form" },
    el("div", { class: "field" }, el("label", { for: "remove-reason" }, t("remove_reason")), select, error),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "primary" }, t("remove_member")),
      link(back, t("cancel"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) {
      error.textContent = t("choose");
      return;
    }
    const updated = stampEdits(app, person, { ...person, status: select.value, device_time: deviceTime() });
    const problems = problemsOf(app, updated);
    if (problems.length) {
      error.textContent = problems.map((p) => message(p.message)).join("；");
      return;
    }
    await app.sync.save(updated);
    app.flash(t("saved"));
    location.hash = back;
  });
  return [el("nav", { class: "crumbs" }, link(back, t("back"))), heading(`${t("remove_member")}：${person.name}`), form];
}
