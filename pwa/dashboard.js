// The supervisors' dashboard: an area's figures and those of the areas just below it, from the
// server's aggregates (`GET /api/aggregates?level=&code=`), from the city down to a grid. Each
// chart is an SVG built with DOM calls (no library, no style attributes: classes only) and is
// followed by a table with its numbers, so nothing is only in the picture. The figures live on
// the server, so this screen needs the network; it says so when there is none. It prints.

import { TooSlow, callApi } from "./api.js";
import { el } from "./dom.js";
import { exportsSection } from "./exports.js";
import { lang, message, pick, t, tf } from "./i18n.js";

const LEVELS = ["city", "district", "street", "community", "grid"];
const TIMEOUT_MS = 120_000; // the first figures of a grid can take the server a while
const SVG_NS = "http://www.w3.org/2000/svg";
const DAYS_SHOWN = 30;
const VERDICTS = ["approved", "has_issues", "rejected"];
const AGE_BANDS = ["0-14", "15-59", "60-79", "80+", "unknown"];

// This screen's own words (the shared ones are in i18n.js).
const WORDS = {
  fig_time_to_review: ["审核用时中位数", "Median time to review"],
  hours_range: ["{from}–{to} 小时", "{from}–{to} hours"],
  hours_within: ["{to} 小时内", "within {to} hours"],
  hours_over: ["超过 {from} 小时", "over {from} hours"],
  days_range: ["{from}–{to} 天", "{from}–{to} days"],
  days_over: ["超过 {from} 天", "over {from} days"],
  unknown: ["未填写", "Not given"],
  share: ["占比", "Share"],
  category: ["类别", "Category"],
  chart_households_status: ["住户状态", "Households by status"],
  chart_persons_sex: ["在住人口（性别）", "Persons present by sex"],
  chart_persons_age: ["在住人口（年龄段）", "Persons present by age band"],
  chart_screenings_result: ["排查结果", "Screenings by result"],
  chart_screenings_health_code: ["健康码颜色", "Screenings by health-code colour"],
  chart_review_time: ["审核用时", "Time to review"],
  table_suffix: ["（数据）", " (data)"],
  review_time_help: ["从服务器收到记录到第一次审核；中位数为所在区间",
    "From the server's receipt of a record to its first verdict; the median is given as the interval that holds it"],
  no_figures: ["还没有数据", "No figures yet"],
  download: ["下载统计表", "Download the figures"],
};
const w = (key) => pick(WORDS[key]);
const wf = (key, values) => w(key).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));

async function fetchAggregates(level, code) {
  const query = new URLSearchParams({ level });
  if (level !== "city") query.set("code", code);
  return callApi(`/api/aggregates?${query}`, {}, TIMEOUT_MS);
}

// --- figures ---------------------------------------------------------------------------------

// A figure of an area: absent means 0, unless the server withheld it (a small count, or a figure
// that would give one back).
export function figure(area, name) {
  if ((area.suppressed || []).includes(name)) return { value: null, hidden: true };
  return { value: Number((area.figures || {})[name] || 0), hidden: false };
}

function numberText(n) {
  return Number(n).toLocaleString(lang() === "en" ? "en-GB" : "zh-CN");
}

function figureText(f) {
  return f.hidden ? t("withheld") : numberText(f.value);
}

// part / whole as a whole percentage, or null when it cannot be told.
function percent(part, whole) {
  if (part.hidden || whole.hidden || !whole.value) return null;
  return Math.round((100 * part.value) / whole.value);
}

function percentText(p) {
  return p === null ? "—" : `${p}%`;
}

export function hashFor(level, code) {
  // The city by name: a bare #/dashboard opens on the user's own level (`me.home`).
  return level === "city" ? "#/dashboard/city" : `#/dashboard/${level}/${encodeURIComponent(code)}`;
}

// Labels of a record type's field codes, from the newest schema the app loaded.
function codeLabels(app, type, field) {
  const versions = app.schemas?.types?.[type] || {};
  const newest = Object.keys(versions).map(Number).sort((a, b) => b - a)[0];
  return versions[newest]?.properties?.[field]?.["x-enum-labels"] || {};
}

// The time to review's bucket as words: "1–2 hours", "within 1 hour", "over 60 days".
export function reviewTimeText(bucket) {
  if (!bucket) return "—";
  const { from_hours: from, to_hours: to } = bucket;
  if (to === null || to === undefined) return from >= 48 ? wf("days_over", { from: from / 24 }) : wf("hours_over", { from });
  if (!from) return wf("hours_within", { to });
  if (from >= 48 && from % 24 === 0 && to % 24 === 0) return wf("days_range", { from: from / 24, to: to / 24 });
  return wf("hours_range", { from, to });
}

function areaName(app, level, code, name) {
  if (level === "city") return t("level_city_all");
  if (name) return name;
  if (level === "grid") {
    const grid = (app.me?.grids || []).find((g) => g.code === code);
    if (grid?.name) return grid.name;
  }
  return `${t(`level_${level}`)} ${code}`;
}

// The areas above one, from the codes (GB/T 2260 and the ministry's: a street's district is its
// first 6 digits, a community's street its first 9) and, for a grid, from the user's grids.
function ancestors(app, level, code) {
  const grids = app.me?.grids || [];
  const grid = level === "grid" ? grids.find((g) => g.code === code) : null;
  const community = level === "community" ? code : grid?.community || "";
  const street = level === "street" ? code
    : grid?.street || (grids.find((g) => g.community === community) || {}).street || community.slice(0, 9);
  const district = level === "district" ? code : street.slice(0, 6);
  const chain = { district, street, community };
  const out = [{ level: "city", code: "" }];
  for (const at of ["district", "street", "community"]) {
    if (LEVELS.indexOf(at) >= LEVELS.indexOf(level)) break;
    if (chain[at]) out.push({ level: at, code: chain[at] });
  }
  return out;
}

// --- SVG charts ------------------------------------------------------------------------------

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function chartRoot(kind, width, height, label) {
  return svg("svg", { class: `chart chart-${kind}`, viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": label, focusable: "false", "data-chart": kind });
}

// Horizontal bars: a label over each bar, the value's text after it.
function horizontalBars(kind, rows, { max, label, unit = "" }) {
  const width = 320;
  const rowHeight = 38;
  const barWidth = 250;
  const root = chartRoot(kind, width, Math.max(1, rows.length) * rowHeight + 4, label);
  const top = max || Math.max(1, ...rows.map((r) => r.value || 0));
  rows.forEach((row, i) => {
    const y = i * rowHeight;
    const length = row.value ? Math.max(2, Math.round((barWidth * row.value) / top)) : 0;
    root.append(
      svg("text", { x: 0, y: y + 13, class: "chart-label" }, row.label),
      svg("rect", { x: 0, y: y + 18, width: barWidth, height: 14, class: "bar-track" }),
      svg("rect", { x: 0, y: y + 18, width: length, height: 14, class: `bar ${row.kind ? `bar-${row.kind}` : ""}`.trim() }),
      svg("text", { x: barWidth + 6, y: y + 30, class: "chart-value" }, row.text ?? `${row.value}${unit}`));
  });
  return root;
}

// Vertical bars over dates: the first, middle and last date under the axis, the highest value on it.
function dayBars(kind, rows, label) {
  const width = 320;
  const height = 150;
  const left = 28;
  const bottom = 128;
  const plot = bottom - 10;
  const root = chartRoot(kind, width, height, label);
  const top = Math.max(1, ...rows.map((r) => r.value));
  const step = (width - left) / Math.max(1, rows.length);
  root.append(
    svg("line", { x1: left, y1: bottom, x2: width, y2: bottom, class: "axis" }),
    svg("text", { x: left - 4, y: bottom - plot + 4, class: "chart-value axis-label", "text-anchor": "end" }, top),
    svg("text", { x: left - 4, y: bottom, class: "chart-value axis-label", "text-anchor": "end" }, 0));
  rows.forEach((row, i) => {
    const h = Math.round((plot * row.value) / top);
    root.append(svg("rect", { x: (left + i * step + step * 0.15).toFixed(1), y: bottom - h,
      width: Math.max(1, step * 0.7).toFixed(1), height: h, class: "bar" },
    svg("title", {}, `${row.label}：${row.value}`)));
  });
  const marks = [...new Set([0, Math.floor((rows.length - 1) / 2), rows.length - 1])].filter((i) => i >= 0);
  for (const i of marks) {
    const x = left + i * step + step / 2;
    const anchor = marks.length > 1 && i === 0 ? "start" : i === rows.length - 1 && marks.length > 1 ? "end" : "middle";
    root.append(svg("text", { x: anchor === "start" ? left : anchor === "end" ? width : x, y: bottom + 16,
      class: "chart-label axis-label", "text-anchor": anchor }, rows[i].label.slice(5)));
  }
  return root;
}

function dataTable(kind, caption, headers, rows) {
  return el("table", { class: `data data-${kind}`, "data-table": kind },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { scope: "col", class: i ? "num" : null }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {},
      cells.map((cell, i) => (i === 0 ? el("th", { scope: "row" }, cell) : el("td", { class: "num" }, cell)))))));
}

// Codes of a figure group ("households.status."), in `order` first, then any others the
// server counted (or withheld), so nothing counted is left out of the table.
function codesOf(report, prefix, order = []) {
  const seen = Object.keys(report.figures || {}).concat(report.suppressed || [])
    .filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  const present = new Set(seen);
  return order.filter((c) => present.has(c)).concat([...present].filter((c) => !order.includes(c)).sort());
}

// One figure split by a code (status, sex, result...): bars, then a table with the shares.
function breakdownSection(report, kind, prefix, labels, order = Object.keys(labels)) {
  const title = w(`chart_${kind}`);
  const codes = codesOf(report, prefix, order);
  if (!codes.length) {
    return el("section", { class: "chart-box card", "data-section": kind },
      el("h3", {}, title), el("p", { class: "empty" }, w("no_figures")));
  }
  const rows = codes.map((code) => ({ code, name: code === "unknown" ? w("unknown") : pick(labels[code] || code),
    f: figure(report, prefix + code) }));
  const whole = rows.some((r) => r.f.hidden) ? { value: 0, hidden: true }
    : { value: rows.reduce((sum, r) => sum + r.f.value, 0), hidden: false };
  const label = `${title}：` + rows.map((r) => `${r.name} ${figureText(r.f)}`).join(lang() === "en" ? ", " : "，");
  const chart = horizontalBars(kind, rows.map((r) => ({ label: r.name, value: r.f.value || 0, text: figureText(r.f),
    kind: `${kind}-${r.code}` })), { label });
  const table = dataTable(kind, title + w("table_suffix"), [w("category"), t("records"), w("share")],
    rows.map((r) => [r.name, figureText(r.f), percentText(percent(r.f, whole))]));
  return chartSection(kind, title, chart, table);
}

function reviewTimeSection(report) {
  const kind = "review_time";
  const title = w("chart_review_time");
  const edges = report.review_hours || []; // the upper edges of the server's histogram, in hours
  const names = edges.map((h) => `review.hours.le_${h}`).concat(`review.hours.over_${edges.at(-1)}`);
  const counted = names.map((name, i) => ({ name, i, f: figure(report, name) }));
  const used = counted.filter((r) => r.f.hidden || r.f.value);
  if (!used.length) {
    return el("section", { class: "chart-box card", "data-section": kind },
      el("h3", {}, title), el("p", { class: "empty" }, w("no_figures")));
  }
  const rows = counted.slice(used[0].i, used.at(-1).i + 1).map((r) => ({ ...r,
    label: reviewTimeText({ from_hours: r.i ? edges[r.i - 1] : 0, to_hours: edges[r.i] ?? null }) }));
  const median = reviewTimeText(report.time_to_review);
  const label = `${title}（${w("fig_time_to_review")} ${median}）：` + rows.map((r) => `${r.label} ${figureText(r.f)}`)
    .join(lang() === "en" ? ", " : "，");
  const chart = horizontalBars(kind, rows.map((r) => ({ label: r.label, value: r.f.value || 0, text: figureText(r.f) })), { label });
  const table = dataTable(kind, title + w("table_suffix"), [title, t("records")], rows.map((r) => [r.label, figureText(r.f)]));
  return chartSection(kind, title, chart, table,
    el("p", { class: "meta" }, `${w("fig_time_to_review")}：${median}。${w("review_time_help")}`));
}

function chartSection(kind, title, chart, table, note = null) {
  const id = `chart-${kind}-title`;
  return el("section", { class: "chart-box card", "aria-labelledby": id, "data-section": kind },
    el("h3", { id }, title), note, chart, table);
}

// --- the three charts ------------------------------------------------------------------------

function coverageSection(app, report) {
  const areas = report.children.length ? report.children : [report];
  const rows = areas.map((area) => {
    const households = figure(area, "households");
    const covered = figure(area, "visits.covered");
    const p = percent(covered, households);
    const name = areaName(app, area.level, area.code, area.name);
    return { area, name, households, covered, p };
  });
  const label = `${t("chart_coverage")}：` + rows.map((r) => `${r.name} ${percentText(r.p)}`)
    .join(lang() === "en" ? ", " : "，");
  const chart = horizontalBars("coverage", rows.map((r) => ({ label: r.name, value: r.p || 0,
    text: r.p === null ? (r.covered.hidden || r.households.hidden ? t("withheld") : "—") : `${r.p}%` })),
  { max: 100, label });
  const drill = report.children.length > 0;
  const table = dataTable("coverage", t("table_coverage"),
    [t("area"), t("fig_households"), t("fig_covered"), t("fig_coverage")],
    rows.map((r) => [
      drill ? el("a", { href: hashFor(r.area.level, r.area.code), "data-level": r.area.level,
        "data-code": r.area.code }, r.name) : r.name,
      figureText(r.households), figureText(r.covered), percentText(r.p)]));
  return chartSection("coverage", t("chart_coverage"), chart, table,
    drill ? el("p", { class: "meta no-print" }, t("drill_help")) : null);
}

export function screeningDays(report) {
  const prefix = "screenings.day.";
  const days = Object.keys(report.figures || {}).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length))
    .concat((report.suppressed || []).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)))
    .filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d));
  const held = [...new Set(days)].sort();
  if (!held.length) return [];
  // Every calendar day from the first with records (at most DAYS_SHOWN back from the last), a
  // day without records as 0: skipping it would make a gap look like continuity (issue 22).
  const dayMs = 86_400_000;
  const last = Date.parse(`${held[held.length - 1]}T00:00:00Z`);
  const first = Math.max(Date.parse(`${held[0]}T00:00:00Z`), last - (DAYS_SHOWN - 1) * dayMs);
  const shown = [];
  for (let at = first; at <= last; at += dayMs) shown.push(new Date(at).toISOString().slice(0, 10));
  return shown.map((day) => ({ day, f: figure(report, prefix + day) }));
}

function screeningsSection(report) {
  const days = screeningDays(report);
  if (!days.length) {
    return el("section", { class: "chart-box card", "data-section": "screenings" },
      el("h3", {}, t("chart_screenings")), el("p", { class: "empty" }, t("no_screenings")));
  }
  const total = days.reduce((sum, d) => sum + (d.f.value || 0), 0);
  const busiest = days.reduce((a, b) => ((b.f.value || 0) > (a.f.value || 0) ? b : a));
  const label = tf("chart_screenings_label", { first: days[0].day, last: days[days.length - 1].day,
    n: days.length, total: numberText(total), max: numberText(busiest.f.value || 0), day: busiest.day });
  const chart = dayBars("screenings", days.map((d) => ({ label: d.day, value: d.f.value || 0 })), label);
  const table = dataTable("screenings", t("table_screenings"), [t("date"), t("fig_screenings")],
    days.map((d) => [d.day, figureText(d.f)]));
  return chartSection("screenings", t("chart_screenings"), chart, table);
}

function reviewSection(report) {
  const rows = VERDICTS.map((v) => ({ v, f: figure(report, `review.${v}`) }));
  const label = `${t("chart_review")}：` + rows.map((r) => `${t(`verdict_${r.v}`)} ${figureText(r.f)}`)
    .join(lang() === "en" ? ", " : "，");
  const chart = horizontalBars("review", rows.map((r) => ({ label: t(`verdict_${r.v}`), value: r.f.value || 0,
    text: figureText(r.f), kind: r.v })), { label });
  const table = dataTable("review", t("table_review"), [t("verdict"), t("records")],
    rows.map((r) => [t(`verdict_${r.v}`), figureText(r.f)]));
  return chartSection("review", t("chart_review"), chart, table);
}

// --- headline figures ------------------------------------------------------------------------

function headline(report) {
  const households = figure(report, "households");
  const items = [
    ["households", t("fig_households"), figureText(households)],
    ["coverage", t("fig_coverage"), percentText(percent(figure(report, "visits.covered"), households))],
    ["census", t("fig_census"), percentText(percent(figure(report, "census.enumerated"), households))],
    ["persons", t("fig_persons"), figureText(figure(report, "persons"))],
    ["screenings", t("fig_screenings"), figureText(figure(report, "screenings"))],
    ["conflicts", t("fig_conflicts"), figureText(figure(report, "conflicts.open"))],
    ["reviewed", t("fig_reviewed"), figureText(figure(report, "review.reviewed"))],
    ["time_to_review", w("fig_time_to_review"), reviewTimeText(report.time_to_review)],
  ];
  return el("section", { class: "headline", "aria-label": t("headline") },
    el("dl", { class: "figures" }, items.map(([key, name, value]) =>
      el("div", { class: "figure", "data-figure": key }, el("dt", {}, name), el("dd", {}, value)))));
}

// --- the screen ------------------------------------------------------------------------------

export function dashboardView(app, level = "city", code = "") {
  if (!LEVELS.includes(level)) level = "city";
  if (level === "city") code = "";
  const box = el("div", { id: "dashboard", "aria-live": "polite", "aria-busy": "true" },
    el("p", { class: "empty" }, t("loading")));
  const title = el("h2", { tabindex: "-1", class: "view-title" },
    `${t("dashboard")} · ${areaName(app, level, code, "")}`);
  // Above the user's own level (a community's supervisor: the street, the city) is not theirs.
  const home = LEVELS.indexOf(app.me?.home?.level || "city");
  const trail = ancestors(app, level, code).filter((a) => LEVELS.indexOf(a.level) >= home);
  const crumbs = el("nav", { class: "crumbs", "aria-label": t("breadcrumbs") },
    el("ol", {}, trail.map((a) => el("li", {},
      el("a", { href: hashFor(a.level, a.code), "data-level": a.level }, areaName(app, a.level, a.code, "")))),
    el("li", {}, el("span", { "aria-current": "page", "data-level": level }, areaName(app, level, code, "")))));
  const show = (...nodes) => {
    box.replaceChildren(...nodes);
    box.setAttribute("aria-busy", "false");
  };
  const load = async () => {
    let answer;
    try {
      answer = await fetchAggregates(level, code);
    } catch (err) {
      if (err instanceof TooSlow) {
        return show(el("p", { class: "error", role: "alert" }, t("dashboard_slow")),
          el("button", { type: "button", class: "retry", onclick: () => { box.setAttribute("aria-busy", "true"); load(); } }, t("retry")));
      }
      return show(el("p", { class: "empty needs-network" }, t("needs_network")));
    }
    // Another route has replaced this screen while the figures came: they are no longer the
    // ones shown, and must not stand as the dashboard's state (linli.dashboard) either.
    if (!box.isConnected) return;
    if (answer.status === 401) return show(el("p", { class: "empty" }, t("login_again")));
    if (answer.status === 403) return show(el("p", { class: "empty" }, t("dashboard_forbidden")));
    if (answer.status === 404 || answer.status === 400) return show(el("p", { class: "empty" }, t("no_such_area")));
    if (!answer.ok) return show(el("p", { class: "error", role: "alert" }, message(answer.body.reason || String(answer.status))));
    const report = { ...answer.body, children: Array.isArray(answer.body.children) ? answer.body.children : [] };
    app.dashboard = report;
    const name = areaName(app, level, code, report.name);
    title.textContent = `${t("dashboard")} · ${name}`;
    crumbs.querySelector("[aria-current]").textContent = name;
    for (const parent of report.parents || []) {  // the server knows the names above
      const link = crumbs.querySelector(`a[data-level="${parent.level}"]`);
      if (link && parent.level !== "city") {
        link.textContent = areaName(app, parent.level, parent.code, parent.name);
        link.href = hashFor(parent.level, parent.code);
      }
    }
    show(headline(report), coverageSection(app, report), screeningsSection(report), reviewSection(report),
      breakdownSection(report, "households_status", "households.status.", codeLabels(app, "household", "status")),
      breakdownSection(report, "persons_sex", "persons.sex.", codeLabels(app, "person", "sex")),
      breakdownSection(report, "persons_age", "persons.age.",
        Object.fromEntries(AGE_BANDS.filter((b) => b !== "unknown").map((b) => [b, [`${b} 岁`, `${b} years`]])), AGE_BANDS),
      breakdownSection(report, "screenings_result", "screenings.result.", codeLabels(app, "screening", "test_result")),
      breakdownSection(report, "screenings_health_code", "screenings.health_code.", codeLabels(app, "screening", "health_code")),
      reviewTimeSection(report));
  };
  if (!["supervisor", "admin"].includes(app.me?.role)) show(el("p", { class: "empty" }, t("dashboard_forbidden")));
  else load();
  return [
    el("p", { class: "crumbs no-print" }, el("a", { href: "#/" }, app.grid ? app.grid.name : t("back"))),
    crumbs,
    title,
    el("div", { class: "actions" },
      el("button", { type: "button", id: "print", onclick: () => window.print() }, t("print")),
      ...["xlsx", "csv"].map((format) => el("a", { class: "download no-print", "data-format": format, download: "",
        href: `/api/export?${new URLSearchParams({ what: "aggregates", level, code, format })}` },
      `${w("download")} (${format.toUpperCase()})`))),
    ["supervisor", "admin"].includes(app.me?.role) ? exportsSection(level, code) : null,
    box,
  ];
}
