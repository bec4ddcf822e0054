// The resident's app (居民端): the same PWA as the worker's, chosen by role after login
// (app.js calls `startResident` for a `resident`). A small router over the resident's screens,
// each in its own module of this folder; every screen reads the phone's own copy first
// (store.js), so it opens offline, and the status line says what is and is not up to date.

import { el } from "../dom.js";
import { cityTime, t, tf } from "../i18n.js";
import { addressText } from "../views.js";
import { activateView, keptActivationCode } from "./activation.js";
import { centreProviderView, centreView } from "./centre.js";
import { topicView, topicsView } from "./deliberation.js";
import { feeView, feesView } from "./fees.js";
import { correctionView, householdView } from "./household.js";
import { checkinView, ledgerView, rankingView } from "./hours.js";
import { liaisonView } from "../liaison/officers.js";
import { mediationView } from "../mediation/cases.js";
import { aidItemView, aidMineView, aidNewView, aidPickupsView, aidView } from "./mutualaid.js";
import { myDataView } from "./mydata.js";
import { noticeView, noticesView } from "./notices.js";
import { partyView } from "./party.js";
import { questionnaireView, questionnairesView } from "./questionnaires.js";
import { newReportView, reportView, reportsView } from "./reports.js";
import { ResidentStore } from "./store.js";
import { taskView, volunteerView } from "./volunteer.js";
import { voteView, votesView } from "./votes.js";
import { ResidentSync } from "./sync.js";
import { codeLabel, heading } from "./ui.js";

// --- the status line -------------------------------------------------------------------------

// Never "up to date" unless it is: offline or failing comes first, and says since when the
// phone's copy is.
export function renderStatus(app) {
  const bar = document.getElementById("syncbar");
  const sync = app.resident?.sync;
  if (!sync) {
    bar.replaceChildren();
    return;
  }
  const status = sync.status();
  let state = status.state;
  if (!navigator.onLine) state = "offline";
  else if (state === "idle" && (status.waiting || status.refused)) state = "waiting";
  const word = { offline: "offline", login: "need_login", error: "sync_failing", syncing: "syncing",
    waiting: "r_not_sent", idle: "r_up_to_date" }[state] || "syncing";
  const parts = [el("span", { class: `state state-${state}`, id: "sync-state" }, t(word))];
  if (state === "error" && status.problem) {
    parts.push(el("span", { class: "sync-problem", id: "sync-problem" }, status.problem));
  }
  parts.push(el("span", { id: "sync-last" }, `${t("r_copy_of")}：${cityTime(status.lastSync, { date: true })}`));
  parts.push(el("span", { id: "sync-waiting", "data-count": String(status.waiting) }, `${t("waiting")}：${status.waiting}`));
  if (status.refused) {
    parts.push(el("span", { id: "sync-refused", class: "refused-link", "data-count": String(status.refused) },
      `${t("r_not_taken")}：${status.refused}`));
  }
  bar.replaceChildren(...parts);
  bar.dataset.state = state;
}

// --- home ------------------------------------------------------------------------------------

function stateCard(app) {
  const { me, store } = app.resident;
  const resident = me.resident || {};
  const homes = store.households();
  if (homes.length) {
    return el("section", { class: "card", id: "r-state", "data-state": "active", "aria-label": t("r_my_household") },
      el("h3", {}, t("r_my_household")),
      homes.map(({ link, record }) => el("p", { class: "main" },
        record?.address ? addressText(record.address) : t("r_household_unknown"),
        el("span", { class: "chip" }, codeLabel(app.schemas, "resident", "role", link.role)))));
  }
  const declined = resident.signup === "declined";
  return el("section", { class: "card", id: "r-state", "data-state": declined ? "declined" : "pending" },
    el("h3", {}, t(declined ? "r_declined_title" : "r_pending_title")),
    el("p", {}, t(declined ? "r_declined_help" : "r_pending_help")),
    el("p", { class: "actions" }, el("a", { href: "#/activate", id: "r-activate-link" }, t("r_enter_code"))));
}

function homeView(app) {
  const { store } = app.resident;
  const unread = store.unread();
  const active = store.households().length > 0;
  const tile = (href, id, label, extra = null) => el("li", {}, el("a", { href, id },
    el("span", { class: "main" }, label), extra));
  return [
    heading(t("r_home_title")),
    stateCard(app),
    el("nav", { "aria-label": t("r_menu") }, el("ul", { class: "list tiles" },
      active ? tile("#/household", "r-household-link", t("r_my_household")) : null,
      tile("#/notices", "r-notices-link", t("r_notices"),
        el("span", { class: `chip${unread ? " chip-unread" : ""}`, id: "r-unread", "data-count": String(unread) },
          unread ? tf("r_unread_n", { n: unread }) : t("r_all_read"))),
      active ? tile("#/volunteer", "r-volunteer-link", t("v_tasks")) : null,
      active ? tile("#/party", "r-party-link", t("p_tile")) : null,
      tile("#/ledger", "r-ledger-link", t("lg_title")),
      tile("#/votes", "r-votes-link", t("vt_votes")),
      tile("#/fees", "r-fees-link", t("fe_title")),
      active ? tile("#/questionnaires", "r-questionnaires-link", t("q_questionnaires")) : null,
      active ? tile("#/topics", "r-topics-link", t("dl_topics")) : null,
      active ? tile("#/reports", "r-reports-link", t("rp_reports")) : null,
      active ? tile("#/aid", "r-aid-link", t("ma_title")) : null,
      active ? tile("#/centre", "r-centre-link", t("ce_title")) : null,
      tile("#/mediation", "r-mediation-link", t("md_title")),
      active ? tile("#/liaison", "r-liaison-link", t("lo_title")) : null,
      tile("#/mydata", "r-mydata-link", t("r_my_data")),
      active ? tile("#/activate", "r-activate-link", t("r_another_household")) : null)),
  ];
}

// --- routes ----------------------------------------------------------------------------------

export async function residentRoute(app, view, { redraw = false } = {}) {
  const [name, a] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  let nodes;
  if (name === "activate") nodes = activateView(app, a);
  else if (name === "household") nodes = householdView(app);
  else if (name === "correct") nodes = correctionView(app, a);
  else if (name === "notices") nodes = noticesView(app);
  else if (name === "notice") nodes = await noticeView(app, a);
  else if (name === "mydata") nodes = myDataView(app);
  else if (name === "volunteer") nodes = volunteerView(app);
  else if (name === "task") nodes = taskView(app, a);
  else if (name === "party") nodes = partyView(app, () => rerenderResident(app, view));
  else if (name === "questionnaires") nodes = questionnairesView(app);
  else if (name === "questionnaire") nodes = questionnaireView(app, a);
  else if (name === "checkin") nodes = checkinView(app, a);
  else if (name === "ledger") nodes = ledgerView(app);
  else if (name === "ranking") nodes = await rankingView(app, a || "");
  else if (name === "votes") nodes = await votesView(app);
  else if (name === "vote") nodes = await voteView(app, a);
  else if (name === "fees") nodes = await feesView(app);
  else if (name === "fee") nodes = await feeView(app, a);
  else if (name === "topics") nodes = await topicsView(app);
  else if (name === "topic") nodes = await topicView(app, a);
  else if (name === "reports") nodes = reportsView(app);
  else if (name === "report-new") nodes = newReportView(app);
  else if (name === "report") nodes = reportView(app, a);
  else if (name === "aid") nodes = await aidView(app);
  else if (name === "aid-item") nodes = await aidItemView(app, a);
  else if (name === "aid-new") nodes = aidNewView(app);
  else if (name === "aid-pickups") nodes = await aidPickupsView(app, a);
  else if (name === "aid-mine") nodes = await aidMineView(app);
  else if (name === "centre") nodes = await centreView(app);
  else if (name === "centre-provider") nodes = await centreProviderView(app, a);
  else if (name === "mediation") nodes = mediationView(app, a);
  else if (name === "liaison") nodes = liaisonView(app, a);
  else nodes = homeView(app);
  view.replaceChildren(...nodes.filter(Boolean));
  view.dataset.route = `r-${name || "home"}`;
  const title = view.querySelector(".view-title");
  if (title && !redraw) title.focus({ preventScroll: true });
}

// Whether the resident is filling a form: one has the focus, or something typed in it.
function filling(view) {
  const active = document.activeElement;
  if (active && view.contains(active) && active.closest("form")) return true;
  return [...view.querySelectorAll("form input, form textarea")]
    .some((input) => input.type !== "radio" && input.type !== "checkbox" && input.value);
}

// A screen is redrawn where it stands (the focus stays) when what it shows changed, but not
// under the resident's fingers, nor a form that is the screen (`data-keep`: a correction, a
// code), nor one read from the server (my data).
export function rerenderResident(app, view) {
  if (filling(view) || view.querySelector("form[data-keep]") || view.dataset.route === "r-mydata") return;
  residentRoute(app, view, { redraw: true });
}

export async function startResident(app, me, view) {
  const store = await new ResidentStore(me).load();
  const sync = new ResidentSync(me, store);
  app.resident = { me, store, sync };
  let timer = null;
  sync.onChange((status) => {
    renderStatus(app);
    if (status.state === "login") app.askLogin(t("login_again"));
  });
  sync.onData(() => {
    clearTimeout(timer);
    timer = setTimeout(() => rerenderResident(app, view), 200);
  });
  sync.onMe((fresh) => {
    app.me = fresh;
    app.resident.me = fresh;
    store.me = fresh;
  });
  renderStatus(app);
  const code = keptActivationCode();
  if (code && !store.households().length) location.hash = `#/activate/${encodeURIComponent(code)}`;
  await residentRoute(app, view);
  sync.start();
}

export function stopResident(app) {
  if (app.resident) app.resident.sync.stop();
  app.resident = null;
}
