// The admin's accounts screen (用户管理, `#/users`): every staff account with its role, its scope
// by name and its state, and a button to disable, enable or remove it (`/api/users`, the same
// rule as `linli user disable|enable|remove`). Disabling ends the person's sessions at once;
// removing is for good and asks first, and the name stays on what they wrote. Online only.

import { callApi } from "./api.js";
import { el } from "./dom.js";
import { message, t, tf } from "./i18n.js";

// What each state allows, in the order the buttons stand.
const ACTIONS = { active: ["disable", "remove"], disabled: ["enable", "remove"], removed: [] };
const STATE_CHIP = { active: "visited", disabled: "refused", removed: "state" };

export function canManageUsers(me) {
  return Boolean(me) && me.role === "admin";
}

function failure(answer) {
  if (answer.status === 401) return t("login_again");
  return message(answer.body.reason || answer.body.error || String(answer.status));
}

function accountRow(app, user, status, refresh) {
  const buttons = ACTIONS[user.state].filter((a) => user.name !== app.me.name).map((action) => {
    const button = el("button", { type: "button", class: action === "enable" ? "primary" : null,
      "data-action": action, "aria-label": tf(`user_${action}_label`, { name: user.name }) },
    t(`user_${action}`));
    button.addEventListener("click", async () => {
      if (action === "remove" && !window.confirm(tf("user_remove_confirm", { name: user.name }))) return;
      button.disabled = true;
      try {
        const answer = await callApi(`/api/users/${encodeURIComponent(user.name)}/${action}`, { method: "POST" });
        status.textContent = answer.ok ? tf(`user_${action}_done`, { name: user.name }) : failure(answer);
      } catch {
        status.textContent = t("needs_network");
      }
      refresh();
    });
    return button;
  });
  return el("li", { class: "card user-row", "data-user": user.name, "data-state": user.state },
    el("div", { class: "row-head" },
      el("strong", {}, user.full_name || user.name), " ",
      user.full_name && user.full_name !== user.name ? el("span", { class: "meta" }, user.name) : null, " ",
      el("span", { class: `chip chip-${STATE_CHIP[user.state]}` }, t(`user_state_${user.state}`))),
    el("p", { class: "meta" }, t(`role_${user.role}`), user.scope.length ? `：${user.scope.join("、")}` : ""),
    buttons.length ? el("div", { class: "actions" }, buttons) : null);
}

export function usersView(app) {
  const title = el("h2", { class: "view-title", id: "users-title", tabindex: "-1" }, t("users_title"));
  const status = el("p", { class: "status-line", role: "status", id: "users-status" });
  const list = el("ul", { class: "plain-list", id: "users-list", "aria-labelledby": "users-title" });
  const refresh = async () => {
    try {
      const answer = await callApi("/api/users");
      if (!answer.ok) {
        status.textContent = failure(answer);
        return;
      }
      list.replaceChildren(...answer.body.users.map((u) => accountRow(app, u, status, refresh)));
    } catch {
      list.replaceChildren(el("li", { class: "empty needs-network" }, t("needs_network")));
    }
  };
  refresh();
  return [title, el("p", { class: "hint" }, t("users_hint")), status, list];
}
