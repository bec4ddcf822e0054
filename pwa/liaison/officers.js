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

async function drawThread(into, key, back = "#/liaison") {
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
    const body = { ...(compound ? { compound, department } : { thread }), text: text.value,
      key: form.dataset.key || `lo-${requestId()}` };
    form.dataset.key = body.key; // a retry of this message is the same message
    try {
      const sent = await callApi("/api/liaison/messages", { method: "POST", body: JSON.stringify(body) });
      if (!sent.ok) return void (status.textContent = tf("lo_refused", { reason: failure(sent) }));
      await drawThread(into, key, back);
    } catch {
      status.textContent = t("lo_online");
    }
  });
  into.replaceChildren(
    el("nav", { class: "crumbs" }, el("a", { href: back, class: "back" }, `‹ ${t(back === "#/liaison" ? "lo_title" : "lo_threads")}`)),
    el("ol", { id: "lo-messages" }, answer.body.messages.map((m) => el("li", { "data-from": m.from },
      el("strong", {}, label(m.name)), ` · ${cityTime(Date.parse(m.at), { date: true })}`,
      el("p", { class: "prose" }, m.text)))),
    form);
}

// The officer's side (`#/liaison-threads`, `#/liaison-threads/<thread>`, a department user's
// 居民留言 link): the threads of the compounds they serve, newest first, each with its compound's
// name, their department and the last message; a thread read and answered in the app. The
// resident is 本小区居民: never a login, phone or unit (docs/liaison.md rule 2).

export function liaisonThreadsLink(me) {
  return me?.role === "department" ? el("a", { href: "#/liaison-threads", id: "liaison-threads-link" }, t("lo_threads")) : null;
}

export function liaisonThreadsView(app, thread) {
  const body = el("div", { id: "lo-body", "aria-live": "polite" });
  filled(body, () => (thread ? drawThread(body, `||${thread}`, "#/liaison-threads") : drawThreads(body)));
  return [el("h2", { tabindex: "-1", class: "view-title" }, t("lo_threads")),
    el("p", { class: "hint" }, t("lo_threads_intro")), body];
}

async function drawThreads(into) {
  const answer = await callApi("/api/liaison/threads");
  if (!answer.ok) return into.replaceChildren(el("p", { class: "error", role: "alert" }, failure(answer)));
  const threads = answer.body.threads || [];
  into.replaceChildren(threads.length ? el("ul", { class: "cards", id: "lo-threads" }, threads.map((th) =>
    el("li", { class: "card", "data-from": th.last.from },
      el("a", { href: `#/liaison-threads/${encodeURIComponent(th.thread)}`, class: "card-link", "data-thread": th.thread },
        el("strong", {}, `${th.compound_name} · ${label(th.department)}`),
        el("span", {}, `${label(th.last.name)}：${th.last.text}`),
        el("span", { class: "hint" }, `${cityTime(Date.parse(th.last.at), { date: true })}${th.last.from === "resident" ? ` · ${t("lo_awaiting")}` : ""}`)))))
    : el("p", { class: "empty", id: "lo-no-threads" }, t("lo_no_threads")));
}
