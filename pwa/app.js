// The grid worker's app: starts from what the phone remembers (so it opens with no network),
// asks for a login only when there is nobody to work as or the server wants a new one, keeps the
// grid replicating in the background, and routes between the screens of views.js. A resident's
// login starts the resident's app instead (pwa/resident/), and sign-up needs no login.

import { centreDayView, centreLink, centreOverviewLink, centreOverviewView, providesServices } from "./centre.js";
import { canDecide, conflictsView } from "./conflicts.js";
import { dashboardView } from "./dashboard.js";
import { el } from "./dom.js";
import { clockTime, formatTime, lang, message, setLang, t, tf } from "./i18n.js";
import { noticesLink, noticesView, refreshVisits } from "./notices.js";
import { liaisonThreadsLink, liaisonThreadsView } from "./liaison/officers.js";
import { patrolLink, patrolView } from "./liaison/patrol.js";
import { mediationLink, mediationView } from "./mediation/cases.js";
import { branchView, canSeeBranches } from "./party/branch.js";
import { questionnairesLink, questionnairesView } from "./questionnaires.js";
import { ratingsLink, ratingsView } from "./ratings.js";
import { canSeeStars, starsLink, starsView } from "./stars/sheet.js";
import { tasksLink, tasksView } from "./volunteering.js";
import { GridIndex } from "./records.js";
import { keepActivationCode } from "./resident/activation.js";
import { renderStatus, residentRoute, startResident, stopResident } from "./resident/main.js";
import { signupView } from "./resident/signup.js";
import { reviewRecordView, reviewView } from "./review.js";
import { canManageUsers, usersView } from "./users.js";
import { inboxView, refreshReports } from "./worker/inbox.js";
import { auditView, canReadAudit } from "./audit.js";
import { canSeeRetention, retentionView } from "./retention.js";
import { canAnswerRequests, dataRequestsView } from "./datarequests.js";
import { wipeIfRevoked, wipedAt } from "./revoke.js";
import { handleView, reportsLink } from "./worker/reports.js";
import { codeView, correctionView, decideView, newCodeView, queueView, removeResidentView } from "./worker/residents.js";
import { LoginError, fetchMe, logIn, logOut, rememberedUser } from "./session.js";
import { GridSync, dropUnneeded, forgetGrids, forgetOtherGrids, purgeCampaigns, storageReport } from "./sync.js";
import { buildingView, formView, gridView, householdView, newRecord, refusedView, removeView } from "./views.js";

const GRID_KEY = "linli.grid";
const view = document.getElementById("view");
const syncBar = document.getElementById("syncbar");
const serverNav = document.getElementById("serverlinks");
const loginDialog = document.getElementById("login");
const updateBar = document.getElementById("update");
const flashBox = document.getElementById("flash");

const app = {
  me: null,
  grid: null,
  sync: null,
  index: null,
  schemas: null,
  query: "",
  storage: { persisted: null, low: false },
  flash(text) {
    flashBox.textContent = text;
    flashBox.hidden = false;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => { flashBox.hidden = true; }, 4000);
  },
};
app.restart = (me) => start(me);
app.rerender = () => rerender();
app.switchGrid = async (code) => {
  localStorage.setItem(GRID_KEY, code);
  app.query = "";
  await start(app.me);
};
window.linli = app; // for the tests and the curious: the state the screens show

// PouchDB's HTTP adapter can leave a rejected promise unhandled when a sync is set up while the
// phone is offline (apache/pouchdb#4049). The sync's own "paused" event already tells the worker
// the network is gone, so a bare network failure is not shown as an error of the app; every
// other unhandled rejection still is.
window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof TypeError && event.reason.message === "Failed to fetch") event.preventDefault();
});

// --- static words ----------------------------------------------------------------------------

function renderChrome() {
  document.title = `${t("app_name")} Linli`;
  const toggle = document.getElementById("lang");
  toggle.textContent = t("switch_language");
  toggle.setAttribute("aria-label", t("switch_language_label"));
  document.getElementById("login-title").textContent = t("login_title");
  document.getElementById("login-name-label").textContent = t("user_name");
  document.getElementById("login-password-label").textContent = t("password");
  document.getElementById("login-submit").textContent = t("log_in");
  document.getElementById("login-signup").textContent = t("r_signup_link");
  document.getElementById("update-text").textContent = t("update_ready");
  document.getElementById("update-now").textContent = t("update_now");
  const out = document.getElementById("logout");
  out.textContent = t("log_out");
  out.hidden = !app.me;
}

document.getElementById("lang").addEventListener("click", () => {
  setLang(lang() === "en" ? "zh" : "en");
  renderChrome();
  renderSyncBar();
  route();
});

// --- the sync bar ----------------------------------------------------------------------------

// Supervisors and admins without the unmask right keep no grid on the phone: the server
// refuses them a grid's records through /couch/, and they read them masked through /api/.
function replicates(me) {
  return Boolean(me) && me.replicates !== false;
}

function serverLinks() {
  const notices = noticesLink(app.me);
  const party = canSeeBranches(app.me) ? el("a", { href: "#/party", id: "party-link" }, t("b_link")) : null;
  const questionnaires = questionnairesLink(app.me);
  const tasks = tasksLink(app.me);
  const handle = reportsLink(app.me);
  const ratings = ratingsLink(app.me);
  const stars = starsLink(app.me);
  const mediation = mediationLink(app.me) || patrolLink(app.me);
  const centre = centreLink(app.me) || centreOverviewLink(app.me);
  const threads = liaisonThreadsLink(app.me);
  if (!canDecide(app.me)) return [notices, questionnaires, tasks, handle, ratings, stars, mediation, threads, party, centre].filter(Boolean);
  return [notices, questionnaires, tasks, handle, ratings, stars, mediation, threads, centre,
    el("a", { href: "#/conflicts", id: "conflicts-link" }, t("conflict_queue")),
    el("a", { href: "#/dashboard", id: "dashboard-link" }, t("dashboard")),
    el("a", { href: "#/review", id: "review-link" }, t("review_queue")),
    canManageUsers(app.me) ? el("a", { href: "#/users", id: "users-link" }, t("users_link")) : null,
    canReadAudit(app.me) ? el("a", { href: "#/audit", id: "audit-link" }, t("audit_link")) : null,
    canSeeRetention(app.me) ? el("a", { href: "#/retention", id: "retention-link" }, t("retention_link")) : null,
    canAnswerRequests(app.me) ? el("a", { href: "#/data-requests", id: "requests-link" }, t("requests_link")) : null,
    party,
  ].filter(Boolean);
}

// The supervisors' links stand in a bar of their own, made again only when the user or the
// language changes: inside the sync bar, remade at every status, they moved under a finger (or
// a test's click) while the phone synced, and a live region read them out at each change.
let serverLinksFor = null;

function renderServerLinks() {
  const key = `${app.me?.name}|${app.me?.role}|${document.documentElement.lang}`;
  if (key === serverLinksFor) return;
  serverLinksFor = key;
  serverNav.setAttribute("aria-label", t("server_links"));
  serverNav.replaceChildren(...serverLinks());
}

function renderSyncBar() {
  renderServerLinks();
  if (app.resident) {
    renderStatus(app);
    return;
  }
  if (!app.sync) {
    syncBar.replaceChildren();
    return;
  }
  const status = app.sync.status();
  // Never "synced" unless it is: offline, a login to renew, a failure (named, with what to do)
  // or records the server refused come first.
  let state = status.state;
  if (!navigator.onLine) state = "offline";
  else if (state === "idle" && status.refused.length) state = "refused";
  const word = { offline: "offline", login: "need_login", error: "sync_failing", syncing: "syncing",
    refused: "sync_refused", idle: "synced" }[state] || "syncing";
  const parts = [
    el("span", { class: `state state-${state}`, id: "sync-state" }, t(word)),
  ];
  if (state === "error" && status.problem) {
    parts.push(el("span", { id: "sync-problem", class: "sync-problem", role: "alert",
      "data-kind": status.problem.kind }, problemText(status.problem)));
  }
  parts.push(
    status.download.complete ? el("span", { id: "sync-last" }, `${t("last_sync")}：${formatTime(status.lastSync)}`)
      : downloadText(state, status.download),
    el("span", { id: "sync-waiting", "data-count": String(status.waiting) }, `${t("waiting")}：${status.waiting}`),
  );
  if (status.refused.length) {
    parts.push(el("a", { href: "#/sync", id: "sync-refused", class: "refused-link",
      "data-count": String(status.refused.length) }, `${t("refused")}：${status.refused.length}`));
  }
  if (app.storage.low) parts.push(el("span", { class: "warn", role: "alert" }, t("storage_low")));
  else if (app.storage.persisted === false) parts.push(el("span", { class: "warn" }, t("storage_not_persisted")));
  syncBar.replaceChildren(...parts);
  syncBar.dataset.state = state;
}

// Until the grid is on the phone whole: that it is not, and how far the download has come
// ("正在下载网格数据 1,200 / 5,000" while it runs, "已下载" when it stands), never a last sync.
function downloadText(state, { have, total }) {
  const count = (n) => n.toLocaleString(lang() === "en" ? "en-GB" : "zh-CN");
  const figures = total ? `${count(Math.min(have, total))} / ${count(total)}` : count(have);
  return el("span", { id: "sync-download", role: "status", "data-have": String(have), "data-total": String(total) },
    el("span", { class: "download-warn" }, t("grid_incomplete")), " ",
    `${t(state === "syncing" ? "downloading_grid" : "downloaded_grid")} ${figures}`);
}

// A replication failure in words the worker can act on: what failed, that the records are safe
// on the phone, when the app tries again by itself, and whom to tell if it goes on.
function problemText(problem) {
  const detail = [problem.status ? String(problem.status) : "", message(problem.reason || "")]
    .filter(Boolean).join(" ");
  const text = tf(`sync_problem_${problem.kind}`, { detail: detail || "?", id: problem.id || "" });
  const retry = problem.retryAt ? tf("sync_retry_at", { time: clockTime(problem.retryAt, true) }) : t("sync_retrying");
  return `${text} ${retry}`;
}

// --- login -----------------------------------------------------------------------------------

function askLogin(reason = "") {
  const error = document.getElementById("login-error");
  error.textContent = reason;
  const name = document.getElementById("login-name");
  if (app.me && !name.value) name.value = app.me.name;
  if (!loginDialog.open) loginDialog.showModal();
  (name.value ? document.getElementById("login-password") : name).focus();
}

app.askLogin = askLogin;

// A resident without an account yet: from the login to the sign-up, and back.
function showSignup() {
  if (loginDialog.open) loginDialog.close();
  if (location.hash !== "#/signup") location.hash = "#/signup";
  else route();
}
document.getElementById("login-signup").addEventListener("click", showSignup);

loginDialog.addEventListener("cancel", (event) => {
  if (!app.me) event.preventDefault(); // nothing to work with until someone logs in
});

// After too many failed logins the server says how long to wait (Retry-After): the login
// screen says until when, in the phone's own time, and keeps the button off until then.
let lockedUntil = 0;
let lockTimer = null;

function showLockout(seconds) {
  const error = document.getElementById("login-error");
  const submit = document.getElementById("login-submit");
  lockedUntil = Date.now() + seconds * 1000;
  const wait = seconds >= 120 ? tf("wait_minutes", { n: Math.ceil(seconds / 60) }) : tf("wait_seconds", { n: seconds });
  error.textContent = tf("login_locked", { time: clockTime(lockedUntil, seconds < 120), wait });
  error.dataset.lockedUntil = String(lockedUntil);
  submit.disabled = true;
  clearTimeout(lockTimer);
  lockTimer = setTimeout(() => {
    lockedUntil = 0;
    submit.disabled = false;
    delete error.dataset.lockedUntil;
  }, seconds * 1000);
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  const submit = document.getElementById("login-submit");
  const name = document.getElementById("login-name").value.trim();
  const password = document.getElementById("login-password").value;
  if (Date.now() < lockedUntil) return;
  error.textContent = t("logging_in");
  submit.disabled = true;
  try {
    const { me, switched } = await logIn(name, password);
    document.getElementById("login-password").value = "";
    loginDialog.close();
    error.textContent = "";
    if (switched || !app.sync) await start(me);
    else {
      app.me = me;
      app.sync.start();
    }
  } catch (err) {
    error.textContent = err instanceof LoginError ? message(err.message) : String(err);
    if (err instanceof LoginError && err.retryAfter > 0) showLockout(err.retryAfter);
  } finally {
    if (Date.now() >= lockedUntil) submit.disabled = false;
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  if (app.sync) app.sync.stop();
  stopResident(app);
  await logOut();
  location.hash = "#/";
  location.reload();
});

// --- starting work ---------------------------------------------------------------------------

async function loadSchemas() {
  const response = await fetch("schemas.json");
  return response.json();
}

// Changes come in bursts (a sync brings hundreds): render at most every 400 ms while they come,
// and never over a form the worker is filling in, nor a screen that shows no grid records (the
// conflict queue, the dashboard and the review come from the server).
const SERVER_SCREENS = new Set(["conflicts", "dashboard", "review", "notices", "users", "audit", "retention", "data-requests", "party", "questionnaires",
  "tasks", "handle", "ratings", "centre-day", "stars", "mediation", "patrol", "centre-overview", "liaison-threads"]);
let renderTimer = null;
function scheduleRender() {
  if (renderTimer) return;
  renderTimer = setTimeout(() => {
    renderTimer = null;
    rerender();
  }, 400);
}

function rerender() {
  if (!document.querySelector("#view form.record-form") && !SERVER_SCREENS.has(view.dataset.route)) route();
}

async function start(me) {
  if (app.sync) app.sync.stop();
  if (app.changes) app.changes.cancel();
  stopResident(app);
  app.me = me;
  app.sync = null;
  app.index = null;
  app.changes = null;
  app.reports = undefined; // the inbox's reports, read again for this user (worker/inbox.js)
  renderChrome();
  if (me.role === "resident") { // the role chooses the app: the resident's screens
    app.schemas = app.schemas || await loadSchemas();
    if (location.hash === "#/signup") location.hash = "#/";
    renderServerLinks();
    await startResident(app, me, view);
    return;
  }
  if (!replicates(me)) {
    app.grid = null;
    app.schemas = app.schemas || await loadSchemas();
    app.forgotten = forgetGrids(me.name, me.grids).catch((err) => console.warn("forget grids", err));
    renderSyncBar();
    route();
    return;
  }
  if (!me.grids.length) {
    view.replaceChildren(el("p", { class: "empty" }, t("no_grids")));
    return;
  }
  const wanted = localStorage.getItem(GRID_KEY);
  app.grid = me.grids.find((g) => g.code === wanted) || me.grids[0];
  app.schemas = app.schemas || await loadSchemas();
  // Campaigns purged on the server leave every grid's copy first (pwa/sync.js); how many
  // records went, by grid, for the tests and the curious.
  app.purged = {};
  for (const grid of me.grids) {
    app.purged[grid.code] = await purgeCampaigns(me.name, grid).catch((err) => console.warn("purge campaigns", err));
  }
  // ... then the grids no longer the worker's (households moved out go once the list is up).
  app.dropped = {};
  app.forgottenGrids = await forgetOtherGrids(me.name, me.grids).catch((err) => console.warn("forget grids", err));
  app.sync = await new GridSync(me.name, app.grid).open();
  const since = (await app.sync.db.info()).update_seq;
  app.index = await new GridIndex().loadFirst(app.sync.db);
  app.changes = app.sync.db.changes({ live: true, since, include_docs: true })
    .on("change", (change) => {
      app.index.apply(change.doc, change.seq);
      if (change.doc.type === "verdict") scheduleVerdictOrder();
      scheduleRender();
    });
  // A record's 待上传 / 被退回 label changes with the outbox, not the records, and the grid's
  // figures with the first download's end: the screen is drawn again when what waits or was
  // refused changes, or the grid is whole (no label outlives an upload).
  let outboxSeen = "";
  app.sync.onStatus((status) => {
    renderSyncBar();
    if (status.state === "login") askLogin(t("login_again"));
    const outbox = JSON.stringify([Object.keys(app.sync.outbox.pending).sort(), status.refused.map((r) => r.id),
      status.download.complete]);
    if (outbox !== outboxSeen) {
      outboxSeen = outbox;
      scheduleRender();
    }
  });
  route();
  app.sync.start();
  refreshVisits(app).catch(() => {}); // the worker's follow-up list, on the phone before going out
  refreshReports(app).then((changed) => changed && rerender(), () => {}); // the inbox's reports
  await app.index.loadRest(app.sync.db);
  scheduleVerdictOrder();
  rerender();
  // What the worker no longer needs, households moved out and their records, leaves the phone
  // now, not before the list: the first start after a move deletes and compacts the grid's
  // copy, seconds on a phone (the deletions reach the index through the changes feed).
  for (const grid of me.grids) {
    app.dropped[grid.code] = await dropUnneeded(me.name, grid).catch((err) => console.warn("drop unneeded", err));
  }
  app.storage = await storageReport();
  renderSyncBar();
}

// A record's verdicts are listed in the server's order, asked when verdicts arrive (a second
// later, once for a whole batch); offline the phone's own order stands (records.js).
let verdictOrderTimer = null;
function scheduleVerdictOrder() {
  clearTimeout(verdictOrderTimer);
  verdictOrderTimer = setTimeout(() => {
    const { index, sync } = app;
    if (!index || !sync) return;
    index.loadServerOrder(sync.remote).then(rerender, () => {});
  }, 1000);
}

// --- routes ----------------------------------------------------------------------------------

// The screens of a user who keeps no grid on the phone: the server's, and a note on the others.
function serverRoute(name, a, b) {
  let nodes;
  if (name === "conflicts") nodes = conflictsView(app);
  else if (name === "dashboard") nodes = dashboardView(app, a || app.me.home?.level || "city", a ? b || "" : app.me.home?.code || "");
  else if (name === "review") nodes = a && b ? reviewRecordView(app, a, b) : reviewView(app);
  else if (name === "notices") nodes = noticesView(app, a, b);
  else if (name === "tasks") nodes = tasksView(app, a, b);
  else if (name === "users" && canManageUsers(app.me)) nodes = usersView(app);
  else if (name === "audit") nodes = auditView(app);
  else if (name === "retention") nodes = retentionView(app);
  else if (name === "data-requests") nodes = dataRequestsView(app);
  else if (name === "party" || (app.me.role === "secretary" && !name)) nodes = branchView(app, a);
  else if (name === "questionnaires") nodes = questionnairesView(app, a, b);
  else if (name === "ratings") nodes = ratingsView(app, a);
  else if ((name === "stars" || (!name && app.me.role === "assessor")) && canSeeStars(app.me)) nodes = starsView(app, a, b);
  else if (name === "handle" || (!name && HANDLER_HOME.has(app.me.role))) nodes = handleView(app, a);
  else if (name === "centre-day" || (!name && providesServices(app.me))) nodes = centreDayView(app, a);
  else if (name === "mediation") nodes = mediationView(app, a);
  else if (name === "patrol") nodes = patrolView(app, a);
  else if (name === "centre-overview") nodes = centreOverviewView(app);
  else if (name === "liaison-threads") nodes = liaisonThreadsView(app, a);
  else nodes = [el("p", { class: "empty", id: "masked-only", role: "status" }, t("masked_only"))];
  view.replaceChildren(...nodes.filter(Boolean));
  view.dataset.route = SERVER_SCREENS.has(name) ? name : !name && HANDLER_HOME.has(app.me.role) ? "handle"
    : !name && providesServices(app.me) ? "centre-day" : !name && app.me.role === "assessor" ? "stars" : "grid";
}

// A property company's or a liaison department's staff keep no grid: their queue is their home.
const HANDLER_HOME = new Set(["property", "department"]);

// The grid worker's resident work (pwa/worker/residents.js), each screen by its route name.
const RESIDENT_WORK = { inbox: inboxView, residents: queueView, decide: decideView, code: codeView, newcode: newCodeView,
  "resident-remove": removeResidentView, correction: correctionView };

async function route() {
  if (app.resident) return residentRoute(app, view);
  if (!app.me && location.hash === "#/signup") {
    view.replaceChildren(...signupView(app, start));
    view.dataset.route = "signup";
    view.querySelector(".view-title")?.focus({ preventScroll: true });
    return;
  }
  if (!app.index) {
    if (app.me && !replicates(app.me) && app.schemas) {
      const [name, a, b] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
      serverRoute(name, a, b);
    }
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [name, a, b] = parts;
  let nodes;
  if (app.index.docs.size === 0 && !app.sync.status().download.complete && !name) {
    nodes = [el("p", { class: "empty", role: "status" }, t("first_sync"))];
  } else if (name === "b") nodes = buildingView(app, a);
  else if (name === "h") nodes = householdView(app, a);
  else if (name === "sync") nodes = refusedView(app);
  else if (RESIDENT_WORK[name]) nodes = RESIDENT_WORK[name](app, a);
  else if (name === "audit") nodes = auditView(app);
  else if (name === "retention") nodes = retentionView(app);
  else if (name === "data-requests") nodes = dataRequestsView(app);
  else if (name === "conflicts") nodes = conflictsView(app);
  else if (name === "dashboard") nodes = dashboardView(app, a || app.me.home?.level || "city", a ? b || "" : app.me.home?.code || "");
  else if (name === "review") nodes = a && b ? reviewRecordView(app, a, b) : reviewView(app);
  else if (name === "notices") nodes = noticesView(app, a, b);
  else if (name === "tasks") nodes = tasksView(app, a, b);
  else if (name === "users" && canManageUsers(app.me)) nodes = usersView(app);
  else if (name === "party" && canSeeBranches(app.me)) nodes = branchView(app, a);
  else if (name === "questionnaires") nodes = questionnairesView(app, a, b);
  else if (name === "ratings") nodes = ratingsView(app, a);
  else if (name === "stars" && canSeeStars(app.me)) nodes = starsView(app, a, b);
  else if (name === "handle") nodes = handleView(app, a);
  else if (name === "mediation") nodes = mediationView(app, a);
  else if (name === "centre-overview") nodes = centreOverviewView(app);
  else if (name === "new") {
    const doc = newRecord(app, a, b);
    const back = `#/h/${encodeURIComponent(a === "screening" ? (app.index.get(b) || {}).household : b)}`;
    nodes = doc ? await formView(app, doc, { isNew: true, back, draftKey: `new~${a}~${b}` })
      : [el("p", {}, t("not_found"))];
  } else if (name === "edit") {
    const doc = app.index.get(a);
    const back = doc ? `#/h/${encodeURIComponent(doc.type === "household" ? doc._id : doc.household)}` : "#/";
    nodes = doc ? await formView(app, doc, { isNew: false, back, draftKey: `edit~${a}` })
      : [el("p", {}, t("not_found"))];
  } else if (name === "remove") {
    const doc = app.index.get(a);
    nodes = doc ? removeView(app, doc) : [el("p", {}, t("not_found"))];
  } else nodes = gridView(app);
  view.replaceChildren(...nodes.filter(Boolean));
  const title = view.querySelector(".view-title");
  if (title && document.activeElement?.id !== "search") title.focus({ preventScroll: true });
  view.dataset.route = name || "grid";
}

window.addEventListener("hashchange", () => {
  route();
  window.scrollTo(0, 0);
});
window.addEventListener("online", () => {
  renderSyncBar();
  if (SERVER_SCREENS.has(view.dataset.route)) route();
  if (app.sync && app.sync.state !== "login") {
    app.sync.stop();
    app.sync.start();
  }
});
window.addEventListener("offline", renderSyncBar);

// --- app updates -----------------------------------------------------------------------------

// A new release installs in the background and waits; the worker is told and chooses when to
// switch. The records live in IndexedDB, not in the release's cache, so no update can take them.
async function watchForUpdates() {
  if (!("serviceWorker" in navigator)) return;
  const registration = await navigator.serviceWorker.register("sw.js", { scope: "./" });
  const offer = (worker) => {
    updateBar.hidden = false;
    document.getElementById("update-now").onclick = () => worker.postMessage("activate-update");
  };
  if (registration.waiting && navigator.serviceWorker.controller) offer(registration.waiting);
  registration.addEventListener("updatefound", () => {
    const worker = registration.installing;
    worker.addEventListener("statechange", () => {
      if (worker.state === "installed" && navigator.serviceWorker.controller) offer(worker);
    });
  });
  let reloading = false;
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (reloading || !updateBar.dataset.accepted) return;
    reloading = true;
    location.reload();
  });
  document.getElementById("update-now").addEventListener("click", () => {
    updateBar.dataset.accepted = "1";
  }, { capture: true });
  window.addEventListener("online", () => registration.update().catch(() => {}));
  app.registration = registration;
}

// --- go --------------------------------------------------------------------------------------

renderChrome();
watchForUpdates().catch((err) => console.warn("service worker", err));
await wipeIfRevoked(); // a revoked phone wipes itself before it opens any database
if (wipedAt()) {
  view.replaceChildren(el("p", { class: "error", role: "alert", id: "revoked-notice" }, t("device_revoked")));
}
const remembered = rememberedUser();
// Whether the server purged a campaign from one of the grids since `me` was remembered.
function newlyPurged(me, fresh) {
  const before = Object.fromEntries(me.grids.map((g) => [g.code, g.purged || []]));
  return fresh.grids.some((g) => (g.purged || []).some((key) => !(before[g.code] || []).includes(key)));
}

// A right given or taken since the last login changes whether the phone may keep the grid, and
// a campaign purged on the server must leave it: ask the server once on opening, and start
// again if either changed.
async function recheckRights(me) {
  if (!navigator.onLine) return;
  let fresh;
  try {
    fresh = await fetchMe();
  } catch {
    return; // no network or no session: the sync bar says what to do
  }
  if (fresh.name === me.name && (replicates(fresh) !== replicates(me) || newlyPurged(me, fresh))) await start(fresh);
}
if (remembered) start(remembered).then(() => recheckRights(remembered)).catch((err) => {
  console.error(err);
  view.replaceChildren(el("p", { class: "error", role: "alert" }, String(err)));
});
else {
  keepActivationCode(); // a worker's QR opened on a phone with no account yet
  if (location.hash === "#/signup") route();
  else askLogin();
}
