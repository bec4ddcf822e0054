// Residents' data requests (个人信息请求, `#/data-requests`): the supervisors' queue of what
// residents asked (see, export, correct, delete their data), oldest first, each with the day its
// answer is due (15 working days, server/domain/mydata.py) and marked overdue once past it
// (`/api/data-requests`, docs/privacy.md). Online only.

import { answerOrSay } from "./api.js";
import { el } from "./dom.js";
import { cityTime, t, tf } from "./i18n.js";
import { codeLabel } from "./resident/ui.js";

export function canAnswerRequests(me) {
  return Boolean(me) && (me.role === "supervisor" || me.role === "admin");
}

function requestRow(schemas, request) {
  const label = (field, value) => codeLabel(schemas, "data_request", field, value);
  return el("tr", { class: `data-request${request.overdue ? " overdue" : ""}`, "data-id": request.id },
    ...[cityTime(Date.parse(request.requested_at), { date: true }), label("kind", request.kind),
      label("status", request.status), request.due_on || "",
      request.overdue ? t("requests_overdue") : ""].map((cell) => el("td", {}, cell)));
}

export function dataRequestsView(app) {
  const title = el("h2", { tabindex: "-1", class: "view-title" }, t("requests_title"));
  if (!canAnswerRequests(app.me)) return [title, el("p", { class: "empty" }, t("requests_forbidden"))];
  const status = el("p", { class: "meta", role: "status", id: "requests-status" });
  const body = el("tbody", { id: "requests-rows" });
  answerOrSay("/api/data-requests", status).then((found) => {
    if (!found) return;
    body.replaceChildren(...found.requests.map((r) => requestRow(app.schemas, r)));
    status.textContent = tf("requests_count", { n: found.requests.length, overdue: found.overdue });
  });
  return [title, status, el("table", { class: "data-requests" },
    el("thead", {}, el("tr", {}, ...["requests_at", "requests_kind", "requests_state", "requests_due", "requests_late"]
      .map((k) => el("th", {}, t(k))))),
    body)];
}
