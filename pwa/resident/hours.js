// A volunteer's hours (志愿时长), offline first: the check-in screen, where the volunteer types
// the code the organiser's phone shows (made there from the task's secret, offline too), kept
// in the outbox with the direction and sent when online, once (the server records the code's
// window, not this phone's clock); the ledger screen, the phone's copy of their own hours and
// points entries with each reason (corrections as their own entries, never edits); and the
// community's ranking (read online), with the choice to appear in it by a name of one's own
// (queued like any act). docs/volunteering.md says what the server decides.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { backLink, heading } from "./ui.js";

const CODE = /^[0-9]{6}$/;

function key(taskId) {
  return taskId.replace(":", ".");
}

function queued(store, kind, test = () => true) {
  return store.outbox.items.filter((i) => i.kind === kind && test(i));
}

function stamp(value) {
  const ms = Date.parse(value || "");
  return Number.isNaN(ms) ? "" : cityTime(ms, { date: true });
}

// --- check-in ------------------------------------------------------------------------------

function checkState(store, task, direction) {
  const done = store.docs.get(`checkin:${key(task._id)}:${store.me.name}:${direction}`);
  if (done) return { state: "done", text: tf(`ck_${direction}_at`, { time: stamp(done.at) }) };
  const mine = queued(store, "checkin", (i) => i.shown.task === task._id && i.shown.direction === direction);
  const last = mine[mine.length - 1];
  if (last?.refused) return { state: "refused", text: `${t("ck_refused")}：${message(last.refused.reason)}` };
  if (last) return { state: "pending", text: t(`ck_${direction}_pending`) };
  return null;
}

export function checkinView(app, id) {
  const { store, sync } = app.resident;
  const task = store.docs.get(id);
  if (!task || task.type !== "volunteer_task") return [backLink("#/volunteer"), heading(t("not_found"))];
  const states = { in: checkState(store, task, "in"), out: checkState(store, task, "out") };
  const lines = ["in", "out"].map((d) => states[d] ? el("p", { class: "hint", id: `ck-${d}-state`, role: "status",
    "data-state": states[d].state }, states[d].text) : null);
  const input = el("input", { id: "ck-code", name: "code", inputmode: "numeric", autocomplete: "one-time-code",
    maxlength: "6", pattern: "[0-9]{6}", required: "", "aria-describedby": "ck-hint" });
  const error = el("p", { class: "error", id: "ck-error", role: "alert" });
  const form = el("form", { id: "ck-form", class: "record-form" },
    el("div", { class: "field" }, el("label", { for: "ck-code" }, t("ck_code")), input), error,
    el("p", { class: "hint", id: "ck-hint" }, t("ck_hint")));
  const actions = el("div", { class: "actions" });
  const canIn = !states.in || states.in.state === "refused";
  const canOut = !canIn && (!states.out || states.out.state === "refused");
  const button = (direction) => {
    const b = el("button", { type: "submit", id: `ck-${direction}`, class: "primary" }, t(`ck_${direction}`));
    b.addEventListener("click", (event) => {
      event.preventDefault();
      const code = input.value.trim();
      if (!CODE.test(code)) {
        error.textContent = t("ck_bad_code");
        input.focus();
        return;
      }
      b.disabled = true;
      input.value = "";
      sync.send({ kind: "checkin", key: `checkin:${task._id}:${direction}`, replaces: true,
        path: `/api/volunteer/tasks/${encodeURIComponent(task._id)}/check`, body: { direction, code },
        shown: { task: task._id, direction } });
    });
    return b;
  };
  if (canIn) actions.append(button("in"));
  if (canOut) actions.append(button("out"));
  if (canIn || canOut) form.append(actions);
  return [
    backLink(`#/task/${encodeURIComponent(task._id)}`, task.title),
    heading(t("ck_title")),
    el("p", { class: "meta" }, task.title),
    ...lines,
    canIn || canOut ? form : null,
  ];
}

// --- the ledger ----------------------------------------------------------------------------

export function entries(store) {
  return [...store.docs.values()].filter((d) => d.type === "ledger_entry" && d.account === store.me.name)
    .sort((a, b) => String(b.recorded_at).localeCompare(String(a.recorded_at)) || String(a._id).localeCompare(String(b._id)));
}

function hoursText(minutes) {
  const sign = minutes < 0 ? "−" : "";
  const m = Math.abs(minutes);
  return sign + tf("lg_hm", { h: Math.floor(m / 60), m: m % 60 });
}

export function ledgerView(app) {
  const { store } = app.resident;
  const all = entries(store);
  const sum = (kind) => all.filter((e) => e.kind === kind).reduce((n, e) => n + (Number(e.amount) || 0), 0);
  const taskTitle = (source) => store.docs.get(String(source || "").split(".fix.")[0])?.title || "";
  return [
    backLink("#/"),
    heading(t("lg_title")),
    el("section", { class: "card", id: "lg-balances" },
      el("p", { class: "main" }, `${t("lg_hours")}：`, el("strong", { id: "lg-hours", "data-minutes": String(sum("hours")) },
        hoursText(sum("hours")))),
      el("p", { class: "main" }, `${t("lg_points")}：`, el("strong", { id: "lg-points", "data-points": String(sum("points")) },
        tf("lg_points_n", { n: sum("points") })))),
    all.length ? el("ul", { class: "list", id: "lg-entries" }, all.map((e) => el("li", { "data-id": e._id, "data-kind": e.kind },
      el("span", { class: "main" }, e.kind === "hours" ? hoursText(Number(e.amount)) : tf("lg_points_n", { n: e.amount }),
        e.corrects ? el("span", { class: "chip" }, t("lg_fix")) : null),
      el("span", { class: "meta" }, [e.reason, taskTitle(e.source), stamp(e.recorded_at)].filter(Boolean).join(" · ")))))
      : el("p", { class: "hint", id: "lg-none" }, t("lg_none")),
    el("p", { class: "actions" }, el("a", { href: "#/ranking", id: "lg-ranking-link", class: "button" }, t("rk_link"))),
  ];
}

// --- the ranking and the choice to be named ------------------------------------------------

function chinaNow() {
  // yyyy-mm of China's calendar, whatever the phone's zone
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit" })
    .formatToParts(new Date());
  const get = (type) => parts.find((p) => p.type === type).value;
  return { year: get("year"), month: `${get("year")}-${get("month")}` };
}

function choiceState(store) {
  const mine = queued(store, "ranking_choice");
  const last = mine[mine.length - 1];
  if (last?.refused) return { show: last.body.show, name: last.body.name, refused: message(last.refused.reason) };
  if (last) return { show: last.body.show, name: last.body.name, pending: true };
  const doc = store.docs.get(`volunteer_ranking:${store.me.name}`);
  return doc ? { show: doc.show === true, name: doc.name || "" } : { show: false, name: "" };
}

function choiceForm(app, redraw) {
  const { store, sync } = app.resident;
  const state = choiceState(store);
  const box = el("input", { type: "checkbox", id: "rk-show", ...(state.show ? { checked: "" } : {}) });
  const name = el("input", { id: "rk-name", maxlength: "20", value: state.name || "", autocomplete: "nickname" });
  const error = el("p", { class: "error", id: "rk-error", role: "alert" }, state.refused || "");
  const status = el("p", { class: "hint", id: "rk-choice", role: "status", "data-state": state.pending ? "pending" : "" },
    state.pending ? t("rk_choice_pending") : state.show ? tf("rk_shown_as", { name: state.name }) : t("rk_hidden"));
  const form = el("form", { id: "rk-form", class: "record-form" },
    el("label", { class: "choice", for: "rk-show" }, box, " ", t("rk_show")),
    el("div", { class: "field" }, el("label", { for: "rk-name" }, t("rk_name")), name), error, status,
    el("div", { class: "actions" }, el("button", { type: "submit", id: "rk-save" }, t("rk_save"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const shown = name.value.trim();
    error.textContent = "";
    if (box.checked && !shown) {
      error.textContent = t("rk_need_name");
      name.focus();
      return;
    }
    await sync.send({ kind: "ranking_choice", key: "ranking_choice", replaces: true, path: "/api/volunteer/ranking/choice",
      body: box.checked ? { show: true, name: shown } : { show: false }, shown: {} });
    await redraw();
  });
  return form;
}

async function readBoard(period, kind) {
  try {
    const got = await callApi(`/api/volunteer/ranking?period=${encodeURIComponent(period)}&kind=${kind}`);
    return got.ok ? got.body : { problem: message(got.body.reason || String(got.status)) };
  } catch {
    return { problem: t("rk_offline") };
  }
}

function boardNodes(board, kind) {
  const amount = (n) => (kind === "points" ? tf("lg_points_n", { n }) : hoursText(n));
  const rows = board.rows || [];
  return [
    board.problem ? el("p", { class: "hint", id: "rk-problem", role: "status" }, board.problem) : null,
    board.rows && !rows.length ? el("p", { class: "hint", id: "rk-empty" }, t("rk_empty")) : null,
    rows.length ? el("ol", { class: "list", id: "rk-rows" }, rows.map((r) => el("li", { "data-rank": String(r.rank),
      ...(r.me ? { "data-me": "" } : {}) },
      el("span", { class: "main" }, `${r.rank}. ${r.name || t("rk_anonymous")}${r.me ? t("rk_me") : ""}`),
      el("span", { class: "meta" }, amount(r.amount))))) : null,
    board.mine ? el("p", { class: "hint", id: "rk-mine" }, board.mine.rank ? tf("rk_mine", { rank: board.mine.rank }) : t("rk_mine_none")) : null,
  ].filter(Boolean);
}

export async function rankingView(app, choice = "") {
  const [period = "month", kind = "hours"] = choice.split("-");
  const now = chinaNow();
  const asked = [period === "year" ? now.year : now.month, kind === "points" ? "points" : "hours"];
  const holder = el("div", { id: "rk-board" }, ...boardNodes(await readBoard(...asked), asked[1]));
  const tab = (p, k, label) => el("a", { href: `#/ranking/${p}-${k}`, id: `rk-${p}-${k}`, class: "button",
    ...(p === period && k === kind ? { "aria-current": "page" } : {}) }, label);
  const form = { node: null };
  // After a choice: once the phone has sent it (or kept its refusal), the board and the
  // choice again, in place (the form holds a typed name, so the screen is not redrawn).
  const redraw = async () => {
    for (let n = 0; n < 40 && queued(app.resident.store, "ranking_choice", (i) => !i.refused).length; n += 1) {
      form.node.querySelector("#rk-choice").textContent = t("rk_choice_pending");
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    holder.replaceChildren(...boardNodes(await readBoard(...asked), asked[1]));
    const fresh = choiceForm(app, redraw);
    form.node.replaceWith(fresh);
    form.node = fresh;
  };
  form.node = choiceForm(app, redraw);
  return [
    backLink("#/ledger", t("lg_title")),
    heading(t("rk_title")),
    el("nav", { class: "actions", "aria-label": t("rk_title") },
      tab("month", "hours", `${t("rk_month")} · ${t("lg_hours")}`), tab("year", "hours", `${t("rk_year")} · ${t("lg_hours")}`),
      tab("month", "points", `${t("rk_month")} · ${t("lg_points")}`), tab("year", "points", `${t("rk_year")} · ${t("lg_points")}`)),
    holder,
    form.node,
  ];
}
