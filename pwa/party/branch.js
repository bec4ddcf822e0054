// A party branch's screen (党支部, `#/party/<branch>`) for its secretary (支部书记) and the
// supervisors whose scope holds it: the declarations to confirm or reject (secretaries only),
// the members, hours by member and by task (from the hours ledger), this year's community
// projects against the rule "at least one a year", and who has not reported to their grid
// branch. Read from the server (`/api/party/branches/<code>`): online only, and it says so.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { message, t, tf } from "../i18n.js";

export function canSeeBranches(me) {
  return Boolean(me) && ["secretary", "supervisor", "admin"].includes(me.role);
}

function decides(me) {
  return me.role === "secretary" || me.role === "admin";
}

// The branches the user may open at once: a secretary's own, a supervisor's grids' branches.
function shortcuts(me) {
  if (me.role === "secretary") return me.branches || [];
  return (me.grids || []).map((g) => `grid-${g.code}`);
}

function duration(minutes) {
  return tf("b_minutes", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

function failure(answer) {
  if (answer.status === 401) return t("login_again");
  return message(answer.body.reason || answer.body.error || String(answer.status));
}

function pendingRow(code, member, status, refresh) {
  const reason = el("input", { type: "text", maxlength: "200", "aria-label": t("b_reason"),
    placeholder: t("b_reason"), name: "reason" });
  const decide = (confirm) => {
    const button = el("button", { type: "button", class: confirm ? "primary" : "",
      "data-action": confirm ? "confirm" : "reject" }, t(confirm ? "b_confirm" : "b_reject"));
    button.addEventListener("click", async () => {
      button.disabled = true;
      const body = confirm ? { member: member.account, confirm: true }
        : { member: member.account, confirm: false, reason: reason.value };
      try {
        const answer = await callApi("/api/party/decide", { method: "POST", body: JSON.stringify(body) });
        status.textContent = answer.ok ? tf("b_done", { name: member.account }) : failure(answer);
      } catch {
        status.textContent = t("needs_network");
      }
      refresh(code);
    });
    return button;
  };
  return el("li", { class: "card", "data-member": member.account },
    el("strong", {}, member.account),
    el("div", { class: "field" }, reason),
    el("div", { class: "actions" }, decide(true), decide(false)));
}

function branchBody(me, view, status, refresh) {
  const pending = view.members.filter((m) => m.status === "pending");
  const list = (items, id, empty) => items.length
    ? el("ul", { class: "plain-list", id }, items)
    : el("p", { class: "empty", id }, empty);
  return [
    el("h3", { id: "b-name" }, view.name),
    el("p", { id: "b-counts" }, tf("b_members", view.counts)),
    decides(me) ? el("h3", {}, t("b_pending")) : null,
    decides(me) ? list(pending.map((m) => pendingRow(view.branch, m, status, refresh)), "b-pending", t("b_none_pending")) : null,
    el("p", { id: "b-projects", "data-met": String(view.projects_met) },
      tf("b_projects", { year: view.year, n: view.projects.length }), " · ",
      el("span", { class: `chip ${view.projects_met ? "chip-visited" : "chip-refused"}` },
        tf(view.projects_met ? "b_rule_met" : "b_rule_unmet", { n: view.projects_needed }))),
    view.projects.length ? el("ul", { class: "plain-list" }, view.projects.map((p) => el("li", {}, p.title))) : null,
    el("h3", {}, t("b_hours_member")),
    list(view.hours_by_member.map((h) => el("li", { "data-member": h.account },
      h.account, view.members.find((m) => m.account === h.account)?.public ? el("span", { class: "chip" }, t("b_shows")) : null,
      " · ", duration(h.minutes))), "b-hours-member", "—"),
    el("h3", {}, t("b_hours_task")),
    list(view.hours_by_task.map((h) => el("li", {}, `${h.title || h.task} · ${duration(h.minutes)}`)), "b-hours-task", "—"),
    el("h3", {}, t("b_not_reported")),
    list(view.not_reported.map((a) => el("li", {}, a)), "b-not-reported", t("b_all_reported")),
  ];
}

export function branchView(app, wanted) {
  const { me } = app;
  const code = wanted || shortcuts(me)[0] || "";
  const title = el("h2", { class: "view-title", id: "b-title", tabindex: "-1" }, t("b_title"));
  const status = el("p", { class: "status-line", role: "status", id: "b-status" });
  const body = el("section", { id: "b-view", "data-branch": code });
  const input = el("input", { type: "text", id: "b-code", value: code, "aria-label": t("b_choose"),
    autocapitalize: "off", spellcheck: "false" });
  const form = el("form", { class: "record-form", id: "b-open" }, el("div", { class: "field" }, input),
    el("div", { class: "actions" }, el("button", { type: "submit" }, t("b_show"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/party/${encodeURIComponent(input.value.trim())}`;
  });
  const refresh = async (branch) => {
    if (!branch) return;
    try {
      const answer = await callApi(`/api/party/branches/${encodeURIComponent(branch)}`);
      if (!answer.ok) {
        body.replaceChildren(el("p", { class: "error", role: "alert" }, failure(answer)));
        return;
      }
      body.replaceChildren(...branchBody(me, answer.body, status, refresh).filter(Boolean));
    } catch {
      body.replaceChildren(el("p", { class: "empty needs-network" }, t("needs_network")));
    }
  };
  refresh(code);
  return [title,
    el("nav", { class: "actions" }, shortcuts(me).map((b) => el("a", { href: `#/party/${encodeURIComponent(b)}`,
      class: "button", "data-branch": b }, b))),
    form, status, body];
}
