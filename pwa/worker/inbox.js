// The grid worker's inbox (待办): one list of what needs the worker, with its counts on the
// home screen. All of it but the reports is read from the phone's own database, so it works
// offline and changes the moment the worker acts:
// - returned records (退回待修改): the latest verdict on a record asks for changes (有问题) and
//   the record is still at the revision it judged. Once the worker saves a fix the record has
//   moved past it: it leaves the list, and reads 已修改 (waiting to upload, then waiting for
//   review again), as the server's review states say (server/domain/review.py `state_of`);
// - conflicts to explain (待说明的冲突): merges still open that the worker's own edits are in;
// - residents waiting for activation (居民待激活): the sign-ups and correction requests of the
//   grid (worker/residents.js, docs/residents.md);
// - problem reports that wait for the worker's move (上报待办理): as the intake, one to accept
//   or dispatch; as the assignee (网格员), one to start or finish (server/domain/reports.py,
//   rule 4). These come from the server (/api/reports) and are kept on the phone as last read.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { formatTime, lang, pick } from "../i18n.js";
import { addressText, typeLabel } from "../views.js";
import { pendingCounts } from "./residents.js";

const REPORTS_DOC = "_local/linli-reports"; // the reports as last read, for offline
const REPORTS_FRESH_MS = 30_000; // a list read this recently is not asked again on each render
// The reports read: newest first, REPORT_PAGE at a time (the route's most), REPORT_PAGES pages
// at most, which is more than a grid's worker sees open at once.
const REPORT_PAGE = 500;
const REPORT_PAGES = 10;
// A report's state in which the worker moves it: as intake, or as the grid's assignee.
const INTAKE_MOVES = new Set(["submitted", "accepted"]);
const ASSIGNEE_MOVES = new Set(["dispatched", "in_progress"]);

const WORDS = {
  inbox_link: ["待办", "To do"],
  inbox_title: ["我的待办", "What needs me"],
  inbox_empty: ["没有待办事项", "Nothing waiting"],
  returned: ["退回待修改", "Returned to fix"],
  returned_empty: ["没有退回的记录", "No records returned"],
  conflicts: ["待说明的冲突", "Conflicts to explain"],
  conflicts_empty: ["没有待说明的冲突", "No open conflicts"],
  conflicts_help: ["您与他人同时修改了这些记录，督导员正在决定；请在住户页面查看并向督导员说明。",
    "You and someone else changed these records at the same time; a supervisor decides. See them on the household screen and tell the supervisor."],
  residents: ["居民待激活", "Residents waiting"],
  residents_count: ["待核实的注册 {signups} 条，更正申请 {corrections} 条", "{signups} sign-ups to confirm, {corrections} corrections"],
  reports: ["上报待办理", "Reports waiting for you"],
  reports_empty: ["没有待办理的上报", "No reports waiting"],
  reports_as_of: ["截至 {time}", "As of {time}"],
  reports_offline: ["离线：显示的是 {time} 的情况", "Offline: as of {time}"],
  reports_never: ["上报需要联网读取", "Reports need the network"],
  fix: ["修改", "Fix"],
  fixed_waiting: ["已修改，待上传", "Fixed, waiting to send"],
  fixed_review: ["已修改，待复审", "Fixed, waiting for review"],
  overdue: ["已超时", "Overdue"],
};

function w(key) {
  return pick(WORDS[key]);
}

// A word of this screen with its {placeholders} filled in.
function wf(key, values) {
  return w(key).replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(values, name) ? String(values[name]) : whole));
}

// A revision's generation, the number before its dash.
function generation(rev) {
  return Number.parseInt(String(rev || ""), 10) || 0;
}

// Where a record stands after its latest verdict, on this phone: "to_fix" when the verdict asked
// for changes and the record is still at the revision it judged, "fixed" when the worker changed
// it since (waiting to upload while the outbox holds it), else the verdict's decision.
export function reviewState(app, record, verdict) {
  if (!verdict) return "received";
  if (verdict.decision !== "has_issues") return verdict.decision;
  if (record && record._rev !== verdict.record_rev && generation(record._rev) >= generation(verdict.record_rev)) {
    return app.sync.outbox.pending[record._id] ? "fixed_waiting" : "fixed_review";
  }
  return "to_fix";
}

// The label of a state from reviewState, in the language shown (a decision by the schema's).
export function reviewStateLabel(app, state) {
  if (state === "fixed_waiting" || state === "fixed_review") return w(state);
  const prop = app.schemas.types.verdict[1].properties.decision;
  return pick((prop["x-enum-labels"] || {})[state] || [state, state]);
}

// The grid's records whose latest verdict asks for changes not yet made: [{record, verdict}],
// oldest record id first so the list stays put as the worker works through it.
export function returnedRecords(app) {
  const index = app.index.build();
  const found = [];
  for (const [id, verdicts] of index.verdicts) {
    const record = index.get(id);
    if (record && reviewState(app, record, verdicts[0]) === "to_fix") found.push({ record, verdict: verdicts[0] });
  }
  return found.sort((a, b) => a.record._id.localeCompare(b.record._id));
}

// Merges still waiting for a supervisor that an edit of this worker is in.
export function openConflicts(app) {
  const me = app.me.name;
  const mine = (side) => Boolean(side) && side.by === me;
  return [...app.index.docs.values()].filter((d) => d.type === "resolution" && d.status === "open" &&
    ((d.revisions || []).some(mine) || (d.fields || []).some((f) => [f.chosen, ...(f.alternatives || [])].some(mine))));
}

// The reports that wait for this worker's move, from the list as last read.
export function reportsToHandle(app) {
  const held = app.reports;
  if (!held) return [];
  return held.reports.filter((r) => {
    const state = (r.status || {}).state || "submitted";
    if (r.reporter === app.me.name) return false; // their own: the reporter plays no other part
    return INTAKE_MOVES.has(state) || ((r.status || {}).assignee === "grid" && ASSIGNEE_MOVES.has(state));
  });
}

export function inboxCounts(app) {
  const { signups, corrections } = pendingCounts(app);
  const counts = { returned: returnedRecords(app).length, conflicts: openConflicts(app).length,
    residents: signups + corrections, reports: reportsToHandle(app).length };
  return { ...counts, total: counts.returned + counts.conflicts + counts.residents + counts.reports };
}

// The reports as last read, from the phone (app.reports), then asked of the server when online;
// true when a fresh list came.
export async function refreshReports(app) {
  if (!app.sync || app.me.role !== "worker") return false;
  if (app.reports === undefined) app.reports = await app.sync.db.get(REPORTS_DOC).catch(() => null);
  const reports = [];
  let named;
  try {
    named = await callApi("/api/reports/categories");
    let next = null;
    for (let page = 0; page < REPORT_PAGES; page += 1) {
      const answer = await callApi(`/api/reports?limit=${REPORT_PAGE}${next ? `&cursor=${encodeURIComponent(next)}` : ""}`);
      if (!answer.ok) return false;
      reports.push(...answer.body.reports);
      next = answer.body.next;
      if (!next) break;
    }
  } catch {
    return false; // offline: the list as last read stands
  }
  if (!named.ok) return false;
  const { categories, states } = named.body;
  const doc = { _id: REPORTS_DOC, as_of: Date.now(), reports, categories, states };
  const held = await app.sync.db.get(REPORTS_DOC).catch(() => null);
  try {
    const res = await app.sync.db.put({ ...doc, ...(held ? { _rev: held._rev } : {}) });
    app.reports = { ...doc, _rev: res.rev };
  } catch {
    app.reports = doc; // another refresh wrote it a moment ago: this read still stands
  }
  return true;
}

// The home screen's line: how much waits, by kind.
export function inboxLink(app) {
  const counts = inboxCounts(app);
  const parts = ["returned", "conflicts", "residents", "reports"].filter((k) => counts[k])
    .map((k) => el("span", { class: "inbox-count", "data-kind": k, "data-count": String(counts[k]) }, `${w(k)} ${counts[k]}`));
  return el("p", { class: "actions" }, el("a", { href: "#/inbox", id: "inbox-link", "data-count": String(counts.total),
    class: counts.total ? "inbox-link has-items" : "inbox-link" },
  el("span", { class: "main" }, `${w("inbox_link")}（${counts.total}）`), ...parts));
}

function section(id, title, count, items, empty, help = null) {
  return el("section", { class: "card inbox-section", id, "aria-labelledby": `${id}-title` },
    el("h3", { id: `${id}-title` }, `${title}（${count}）`), help,
    items.length ? el("ul", { class: "list" }, items) : el("p", { class: "empty" }, empty));
}

function householdOf(app, record) {
  const id = record.type === "household" ? record._id : record.household;
  return app.index.get(id);
}

function returnedItem(app, { record, verdict }) {
  const household = householdOf(app, record);
  const person = record.person ? app.index.get(record.person) : record.type === "person" ? record : null;
  return el("li", { class: "returned", "data-record": record._id },
    el("a", { href: `#/edit/${encodeURIComponent(record._id)}` },
      el("span", { class: "main" }, `${typeLabel(app.schemas, record.type)}${person ? ` · ${person.name}` : ""}`),
      el("span", { class: "meta" }, household ? addressText(household.address) : ""),
      el("span", { class: "chip chip-has_issues" }, `${reviewStateLabel(app, "has_issues")}：${verdict.comment || ""}`),
      el("span", { class: "chip" }, w("fix"))));
}

function conflictItem(app, resolution) {
  const record = app.index.get(resolution.record);
  const household = record ? householdOf(app, record) : null;
  const href = household ? `#/h/${encodeURIComponent(household._id)}` : "#/";
  return el("li", { "data-resolution": resolution._id }, el("a", { href },
    el("span", { class: "main" }, typeLabel(app.schemas, resolution.record_type)),
    el("span", { class: "meta" }, household ? addressText(household.address) : "")));
}

function reportItem(app, report) {
  const held = app.reports;
  const named = (list, code) => {
    const found = (list || []).find((c) => c.code === code);
    return found ? (lang() === "en" ? found.en : found.zh) : code;
  };
  const status = report.status || {};
  const place = [report.building && `${report.building}幢`, report.unit && `${report.unit}单元`, report.spot]
    .filter(Boolean).join("");
  return el("li", { "data-report": report._id }, el("a", { href: `#/handle/${encodeURIComponent(report._id)}` },
    el("span", { class: "main" }, `${named(held.categories, report.category)}${place ? ` · ${place}` : ""}`),
    el("span", { class: "meta" }, String(report.description || "").slice(0, 60)),
    el("span", { class: "chip" }, named(held.states, status.state || "submitted")),
    (status.overdue || []).length ? el("span", { class: "chip chip-refused" }, w("overdue")) : null));
}

export function inboxView(app) {
  const returned = returnedRecords(app);
  const conflicts = openConflicts(app);
  const { signups, corrections } = pendingCounts(app);
  const reports = reportsToHandle(app);
  const held = app.reports;
  let asOf;
  if (!held) asOf = el("p", { class: "warn", id: "reports-as-of" }, w("reports_never"));
  else {
    const key = navigator.onLine ? "reports_as_of" : "reports_offline";
    asOf = el("p", { class: navigator.onLine ? "meta" : "warn", id: "reports-as-of" },
      wf(key, { time: formatTime(held.as_of) }));
  }
  if (navigator.onLine && !(held && Date.now() - held.as_of < REPORTS_FRESH_MS)) {
    refreshReports(app).then((changed) => changed && app.rerender(), () => {});
  }
  return [
    el("nav", { class: "crumbs" }, el("a", { href: "#/" }, app.grid.name)),
    el("h2", { tabindex: "-1", class: "view-title" }, w("inbox_title")),
    section("inbox-returned", w("returned"), returned.length, returned.map((r) => returnedItem(app, r)), w("returned_empty")),
    section("inbox-conflicts", w("conflicts"), conflicts.length, conflicts.map((r) => conflictItem(app, r)),
      w("conflicts_empty"), conflicts.length ? el("p", { class: "meta" }, w("conflicts_help")) : null),
    el("section", { class: "card inbox-section", id: "inbox-residents", "aria-labelledby": "inbox-residents-title" },
      el("h3", { id: "inbox-residents-title" }, `${w("residents")}（${signups + corrections}）`),
      el("p", {}, el("a", { href: "#/residents" }, wf("residents_count", { signups, corrections })))),
    section("inbox-reports", w("reports"), reports.length, reports.map((r) => reportItem(app, r)), w("reports_empty"), asOf),
  ];
}
