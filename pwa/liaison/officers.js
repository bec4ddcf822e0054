// A resident's liaison officers (联络员, `#/liaison`, `#/liaison/<thread>`): the officers of the
// compounds they live in, by department and name (never a phone), and their conversation with
// each, written in the app. Read from the server when online; the screen says so offline.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, lang, message, t, tf } from "../i18n.js";
import { requestId } from "../resident/apicopy.js";

function label(pair) {
  return lang() === "en" ? pair[1] : pair[0];
}

function failure(answer) {
  return message(answer.body.reason || answer.body.error || String(answer.status));
}

async function filled(into, load) {
  try {
    await load();
  } catch {
    into.replaceChildren(el("p", { class: "empty needs-network", id: "lo-offline" }, t("lo_online")));
  }
}

export function liaisonView(app, thread) {
  const body = el("div", { id: "lo-body", "aria-live": "polite" });
  filled(body, () => (thread ? drawThread(body, thread) : drawOfficers(body)));
  return [el("h2", { tabindex: "-1", class: "view-title" }, t("lo_title")),
    el("p", { class: "hint" }, t("lo_intro")), body];
}

async function drawOfficers(into) {
  const answer = await callApi("/api/liaison/officers");
  if (!answer.ok) return into.replaceChildren(el("p", { class: "error", role: "alert" }, failure(answer)));
  const compounds = answer.body.compounds.filter((c) => c.officers.length);
  into.replaceChildren(...(compounds.length ? compounds.map((c) => el("section", {},
    el("h3", {}, c.name),
    el("ul", { class: "cards lo-officers" }, c.officers.map((o) => el("li", { class: "card" },
      el("a", { href: `#/liaison/${encodeURIComponent(`${c.compound}|${o.department}|${o.thread}`)}`,
        class: "card-link", "data-department": o.department },
      el("strong", {}, label(o.label)), el("span", {}, tf("lo_officer", { name: o.officer })))))))) :
    [el("p", { class: "empty", id: "lo-none" }, t("lo_none"))]));
}

async function drawThread(into, key) {
  const [compound, department, thread] = key.split("|");
  const answer = await callApi(`/api/liaison/messages/${encodeURIComponent(thread)}`);
  if (!answer.ok) return into.replaceChildren(el("p", { class: "error", role: "alert" }, failure(answer)));
  const text = el("textarea", { id: "lo-text", rows: "3", maxlength: "500", required: true });
  const status = el("p", { role: "status", class: "hint" });
  const form = el("form", { id: "lo-form", class: "record-form" },
    el("div", { class: "field" }, el("label", { for: "lo-text" }, t("lo_write")), text),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "lo-send" }, t("lo_send"))),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { compound, department, text: text.value, key: form.dataset.key || `lo-${requestId()}` };
    form.dataset.key = body.key; // a retry of this message is the same message
    try {
      const sent = await callApi("/api/liaison/messages", { method: "POST", body: JSON.stringify(body) });
      if (!sent.ok) return void (status.textContent = tf("lo_refused", { reason: failure(sent) }));
      await drawThread(into, key);
    } catch {
      status.textContent = t("lo_online");
    }
  });
  into.replaceChildren(
    el("nav", { class: "crumbs" }, el("a", { href: "#/liaison", class: "back" }, `‹ ${t("lo_title")}`)),
    el("ol", { id: "lo-messages" }, answer.body.messages.map((m) => el("li", { "data-from": m.from },
      el("strong", {}, label(m.name)), ` · ${cityTime(Date.parse(m.at), { date: true })}`,
      el("p", { class: "prose" }, m.text)))),
    form);
}
