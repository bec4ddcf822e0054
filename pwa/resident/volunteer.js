// Volunteer tasks (志愿任务 · 任务抢单), offline: the tasks of the resident's community and where
// the resident stands on each. A claim (报名) or a cancellation is queued on the phone (outbox.js)
// with the phone's own claim id, kept for every retry, so the server counts it once however
// often it is sent. Until the server has it the screen says so honestly: 已报名，等待确认. The
// server decides in the order it receives claims (docs/allocation.md) and its answer comes back
// through the sync as the resident's `allocation` document: 成功, 候补 (with the place in
// line), 已取消; a refusal (the deadline passed, not open to them) is shown with its reason.

import { el } from "../dom.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { backLink, heading } from "./ui.js";

const STATUS_CHIP = { confirmed: "chip-visited", awaiting_approval: "chip-waiting", waiting: "chip-waiting",
  pending: "chip-waiting", cancelled: "", rejected: "chip-refused", late: "chip-refused",
  ineligible: "chip-refused", refused: "chip-refused" };
const HOLDS = new Set(["confirmed", "awaiting_approval", "waiting"]);

function key(taskId) {
  return taskId.slice("volunteer_task:".length);
}

function claimId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function when(value) {
  const ms = Date.parse(value || "");
  return Number.isNaN(ms) ? "" : cityTime(ms, { date: true });
}

export function tasks(store) {
  return [...store.docs.values()].filter((d) => d.type === "volunteer_task" && d.status === "published")
    .sort((a, b) => String(a.starts_at).localeCompare(String(b.starts_at)));
}

// Where the resident stands: what the phone sent last and the server has not answered yet
// (pending, or refused with its reason), else the server's allocation as pulled.
export function standing(store, task) {
  const queued = store.outbox.items.filter((i) => i.kind === "volunteer" && i.shown.task === task._id);
  const last = queued[queued.length - 1];
  if (last?.refused) return { status: "refused", reason: message(last.refused.reason) };
  if (last) return { status: last.shown.act === "claim" ? "pending" : "cancelling", waiting: true };
  const decided = store.docs.get(`allocation:volunteer_task.${key(task._id)}:${store.me.name}`);
  return decided ? { status: decided.status, line: decided.line, promoted: decided.promoted } : null;
}

function statusText(state) {
  if (!state) return "";
  if (state.status === "refused") return `${t("v_refused")}：${state.reason}`;
  if (state.status === "waiting") return tf("v_waiting_line", { n: state.line });
  if (state.status === "confirmed" && state.promoted) return t("v_promoted");
  return t(`v_${state.status}`);
}

function chip(state) {
  return state ? el("span", { class: `chip ${STATUS_CHIP[state.status] || "chip-waiting"}`, "data-status": state.status },
    statusText(state)) : null;
}

export function volunteerView(app) {
  const { store } = app.resident;
  const list = tasks(store);
  return [
    backLink("#/"),
    heading(t("v_tasks")),
    el("p", { class: "hint", role: "status", id: "v-count" }, list.length ? tf("v_count", { n: list.length }) : t("v_none")),
    list.length ? el("ul", { class: "list tasks", id: "v-tasks" }, list.map((task) => el("li", { "data-id": task._id },
      el("a", { href: `#/task/${encodeURIComponent(task._id)}` },
        el("span", { class: "main" }, task.title),
        chip(standing(store, task)),
        el("span", { class: "meta" }, `${when(task.starts_at)} · ${tf("v_places", { n: task.places })}`))))) : null,
  ];
}

function act(task, what) {
  return { kind: "volunteer", key: `volunteer:${task._id}:${what}:${Date.now()}`,
    path: `/api/volunteer/tasks/${encodeURIComponent(task._id)}/${what}`, body: { claim_id: claimId() },
    shown: { task: task._id, act: what } };
}

export function taskView(app, id) {
  const { store, sync } = app.resident;
  const task = store.docs.get(id);
  if (!task || task.type !== "volunteer_task") return [backLink("#/volunteer"), heading(t("not_found"))];
  const state = standing(store, task);
  const status = el("p", { class: "hint", id: "v-status", role: "status", "data-status": state?.status || "" },
    statusText(state));
  const actions = el("div", { class: "actions" });
  const closed = Date.parse(task.deadline) < Date.now();
  const button = (idText, label, what, primary) => {
    const b = el("button", { type: "button", id: idText, class: primary ? "primary" : "" }, label);
    b.addEventListener("click", async () => {
      b.disabled = true;
      await sync.send(act(task, what));
    });
    return b;
  };
  if (!state || ["cancelled", "refused"].includes(state.status)) {
    if (!closed) actions.append(button("v-claim", t("v_claim"), "claim", true));
  } else if (HOLDS.has(state.status)) {
    if (state.status === "confirmed") {
      actions.append(el("a", { href: `#/checkin/${encodeURIComponent(task._id)}`, id: "v-checkin", class: "button primary" },
        t("ck_open")));
    }
    actions.append(button("v-cancel", t("v_cancel"), "cancel", false));
  }
  return [
    backLink("#/volunteer", t("v_tasks")),
    heading(task.title),
    el("p", { class: "meta" }, [`${when(task.starts_at)} – ${when(task.ends_at)}`, task.place].join(" · ")),
    el("p", {}, tf("v_places", { n: task.places }), " · ",
      closed ? t("v_closed") : tf("v_deadline", { time: when(task.deadline) })),
    el("article", { class: "notice-body" }, el("p", {}, task.description)),
    status,
    actions,
  ];
}
