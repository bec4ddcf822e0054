// The supervisor's review (审核) of what grid workers synced. The queue (`GET /api/review`) lists
// the visits, census forms and screenings of the supervisor's grids (households and persons when
// that type is chosen) with their review state, newest first, filtered by grid, type, state,
// worker and date; people are shown by their names, times in the city's time (北京时间). Many
// records are approved at once, or marked
// "has issues" or rejected with a comment (`POST /api/review/verdicts`). One record
// (`GET /api/review/record`) shows its fields, its verdicts, its history and what changed between
// revisions. Verdicts are documents in the grid's database, so they reach the worker's phone by
// replication. All of it lives on the server, so this screen needs the network and says so.

import { TooSlow, callApi } from "./api.js";
import { canDecide } from "./conflicts.js";
import { el } from "./dom.js";
import { sensitiveFields } from "./generated/sensitivity.js";
import { cityTime, fieldLabel, message, pick, t, tf } from "./i18n.js";
import { addressText, gridName, latestSchema, typeLabel, valueText } from "./views.js";

const TIMEOUT_MS = 120_000; // a grid's first review query waits while the store builds its views
const TYPES = ["household_visit", "census_household", "screening", "household", "person"];
const SORTS = ["newest", "oldest"];
const STATES = ["received", "approved", "has_issues", "edited", "rejected"];
const DECISIONS = ["approved", "has_issues", "rejected"];
const PAGE = 100; // rows shown at first, and added by "show more"
const NOT_SHOWN = new Set(["_id", "_rev", "type", "schema_version", "grid", "edits"]);
const FILTERS_KEY = "linli.review.filters";
const FILTERS = ["grid", "type", "state", "worker", "from", "to", "sort"];
// This screen's own words (the shared ones are in i18n.js).
const WORDS = {
  filter_sort: ["排序", "Order"],
  sort_newest: ["最新在前", "Newest first"],
  sort_oldest: ["最早在前", "Oldest first"],
  no_personal_data: ["不含个人信息", "No personal data"],
};
const w = (key) => pick(WORDS[key]);
// The existing chip colours: green for approved, red for what needs the worker, blue for edited.
const STATE_CHIP = { approved: "visited", has_issues: "refused", rejected: "refused", edited: "waiting" };

// No answer: no network, or a server too slow this time (a retry button).
function unanswered(err, retry) {
  if (!(err instanceof TooSlow)) return el("p", { class: "empty needs-network" }, t("needs_network"));
  const again = el("button", { type: "button", class: "retry" }, t("retry"));
  again.addEventListener("click", retry);
  return el("p", { class: "empty", role: "alert" }, t("review_slow"), " ", again);
}

// What a failed answer means to the supervisor, or null when it was fine.
function failure(answer) {
  if (answer.ok) return null;
  if (answer.status === 401) return t("login_again");
  if (answer.status === 403) return answer.body.reason ? message(answer.body.reason) : t("review_forbidden");
  return message(answer.body.reason || answer.body.error || String(answer.status));
}

// --- words -----------------------------------------------------------------------------------

function decisionLabel(schemas, decision) {
  const prop = latestSchema(schemas, "verdict").schema?.properties?.decision || {};
  return pick((prop["x-enum-labels"] || {})[decision] || decision);
}

// A time as the city reads it (Asia/Shanghai), whatever the phone's zone.
function timeText(iso) {
  const ms = Date.parse(iso || "");
  return ms ? cityTime(ms, { date: true }) : "";
}

// A user by their full name (姓名) when the server gave it, else the login.
function personName(people, login) {
  return (people && people[login]) || login || "";
}

function revNumber(rev) {
  return String(rev || "").split("-")[0];
}

function stateChip(state) {
  return el("span", { class: `chip chip-${STATE_CHIP[state] || "state"}`, "data-state": state }, t(`rv_${state}`));
}

// A household in words: its address when the phone holds it, else nothing (never its key).
function householdText(app, grid, id) {
  if (!id) return "";
  const h = grid === app.grid?.code ? app.index?.get(id) : null;
  return h && h.address ? addressText(h.address) : "";
}

function recordHref(grid, id) {
  return `#/review/${encodeURIComponent(grid)}/${encodeURIComponent(id)}`;
}

// --- filters ---------------------------------------------------------------------------------

function loadFilters() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(FILTERS_KEY) || "{}");
    return Object.fromEntries(FILTERS.map((k) => [k, typeof stored[k] === "string" ? stored[k] : ""]));
  } catch {
    return Object.fromEntries(FILTERS.map((k) => [k, ""]));
  }
}

function saveFilters(filters) {
  sessionStorage.setItem(FILTERS_KEY, JSON.stringify(filters));
}

function labelled(id, label, control) {
  return el("div", { class: "field" }, el("label", { for: id }, label), control);
}

function choiceSelect(id, value, options) {
  return el("select", { id, name: id.replace(/^rf-/, "") },
    el("option", { value: "" }, t("filter_all")),
    options.map(([code, text]) => el("option", { value: code, selected: code === value }, text)));
}

function filterForm(app, filters, workers, onApply) {
  const grid = choiceSelect("rf-grid", filters.grid, app.me.grids.map((g) => [g.code, g.name]));
  const type = choiceSelect("rf-type", filters.type, TYPES.map((k) => [k, typeLabel(app.schemas, k)]));
  const state = choiceSelect("rf-state", filters.state, STATES.map((s) => [s, t(`rv_${s}`)]));
  const sort = el("select", { id: "rf-sort", name: "sort" },
    SORTS.map((s) => el("option", { value: s, selected: s === (filters.sort || "newest") }, w(`sort_${s}`))));
  const worker = el("input", { id: "rf-worker", name: "worker", type: "text", autocomplete: "off",
    autocapitalize: "none", list: "rf-workers", value: filters.worker });
  const from = el("input", { id: "rf-from", name: "from", type: "date", value: filters.from });
  const to = el("input", { id: "rf-to", name: "to", type: "date", value: filters.to });
  const form = el("form", { class: "review-filters", "aria-labelledby": "rf-title", novalidate: "" },
    el("fieldset", {},
      el("legend", { id: "rf-title" }, t("review_filters")),
      el("div", { class: "cards" },
        labelled("rf-grid", t("filter_grid"), grid),
        labelled("rf-type", t("filter_type"), type),
        labelled("rf-state", t("filter_state"), state),
        labelled("rf-worker", t("filter_worker"), worker),
        labelled("rf-from", t("filter_from"), from),
        labelled("rf-to", t("filter_to"), to),
        labelled("rf-sort", w("filter_sort"), sort)),
      workers,
      el("div", { class: "actions" }, el("button", { type: "submit", id: "rf-apply" }, t("apply_filters")))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = { grid: grid.value, type: type.value, state: state.value, worker: worker.value.trim(),
      from: from.value, to: to.value, sort: sort.value === "newest" ? "" : sort.value };
    saveFilters(chosen);
    onApply(chosen);
  });
  return form;
}

// --- giving verdicts -------------------------------------------------------------------------

// The comment and the three decisions, for whatever `items()` gives: [{grid, record, rev}].
function verdictPanel(app, key, items, done) {
  const commentId = `${key}-comment`;
  const comment = el("textarea", { id: commentId, name: "comment", rows: "2", maxlength: "1000",
    "aria-describedby": `${key}-comment-help ${key}-error` });
  const error = el("p", { class: "error", id: `${key}-error`, role: "alert" });
  const buttons = DECISIONS.map((decision) => el("button", {
    type: "button", class: decision === "approved" ? "primary" : null, "data-decision": decision,
    id: `${key}-${decision}` }, t(`give_${decision}`)));
  const panel = el("div", { class: "card review-panel", id: key },
    el("div", { class: "field" },
      el("label", { for: commentId }, t("comment")),
      el("p", { class: "meta", id: `${key}-comment-help` }, t("comment_help")),
      comment),
    error,
    el("div", { class: "actions" }, buttons));
  const give = async (decision) => {
    error.textContent = "";
    const chosen = items();
    const text = comment.value.trim();
    if (!chosen.length) {
      error.textContent = t("select_first");
      return;
    }
    if (decision !== "approved" && !text) {
      error.textContent = t("comment_needed");
      comment.focus();
      return;
    }
    const byGrid = new Map();
    for (const item of chosen) {
      if (!byGrid.has(item.grid)) byGrid.set(item.grid, []);
      byGrid.get(item.grid).push({ record: item.record, record_rev: item.rev, decision,
        ...(text ? { comment: text } : {}) });
    }
    for (const b of buttons) b.disabled = true;
    error.textContent = t("deciding");
    let written = 0;
    const problems = [];
    try {
      for (const [grid, verdicts] of byGrid) {
        const answer = await callApi("/api/review/verdicts", { method: "POST", body: JSON.stringify({ grid, verdicts }) }, TIMEOUT_MS);
        if (answer.ok) written += (answer.body.written || []).length;
        else problems.push(failure(answer));
      }
    } catch (err) {
      problems.push(t(err instanceof TooSlow ? "review_slow" : "needs_network"));
    }
    for (const b of buttons) b.disabled = false;
    error.textContent = problems.join("；");
    if (written) {
      comment.value = "";
      app.flash(tf("verdicts_given", { n: written }));
      await done(problems.join("；"));
    }
  };
  for (const b of buttons) b.addEventListener("click", () => give(b.dataset.decision));
  return panel;
}

// --- the queue -------------------------------------------------------------------------------

function queueTable(app, records, people, selected, onSelect) {
  let shown = Math.min(PAGE, records.length);
  const body = el("tbody");
  const all = el("input", { type: "checkbox", id: "rq-all" });
  const caption = el("caption", {}, tf("review_caption", { n: records.length }));
  const more = el("button", { type: "button", id: "rq-more" }, t("show_more"));
  const row = (r, n) => {
    const box = el("input", { type: "checkbox", id: `rq-${n}`, "data-record": r.record, checked: selected.has(r.record) });
    const title = `${typeLabel(app.schemas, r.record_type)} ${r.date}`;
    box.addEventListener("change", () => {
      if (box.checked) selected.set(r.record, r);
      else selected.delete(r.record);
      onSelect();
    });
    const comment = r.verdict && r.verdict.comment ? el("span", { class: "meta" }, r.verdict.comment) : null;
    return el("tr", { "data-record": r.record, "data-state": r.state },
      el("td", {}, box, el("label", { class: "visually-hidden", for: box.id }, tf("select_record", { record: title }))),
      el("th", { scope: "row" },
        el("a", { href: recordHref(r.grid, r.record) }, title),
        el("span", { class: "meta" }, " ", [gridName(app, r.grid), householdText(app, r.grid, r.household)]
          .filter(Boolean).join(" · "))),
      el("td", { "data-worker": r.worker || "" }, personName(people, r.worker)),
      el("td", {}, stateChip(r.state), comment ? " " : null, comment));
  };
  const fill = () => {
    body.replaceChildren(...records.slice(0, shown).map(row));
    more.hidden = shown >= records.length;
    all.checked = shown > 0 && records.slice(0, shown).every((r) => selected.has(r.record));
  };
  all.addEventListener("change", () => {
    for (const r of records.slice(0, shown)) {
      if (all.checked) selected.set(r.record, r);
      else selected.delete(r.record);
    }
    fill();
    onSelect();
  });
  more.addEventListener("click", () => {
    shown = Math.min(records.length, shown + PAGE);
    fill();
  });
  fill();
  const table = el("table", { class: "data review-queue", id: "review-table" },
    caption,
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, all, el("label", { class: "visually-hidden", for: all.id }, t("select_all"))),
      el("th", { scope: "col" }, t("col_record")),
      el("th", { scope: "col" }, t("col_worker")),
      el("th", { scope: "col" }, t("col_state")))),
    body);
  return [table, more];
}

// The queue: its nodes at once, the records filled in when the server answers.
export function reviewView(app) {
  const title = el("h2", { tabindex: "-1", class: "view-title" }, t("review_queue"));
  const crumbs = el("nav", { class: "crumbs" }, el("a", { href: "#/" }, app.grid ? app.grid.name : t("back")));
  if (!canDecide(app.me)) return [crumbs, title, el("p", { class: "empty" }, t("review_forbidden"))];
  const notice = el("p", { class: "notice", role: "status" });
  const count = el("p", { class: "meta", id: "rq-count", "aria-live": "polite" });
  const box = el("div", { id: "review", "aria-busy": "true" }, el("p", { class: "empty" }, t("loading")));
  const workers = el("datalist", { id: "rf-workers" });
  const selected = new Map();
  const showCount = () => { count.textContent = tf("selected_n", { n: selected.size }); };
  const show = (...nodes) => {
    box.replaceChildren(...nodes.filter(Boolean));
    box.setAttribute("aria-busy", "false");
  };
  let filters = loadFilters();
  let asked = 0; // only the latest question's answer is shown
  const load = async (note = "") => {
    const mine = ++asked;
    notice.textContent = note;
    box.setAttribute("aria-busy", "true");
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    let answer;
    try {
      answer = await callApi(`/api/review?${query}`, {}, TIMEOUT_MS);
    } catch (err) {
      if (mine === asked) show(unanswered(err, () => load()));
      return;
    }
    if (mine !== asked) return;
    const problem = failure(answer);
    if (problem) return show(el("p", { class: "error", role: "alert" }, problem));
    const records = Array.isArray(answer.body.records) ? answer.body.records : [];
    selected.clear();
    showCount();
    const people = answer.body.people || {};
    workers.replaceChildren(...[...new Set(records.map((r) => r.worker).filter(Boolean))].sort()
      .map((login) => el("option", { value: login }, personName(people, login))));
    app.review = { records, filters }; // for the tests and the curious
    if (!records.length) return show(el("p", { class: "empty" }, t("no_review_records")));
    // The same filtered list as a file (every record, past the screen's limit too).
    const downloads = el("p", { class: "downloads no-print" }, ...["xlsx", "csv"].map((format) =>
      el("a", { class: "download", "data-format": format, download: "", "aria-describedby": "rq-download-note",
        href: `/api/export?${new URLSearchParams({ ...Object.fromEntries(query), what: "review", format })}` },
      `${t("review_download")} (${format.toUpperCase()})`)),
    el("span", { class: "meta", id: "rq-download-note" }, w("no_personal_data")));
    show(
      answer.body.truncated ? el("p", { class: "warn" }, tf("review_truncated", { n: records.length })) : null,
      downloads,
      ...queueTable(app, records, people, selected, showCount),
      count,
      verdictPanel(app, "rq-verdict", () => [...selected.values()]
        .map((r) => ({ grid: r.grid, record: r.record, rev: r.rev })), load));
  };
  load();
  return [
    crumbs, title,
    el("p", {}, t("review_help")),
    filterForm(app, filters, workers, (chosen) => {
      filters = chosen;
      load();
    }),
    notice,
    box,
  ];
}

// --- one record ------------------------------------------------------------------------------

function fieldsOf(app, found) {
  const { record } = found;
  const schema = (app.schemas.types[record.type] || {})[record.schema_version] || latestSchema(app.schemas, record.type).schema || {};
  const props = schema.properties || {};
  const names = [...Object.keys(props), ...Object.keys(record).filter((k) => !(k in props))]
    .filter((k) => k in record && !NOT_SHOWN.has(k) && !k.startsWith("_"));
  return el("dl", { class: "facts", id: "record-fields" }, names.flatMap((name) => {
    const value = record[name];
    const label = fieldLabel(props[name], name);
    // People by name and times in the city's time; a linked record by its address, else by
    // the field's label (never its key).
    const text = name === "created_by" ? personName(found.people, value)
      : name === "device_time" ? timeText(value) || String(value)
        : valueText(app.schemas, record.type, name, value);
    const shown = (name === "household" || name === "person") && typeof value === "string"
      ? el("a", { href: recordHref(found.grid, value) }, (name === "household" && householdText(app, found.grid, value)) || label)
      : text;
    return [el("dt", { "data-field": name }, label), el("dd", { "data-field": name }, shown)];
  }));
}

// What changed in a revision, in the schema's order of fields; the earliest kept revision's whole
// content folded away, since the record's fields are shown above.
function changesTable(app, type, revision) {
  const first = revision.compared_with === null;
  const props = latestSchema(app.schemas, type).schema?.properties || {};
  const order = Object.keys(props);
  const rank = (field) => (order.includes(field) ? order.indexOf(field) : order.length);
  const changes = revision.changes.filter((c) => !NOT_SHOWN.has(c.field))
    .sort((a, b) => rank(a.field) - rank(b.field) || a.field.localeCompare(b.field));
  const valueCell = (change, side) => el("td", {}, valueText(app.schemas, type, change.field, change[side], { missing: !(side in change) }));
  const table = el("table", { class: "data changes", "data-rev": revision.rev },
    el("caption", { class: first ? "visually-hidden" : null }, first ? t("first_kept") : tf("changes_since", { n: revNumber(revision.compared_with) })),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, t("field")),
      first ? el("th", { scope: "col" }, t("value")) : [el("th", { scope: "col" }, t("before")), el("th", { scope: "col" }, t("after"))])),
    el("tbody", {}, changes.map((c) => el("tr", { "data-field": c.field, "data-kind": c.kind },
      el("th", { scope: "row" }, fieldLabel(props[c.field], c.field)),
      first ? valueCell(c, "to") : [valueCell(c, "from"), valueCell(c, "to")]))));
  return first ? el("details", { class: "first-kept" }, el("summary", {}, t("first_kept")), table) : table;
}

function historySection(app, found) {
  const items = found.revisions.map((r) => {
    const about = [personName(found.people, r.by) || t("sender_unknown"), r.received_at && `${t("received_at")} ${timeText(r.received_at)}`];
    let detail = null;
    if (!r.kept) detail = el("p", { class: "meta" }, t("not_kept_help"));
    else if (r.changes && r.changes.some((c) => !NOT_SHOWN.has(c.field))) detail = changesTable(app, found.record_type, r);
    else if (r.changes) detail = el("p", { class: "meta" }, t("no_changes"));
    return el("li", { class: "revision", "data-rev": r.rev, "data-kept": String(r.kept) },
      el("span", { class: "main" }, tf("revision_n", { n: revNumber(r.rev) })),
      r.rev === found.rev ? el("span", { class: "chip chip-visited" }, t("current")) : null,
      r.kept ? null : el("span", { class: "chip" }, t("not_kept")),
      r.deleted ? el("span", { class: "chip chip-refused" }, t("deleted_rev")) : null,
      el("span", { class: "meta" }, about.filter(Boolean).join(" · ")),
      detail);
  });
  return el("section", { class: "history", "aria-labelledby": "history-title" },
    el("h3", { id: "history-title" }, t("history")),
    el("ol", { class: "list revisions" }, items),
    found.older_revisions ? el("p", { class: "meta" }, tf("older_revisions", { n: found.older_revisions })) : null);
}

function verdictsSection(app, found) {
  return el("section", { class: "card verdicts", "aria-labelledby": "verdicts-title" },
    el("h3", { id: "verdicts-title" }, t("verdicts")),
    found.verdicts.length
      ? el("ul", { class: "list" }, [...found.verdicts].reverse().map((v) => el("li", { class: `verdict verdict-${v.decision}` },
        el("span", { class: "main" }, `${decisionLabel(app.schemas, v.decision)}${v.comment ? `：${v.comment}` : ""}`),
        el("span", { class: "meta" }, [personName(found.people, v.by), v.at ? timeText(v.at) : t("just_received"), tf("verdict_on", { n: revNumber(v.record_rev) }),
          v.device_time ? tf("device_time", { time: timeText(v.device_time) || v.device_time }) : ""].filter(Boolean).join(" · ")))))
      : el("p", { class: "empty" }, t("no_verdicts")));
}

// The reason a reveal needs (核实身份, 入户走访, 其他 with a text), then the reveal itself: the
// server writes who, whom, which fields, why and when to the audit (docs/privacy.md).
function revealForm(reveal) {
  const choice = el("select", { id: "reveal-reason", "aria-label": t("reveal_reason") },
    ...["verify_identity", "home_visit", "other"].map((code) => el("option", { value: code }, t(`reveal_${code}`))));
  const text = el("input", { id: "reveal-text", type: "text", maxlength: "200", hidden: "",
    "aria-label": t("reveal_text") });
  choice.addEventListener("change", () => { text.hidden = choice.value !== "other"; });
  const button = el("button", { type: "button", id: "unmask" }, t("show_unmasked"));
  button.addEventListener("click", () => reveal({ code: choice.value, text: choice.value === "other" ? text.value.trim() : "" }));
  return el("div", { class: "actions", id: "reveal" }, choice, text, button);
}

// One record: its nodes at once, filled in when the server answers.
export function reviewRecordView(app, grid, id) {
  const crumbs = el("nav", { class: "crumbs" }, el("a", { href: "#/review", id: "back-to-queue" }, t("review_queue")));
  const title = el("h2", { tabindex: "-1", class: "view-title" }, t("review_record"));
  if (!canDecide(app.me)) return [crumbs, title, el("p", { class: "empty" }, t("review_forbidden"))];
  const box = el("div", { id: "review-record", "aria-busy": "true" }, el("p", { class: "empty" }, t("loading")));
  const show = (...nodes) => {
    box.replaceChildren(...nodes.filter(Boolean));
    box.setAttribute("aria-busy", "false");
  };
  let asked = 0; // only the latest question's answer is shown
  let remask = null; // the timer that masks the record again when its reveal ends
  const load = async (unmask = false, reason = null) => {
    const mine = ++asked;
    box.setAttribute("aria-busy", "true");
    const query = new URLSearchParams({ grid, id });
    if (unmask) query.set("unmask", "1");
    if (reason) {
      query.set("reason", reason.code);
      if (reason.text) query.set("reason_text", reason.text);
    }
    let answer;
    try {
      answer = await callApi(`/api/review/record?${query}`, {}, TIMEOUT_MS);
    } catch (err) {
      if (mine === asked) show(unanswered(err, () => load(unmask)));
      return;
    }
    if (mine !== asked) return;
    const problem = failure(answer);
    if (problem) return show(el("p", { class: "error", role: "alert" }, problem));
    const found = answer.body;
    app.reviewRecord = found; // for the tests and the curious
    clearTimeout(remask);
    if (found.revealed_until) {
      // The reveal holds for the server's setting; then the record is masked again.
      const left = Date.parse(found.revealed_until) - Date.now();
      remask = setTimeout(() => { if (box.isConnected) load(false); }, Math.max(left, 0));
    }
    const { record } = found;
    const date = record.visited_on || record.enumerated_on || record.screened_on || String(record.device_time || "").slice(0, 10);
    title.textContent = `${typeLabel(app.schemas, found.record_type)}${date ? ` ${date}` : ""}`;
    // Only users given the `unmask` right may ask (the server refuses the others and audits both).
    const mayUnmask = (app.me?.rights || []).includes("unmask");
    const hasMasked = mayUnmask && found.masked && sensitiveFields(found.record_type).some((k) => k in record);
    const unmaskButton = hasMasked ? revealForm((reason) => load(true, reason)) : null;
    const reviewable = found.state !== null && found.state !== undefined;
    show(
      el("p", { class: "meta", id: "record-about" }, [gridName(app, grid), personName(found.people, record.created_by)].filter(Boolean).join(" · ")),
      reviewable ? el("p", {}, stateChip(found.state)) : null,
      found.conflicts && found.conflicts.length ? el("p", { class: "warn" }, el("a", { href: "#/conflicts" }, t("record_conflicts"))) : null,
      el("section", { "aria-labelledby": "fields-title" },
        el("h3", { id: "fields-title" }, t("record_fields")),
        hasMasked ? el("p", { class: "meta" }, t("masked_note")) : null,
        fieldsOf(app, found),
        unmaskButton),
      reviewable ? verdictPanel(app, "rr-verdict", () => [{ grid, record: found.id, rev: found.rev }], () => load(unmask)) : null,
      reviewable ? verdictsSection(app, found) : null,
      historySection(app, found));
  };
  load();
  return [crumbs, title, box];
}
