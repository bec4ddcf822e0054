// Retention (保存期限, `#/retention`): the nightly lists of what the grids hold past its rule
// (counts by type, and the campaigns due), by grid in the supervisor's area; a holder of the
// `purge` right approves a list, and what it names goes (`/api/retention`, docs/privacy.md).
// Online only.

import { answerOrSay } from "./api.js";
import { el } from "./dom.js";
import { t, tf } from "./i18n.js";

export function canSeeRetention(me) {
  return Boolean(me) && (me.role === "supervisor" || me.role === "admin");
}

function gridRow(code, due) {
  const counts = Object.entries(due.records).map(([type, n]) => `${type} ${n}`).join("，");
  const approved = due.approved ? tf("retention_approved_by", due.approved) : t("retention_waiting");
  return el("tr", { class: "retention-grid", "data-grid": code },
    ...[code, counts || "—", due.campaigns.join("，") || "—", approved].map((cell) => el("td", {}, cell)));
}

function listBlock(found, mayApprove, status, reload) {
  const waiting = Object.values(found.grids).some((due) => !due.approved);
  const approve = mayApprove && waiting
    ? el("button", { type: "button", class: "primary retention-approve", "data-list": found.id }, t("retention_approve"))
    : null;
  approve?.addEventListener("click", async () => {
    if (!confirm(t("retention_confirm"))) return;
    approve.disabled = true;
    const done = await answerOrSay(`/api/retention/${encodeURIComponent(found.id)}/approve`, status, { method: "POST" });
    if (done) status.textContent = t("retention_done");
    approve.disabled = false;
    reload();
  });
  return el("section", { class: "retention-list", "data-list": found.id },
    el("h3", {}, tf("retention_list_of", { today: found.today })),
    el("table", {},
      el("thead", {}, el("tr", {}, ...["retention_grid", "retention_records", "retention_campaigns", "retention_state"]
        .map((k) => el("th", {}, t(k))))),
      el("tbody", {}, ...Object.entries(found.grids).map(([code, due]) => gridRow(code, due)))),
    approve);
}

export function retentionView(app) {
  const title = el("h2", { tabindex: "-1", class: "view-title" }, t("retention_title"));
  if (!canSeeRetention(app.me)) return [title, el("p", { class: "empty" }, t("retention_forbidden"))];
  const status = el("p", { class: "meta", role: "status", id: "retention-status" });
  const lists = el("div", { id: "retention-lists" });
  const mayApprove = (app.me.rights || []).includes("purge");
  const load = async () => {
    const found = await answerOrSay("/api/retention", status);
    if (!found) return;
    const shown = found.lists.filter((found) => Object.keys(found.grids).length);
    lists.replaceChildren(...(shown.length ? shown.map((found) => listBlock(found, mayApprove, status, load))
      : [el("p", { class: "empty" }, t("retention_nothing"))]));
  };
  load();
  return [title, el("p", { class: "meta" }, t("retention_help")), status, lists];
}
