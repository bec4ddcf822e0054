// Volunteer tasks for their organiser (志愿任务 · 组织者): the supervisor's list of tasks with
// their places, publishing one, a task's allocation (who holds a place, who waits, in the
// server's order), approving or rejecting a claimant, confirming hours, and the check-in code
// shown on this phone. The tasks live on the server (server/web/volunteering.py), so those
// screens need the network and say so; the code does not: the task's secret is kept on this
// phone when first shown (localStorage, this user's only) and the code of each 5-minute window
// is made here with WebCrypto's HMAC-SHA256 (`<task id>|<window>`, the first 8 bytes modulo
// 10^6, as server/domain/volunteering.py makes it), so it shows at a site without signal.

import { callApi, Unreachable } from "./api.js";
import { el } from "./dom.js";
import { cityTime, message, t, tf } from "./i18n.js";

const ORGANISERS = new Set(["supervisor", "admin"]);
const SECRETS = "linli-task-secrets";

export function organisesTasks(me) {
  return Boolean(me) && ORGANISERS.has(me.role);
}

export function tasksLink(me) {
  return organisesTasks(me) ? el("a", { href: "#/tasks", id: "tasks-link" }, t("ot_tasks")) : null;
}

// `#/tasks`, `#/tasks/new`, `#/tasks/<id>`, `#/tasks/<id>/code`.
export function tasksView(app, a, b) {
  if (!organisesTasks(app.me)) return [el("p", { class: "empty" }, t("not_found"))];
  if (a === "new") return publishView(app);
  if (a && b === "code") return codeView(app, a);
  if (a) return taskView(app, a);
  return listView();
}

function title(text) {
  return el("h2", { class: "view-title", tabindex: "-1" }, text);
}

function back(href, text) {
  return el("nav", { class: "crumbs" }, el("a", { href, class: "back" }, `‹ ${text}`));
}

function reasonOf(answer) {
  return message(answer.body.reason || answer.body.error || String(answer.status));
}

function when(value) {
  const ms = Date.parse(value || "");
  return Number.isNaN(ms) ? "" : cityTime(ms, { date: true });
}

function randomId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function loading(id, fill) {
  const box = el("section", { id, "aria-busy": "true", "aria-live": "polite" }, el("p", { class: "meta" }, t("loading")));
  fill(box).catch((err) => {
    box.replaceChildren(el("p", { class: "error", role: "alert" },
      err instanceof Unreachable ? t("needs_network") : String(err.message || err)));
  }).finally(() => box.setAttribute("aria-busy", "false"));
  return box;
}

function countsText(counts = {}) {
  return tf("ot_counts", { confirmed: (counts.confirmed || 0) + (counts.awaiting_approval || 0), waiting: counts.waiting || 0 });
}

// --- the list ------------------------------------------------------------------------------

function listView() {
  return [
    title(t("ot_tasks")),
    el("div", { class: "actions" }, el("a", { href: "#/tasks/new", id: "task-new", class: "button" }, t("ot_new"))),
    loading("task-list", async (box) => {
      const answer = await callApi("/api/volunteer/tasks");
      if (!answer.ok) throw new Error(reasonOf(answer));
      const tasks = answer.body.tasks || [];
      box.replaceChildren(tasks.length ? el("ul", { class: "list" }, tasks.map((task) => el("li", { "data-task": task._id },
        el("a", { href: `#/tasks/${encodeURIComponent(task._id)}` },
          el("span", { class: "main" }, task.title),
          el("span", { class: "meta" }, `${when(task.starts_at)} · ${tf("ot_places", { n: task.places })} · ${countsText(task.counts)}`)))))
        : el("p", { class: "empty", id: "task-none" }, t("ot_none")));
    }),
  ];
}

// --- publishing ----------------------------------------------------------------------------

function field(id, label, control) {
  return el("div", { class: "field" }, el("label", { for: id }, label), control);
}

// A datetime-local value is Beijing time, whatever the phone's zone.
function beijing(value) {
  return value ? `${value}:00+08:00` : "";
}

function publishView(app) {
  const status = el("p", { class: "error form-status", role: "alert", id: "task-status" });
  const input = (id, attrs = {}) => el("input", { id, autocomplete: "off", ...attrs });
  const controls = {
    title: input("task-title", { maxlength: "60", required: "" }),
    description: el("textarea", { id: "task-description", rows: "4", maxlength: "2000", required: "" }),
    place: input("task-place", { maxlength: "120", required: "" }),
    community: el("select", { id: "task-community", required: "" }),
    starts: input("task-starts", { type: "datetime-local", required: "" }),
    ends: input("task-ends", { type: "datetime-local", required: "" }),
    deadline: input("task-deadline", { type: "datetime-local" }),
    places: input("task-places", { type: "number", min: "1", max: "1000", value: "10", required: "" }),
    openTo: el("select", { id: "task-open-to" }, ["residents", "volunteers"].map((v) => el("option", { value: v }, t(`ot_open_${v}`)))),
  };
  const approval = el("input", { type: "checkbox", id: "task-approval" });
  const submit = el("button", { type: "submit", class: "primary", id: "task-submit" }, t("ot_publish"));
  const form = el("form", { class: "record-form", id: "task-form" },
    field("task-title", t("ot_title"), controls.title),
    field("task-description", t("ot_description"), controls.description),
    field("task-place", t("ot_place"), controls.place),
    field("task-community", t("ot_community"), controls.community),
    field("task-starts", t("ot_starts"), controls.starts),
    field("task-ends", t("ot_ends"), controls.ends),
    field("task-deadline", t("ot_deadline"), controls.deadline),
    field("task-places", t("ot_places_label"), controls.places),
    field("task-open-to", t("ot_open_to"), controls.openTo),
    el("label", { class: "choice", for: "task-approval" }, approval, " ", t("ot_approval")),
    status, el("div", { class: "form-actions" }, submit));
  callApi("/api/notices/areas").then((answer) => {
    for (const c of answer.body.communities || []) controls.community.append(el("option", { value: c.code }, c.name));
  }).catch(() => { status.textContent = t("needs_network"); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { title: controls.title.value.trim(), description: controls.description.value.trim(),
      place: controls.place.value.trim(), community: controls.community.value,
      starts_at: beijing(controls.starts.value), ends_at: beijing(controls.ends.value),
      places: Number(controls.places.value), open_to: controls.openTo.value, needs_approval: approval.checked };
    if (controls.deadline.value) body.deadline = beijing(controls.deadline.value);
    submit.disabled = true;
    try {
      const answer = await callApi("/api/volunteer/tasks", { method: "POST", body: JSON.stringify(body) });
      if (!answer.ok) {
        status.textContent = reasonOf(answer);
        return;
      }
      app.flash(t("ot_published"));
      location.hash = `#/tasks/${encodeURIComponent(answer.body.task._id)}`;
    } catch {
      status.textContent = t("needs_network");
    } finally {
      submit.disabled = false;
    }
  });
  return [back("#/tasks", t("ot_tasks")), title(t("ot_new")), form];
}

// --- one task: its allocation, decisions, hours --------------------------------------------

const STATUS_CHIP = { confirmed: "chip-visited", awaiting_approval: "chip-waiting", waiting: "chip-waiting",
  cancelled: "", rejected: "chip-refused", late: "chip-refused" };

function claimantRow(app, task, c, redraw) {
  const word = c.status === "waiting" ? tf("v_waiting_line", { n: c.line }) : t(`v_${c.status}`);
  const label = c.label || c.claimant;
  const buttons = [];
  const act = (id, text, path, body) => {
    const b = el("button", { type: "button", class: id.startsWith("approve") ? "primary" : "", id: `${id}-${c.n}`,
      "aria-label": `${text}：${label}` }, text);
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        const answer = await callApi(`/api/volunteer/tasks/${encodeURIComponent(task._id)}/${path}`,
          { method: "POST", body: JSON.stringify(body()) });
        app.flash(answer.ok ? t("ot_done") : reasonOf(answer));
      } catch {
        app.flash(t("needs_network"));
      }
      redraw();
    });
    return b;
  };
  if (c.status === "awaiting_approval") {
    buttons.push(act("approve", t("ot_approve"), "decide", () => ({ claimant: c.claimant, approve: true, claim_id: randomId() })));
  }
  if (["confirmed", "awaiting_approval", "waiting"].includes(c.status)) {
    buttons.push(act("reject", t("ot_reject"), "decide", () => ({ claimant: c.claimant, approve: false, claim_id: randomId() })));
  }
  if (c.status === "confirmed") {
    buttons.push(act("hours", t("ot_confirm_hours"), "hours", () => ({ volunteer: c.claimant })));
  }
  return el("li", { "data-claimant": c.claimant, "data-status": c.status },
    el("span", { class: "main" }, label, " ", el("span", { class: `chip ${STATUS_CHIP[c.status] || ""}` }, word)),
    buttons.length ? el("div", { class: "row-actions" }, ...buttons) : null);
}

function taskView(app, id) {
  const holder = el("div", { id: "task-holder" });
  const fill = () => holder.replaceChildren(loading("task-allocation", async (box) => {
    const answer = await callApi(`/api/volunteer/tasks/${encodeURIComponent(id)}/allocation`);
    if (!answer.ok) throw new Error(reasonOf(answer));
    const { task, counts, claimants } = answer.body;
    box.replaceChildren(
      title(task.title),
      el("p", { class: "meta" }, [`${when(task.starts_at)} – ${when(task.ends_at)}`, task.place].join(" · ")),
      el("p", { id: "task-counts" }, `${tf("ot_places", { n: task.places })} · ${countsText(counts)}`),
      el("div", { class: "actions" }, el("a", { href: `#/tasks/${encodeURIComponent(id)}/code`, id: "task-code-link",
        class: "button primary" }, t("ot_show_code"))),
      claimants.length ? el("ul", { class: "list", id: "task-claimants" },
        claimants.map((c, n) => claimantRow(app, task, { ...c, n }, fill)))
        : el("p", { class: "empty", id: "task-no-claims" }, t("ot_no_claims")));
  }));
  fill();
  return [back("#/tasks", t("ot_tasks")), holder];
}

// --- the check-in code, offline ------------------------------------------------------------

function kept() {
  try {
    return JSON.parse(localStorage.getItem(SECRETS) || "{}");
  } catch {
    return {};
  }
}

function keep(me, id, held) {
  const all = kept();
  all[me] = { ...(all[me] || {}), [id]: held };
  localStorage.setItem(SECRETS, JSON.stringify(all));
}

// The code of a window, as the server makes it (rule 4 of server/domain/volunteering.py).
export async function codeOf(secretHex, taskId, window, digits = 6) {
  const raw = new Uint8Array(secretHex.match(/../g).map((h) => Number.parseInt(h, 16)));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${taskId}|${window}`)));
  let value = 0n;
  for (const byte of mac.slice(0, 8)) value = (value << 8n) | BigInt(byte);
  return (value % 10n ** BigInt(digits)).toString().padStart(digits, "0");
}

function codeView(app, id) {
  const big = el("p", { class: "checkin-code", id: "task-code", "aria-live": "polite" }, "");
  const until = el("p", { class: "meta", id: "task-code-until" });
  const note = el("p", { class: "hint", id: "task-code-note", role: "status" });
  const box = el("section", { id: "task-code-box" }, el("h3", {}, ""), big, until, note);
  let timer = null;
  const show = async (held) => {
    box.querySelector("h3").textContent = held.title || "";
    const tick = async () => {
      if (!document.body.contains(box)) {
        clearInterval(timer);
        return;
      }
      const now = Date.now() / 1000;
      const window = Math.floor(now / held.window_seconds);
      big.textContent = await codeOf(held.secret, id, window, held.digits);
      big.dataset.window = String(window);
      until.textContent = tf("ot_code_until", { time: cityTime((window + 1) * held.window_seconds * 1000, { seconds: true }) });
    };
    await tick();
    timer = setInterval(tick, 1000);
  };
  const mine = (kept()[app.me.name] || {})[id];
  (async () => {
    try {
      const [answer, task] = await Promise.all([
        callApi(`/api/volunteer/tasks/${encodeURIComponent(id)}/checkin-key`),
        callApi(`/api/volunteer/tasks/${encodeURIComponent(id)}/allocation`)]);
      if (!answer.ok) throw new Error(reasonOf(answer));
      const held = { secret: answer.body.secret, window_seconds: answer.body.window_seconds,
        digits: answer.body.digits, title: task.ok ? task.body.task.title : "" };
      keep(app.me.name, id, held);
      note.textContent = t("ot_code_kept");
      await show(held);
    } catch (err) {
      if (mine) {
        note.textContent = t("ot_code_offline");
        await show(mine);
      } else {
        note.textContent = err instanceof Unreachable ? t("ot_code_need_once") : String(err.message || err);
      }
    }
  })();
  return [back(`#/tasks/${encodeURIComponent(id)}`, t("ot_back_task")), title(t("ot_code_title")), box,
    el("p", { class: "hint" }, t("ot_code_help"))];
}
