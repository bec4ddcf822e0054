// Party member registration (党员双报到, `#/party`): the resident declares the branch of their
// workplace, picked from the list of branches (data of the server, kept on the phone once
// fetched); the branch's secretary confirms; then, theirs to choose, the party identity shows
// in the app (off until they turn it on) and they report to the grid branch of where they
// live. Every act goes through the outbox (outbox.js), so it waits offline and the screen says
// so (已提交，等待发送); the server's record comes back through the sync (`party_member:`).

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { backLink, heading } from "./ui.js";

const KEPT = "linli-party-branches"; // the branches and grid branches last fetched, per account
const FRESH_MS = 60_000;

function kept(me) {
  try {
    const held = JSON.parse(localStorage.getItem(KEPT) || "{}");
    return held.account === me.name ? held : { branches: [], grid_branches: [], at: 0 };
  } catch {
    return { branches: [], grid_branches: [], at: 0 };
  }
}

// The list of branches and the resident's grid branches, fetched when online (at most once a
// minute); the screen is drawn again when they arrive.
async function refresh(me, redraw) {
  if (!navigator.onLine || Date.now() - kept(me).at < FRESH_MS) return;
  try {
    const [listed, mine] = await Promise.all([callApi("/api/party/branches"), callApi("/api/party/me")]);
    if (!listed.ok || !mine.ok) return;
    localStorage.setItem(KEPT, JSON.stringify({ account: me.name, at: Date.now(),
      branches: listed.body.branches, grid_branches: mine.body.grid_branches }));
    redraw();
  } catch {
    // offline after all: the kept list stays
  }
}

function branchName(me, code) {
  return kept(me).branches.find((b) => b.code === code)?.name || code;
}

function item(act, path, body, extra = {}) {
  return { kind: "party", key: `party:${act}`, replaces: true, path, body, shown: { act, ...body }, ...extra };
}

function queued(store, act) {
  const items = store.outbox.items.filter((i) => i.kind === "party" && i.shown.act === act);
  return items[items.length - 1] || null;
}

function declareForm(app) {
  const { me, sync, store } = app.resident;
  const { branches } = kept(me);
  if (!branches.length) return el("p", { class: "hint needs-network", id: "p-branches-offline" }, t("p_branches_offline"));
  const select = el("select", { id: "p-branch", name: "branch", required: true },
    el("option", { value: "" }, t("p_choose")),
    branches.map((b) => el("option", { value: b.code }, b.name)));
  const form = el("form", { id: "p-declare", class: "record-form" },
    el("div", { class: "field" }, el("label", { for: "p-branch" }, t("p_branch")), select),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "p-declare-button" }, t("p_declare"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) return;
    document.activeElement?.blur(); // the screen is redrawn with the answer, not kept as a form
    const refused = queued(store, "declare");
    if (refused?.refused) await store.outbox.drop(refused);
    await sync.send(item("declare", "/api/party/declare", { branch: select.value }));
  });
  return form;
}

function confirmedPart(app, held) {
  const { me, sync, store } = app.resident;
  const waitingPublic = queued(store, "public");
  const shown = waitingPublic && !waitingPublic.refused ? waitingPublic.body.public : held.public === true;
  const box = el("input", { type: "checkbox", id: "p-public", ...(shown ? { checked: "" } : {}) });
  box.addEventListener("change", async () => {
    await sync.send(item("public", "/api/party/public", { public: box.checked }));
  });
  const reportQueued = queued(store, "report");
  const grids = kept(me).grid_branches;
  const report = el("button", { type: "button", id: "p-report", class: "primary" }, t("p_report"));
  report.addEventListener("click", async () => {
    report.disabled = true;
    await sync.send(item("report", "/api/party/report", {}));
  });
  return [
    grids.length ? el("p", { class: "meta", id: "p-grid-branch" }, tf("p_grid_branch", { name: grids.map((g) => g.name).join("、") })) : null,
    el("label", { class: "choice", for: "p-public" }, box, " ", t("p_public"),
      waitingPublic && !waitingPublic.refused ? el("span", { class: "chip chip-waiting" }, t("p_queued")) : null),
    el("p", { class: "hint" }, t("p_public_help")),
    held.reported_at
      ? el("p", { id: "p-reported", "data-reported": "yes" }, tf("p_reported", { time: cityTime(Date.parse(held.reported_at), { date: true }) }))
      : reportQueued && !reportQueued.refused
        ? el("p", { id: "p-reported", "data-reported": "queued" }, t("p_queued"))
        : el("div", { class: "actions" }, el("p", { class: "hint" }, t("p_not_reported")), report),
  ];
}

// `redraw` draws the screen again where it stands (main.js), when the branches arrive.
export function partyView(app, redraw) {
  const { me, store } = app.resident;
  refresh(me, redraw);
  const held = store.docs.get(`party_member:${me.name}`);
  const declaring = queued(store, "declare");
  const refusals = store.outbox.items.filter((i) => i.kind === "party" && i.refused);
  let state = held?.status || "none";
  let text = "";
  if (declaring && !declaring.refused) {
    state = "queued";
    text = t("p_queued");
  } else if (held?.status === "pending") text = t("p_pending");
  else if (held?.status === "confirmed") text = `${t("p_confirmed")} · ${branchName(me, held.branch)}`;
  else if (held?.status === "rejected") text = tf("p_rejected", { reason: held.reason || "" });
  const body = state === "confirmed" ? confirmedPart(app, held)
    : ["none", "rejected"].includes(state) ? [declareForm(app)] : [];
  return [
    backLink("#/"),
    heading(t("p_title")),
    el("p", { class: "hint" }, t("p_intro")),
    el("p", { class: "status-line", id: "p-status", role: "status", "data-status": state }, text),
    ...refusals.map((r) => el("p", { class: "error", role: "alert", "data-refused": r.shown.act },
      tf("p_refused", { reason: message(r.refused.reason) }))),
    ...body,
  ];
}
