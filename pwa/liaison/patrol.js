// A liaison officer's patrols (巡查, `#/patrol`, `#/patrol/<route>`): the routes of their
// compounds, kept on the phone when online (`_local/` of the phone's own database
// `linli-patrol-<name>`, so the screen opens offline and says how old its copy is); a patrol
// started on a route records each checkpoint, ok or a problem (category, description) with a
// photo scaled and stripped of EXIF on the phone, into the outbox (pwa/resident/outbox.js),
// sent in order when the network is there. Each check carries the patrol's id: the server takes
// a check sent twice once, and files a problem as a report routed to the department.

/* global PouchDB */
import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, lang, message, t, tf } from "../i18n.js";
import { ApiCopy, requestId } from "../resident/apicopy.js";
import { Outbox } from "../resident/outbox.js";
import { scaledPhoto } from "../resident/reports.js";

const COPY = "_local/linli-patrol-routes";
const CURRENT = "linli-patrol-current"; // the patrol under way: {route, patrol}, per phone

export function patrolLink(me) {
  return me?.role === "department" ? el("a", { href: "#/patrol", id: "patrol-link" }, t("pt_title")) : null;
}

function label(pair) {
  return Array.isArray(pair) ? (lang() === "en" ? pair[1] : pair[0]) : String(pair ?? "");
}

// The phone's side: the copy of the routes and categories, and the outbox of checks.
class Patrols {
  static async open(me) {
    const found = new Patrols();
    found.db = new PouchDB(`linli-patrol-${me.name}`);
    found.copy = await ApiCopy.open(found.db, COPY, { routes: [], categories: [] });
    found.outbox = await new Outbox(found.db).load();
    return found;
  }

  async sync() {
    if (!navigator.onLine) return;
    await this.outbox.flush((path, body) => callApi(path, { method: "POST", body: JSON.stringify(body) })
      .catch(() => ({ status: 0, ok: false, body: {} })));
    await this.copy.refresh(async (copy) => {
      const [routes, categories] = await Promise.all([callApi("/api/patrols/routes"), callApi("/api/reports/categories")]);
      if (!routes.ok || !categories.ok) return false;
      copy.data = { routes: routes.body.routes, categories: categories.body.categories };
      return true;
    }, true);
  }
}

let opened = null; // one per page: the outbox's document is written one change at a time

async function patrols(me) {
  if (!opened || opened.name !== me.name) opened = { name: me.name, patrols: await Patrols.open(me) };
  return opened.patrols;
}

export function patrolView(app, routeId) {
  const body = el("div", { id: "pt-body", "aria-live": "polite" });
  const draw = async () => {
    const found = await patrols(app.me);
    body.replaceChildren(...(routeId ? routeScreen(found, routeId, draw) : listScreen(found)));
  };
  (async () => {
    await draw();
    const found = await patrols(app.me);
    await found.sync();
    await draw();
    window.addEventListener("online", async () => {
      await found.sync();
      await draw();
    }, { once: true });
  })();
  return [el("h2", { tabindex: "-1", class: "view-title" }, t("pt_title")), body];
}

function copyAge(found) {
  return el("p", { class: "hint", id: "pt-copy" }, found.copy.at
    ? tf("pt_copy_at", { at: cityTime(found.copy.at) }) : t("pt_copy_none"));
}

function listScreen(found) {
  const routes = found.copy.data.routes;
  return [copyAge(found),
    routes.length ? el("ul", { class: "cards", id: "pt-routes" }, routes.map((r) => el("li", { class: "card" },
      el("a", { href: `#/patrol/${encodeURIComponent(r.id)}`, class: "card-link", "data-route": r.id },
        el("strong", {}, r.name), el("span", {}, `${r.compound} · ${label(r.department)}`),
        el("span", { class: "hint" }, tf("pt_points", { n: r.checkpoints.length, w: r.per_week })))))) :
      el("p", { class: "empty", id: "pt-none" }, t("pt_none"))];
}

function current(routeId) {
  const held = JSON.parse(localStorage.getItem(CURRENT) || "null");
  if (held && held.route === routeId) return held;
  const fresh = { route: routeId, patrol: `pt-${requestId()}` };
  localStorage.setItem(CURRENT, JSON.stringify(fresh));
  return fresh;
}

function routeScreen(found, routeId, draw) {
  const route = found.copy.data.routes.find((r) => r.id === routeId);
  if (!route) return [el("p", { class: "empty" }, t("pt_none"))];
  const patrol = current(routeId);
  const items = found.outbox.items.filter((i) => i.kind === "patrol" && i.body.patrol === patrol.patrol);
  const done = new Map(items.map((i) => [i.body.checkpoint, i]));
  const sent = JSON.parse(localStorage.getItem(`${CURRENT}-sent-${patrol.patrol}`) || "[]");
  const finish = el("button", { type: "button", id: "pt-new" }, t("pt_new"));
  finish.addEventListener("click", () => {
    localStorage.removeItem(CURRENT);
    draw();
  });
  return [el("nav", { class: "crumbs" }, el("a", { href: "#/patrol", class: "back" }, `‹ ${t("pt_title")}`)),
    el("h3", {}, `${route.name} · ${route.compound}`), copyAge(found),
    el("ol", { id: "pt-points" }, route.checkpoints.map((name, n) => el("li", { "data-point": String(n),
      "data-state": done.has(n) ? (done.get(n).refused ? "refused" : "queued") : sent.includes(n) ? "sent" : "todo" },
    el("strong", {}, name),
    done.has(n) ? el("p", { class: done.get(n).refused ? "error" : "hint" }, done.get(n).refused
      ? tf("pt_refused", { reason: message(done.get(n).refused.reason) }) : t("pt_queued"))
      : sent.includes(n) ? el("p", { class: "hint" }, t("pt_sent"))
        : pointForm(found, route, patrol, n, draw)))),
    el("div", { class: "actions" }, finish)];
}

function pointForm(found, route, patrol, n, draw) {
  const category = el("select", { id: `pt-category-${n}` },
    found.copy.data.categories.map((c) => el("option", { value: c.code }, lang() === "en" ? c.en : c.zh)));
  const description = el("textarea", { id: `pt-description-${n}`, rows: "2", maxlength: "500" });
  const photo = el("input", { id: `pt-photo-${n}`, type: "file", accept: "image/*", capture: "environment" });
  const record = async (ok) => {
    const body = { route: route.id, patrol: patrol.patrol, checkpoint: n, at: new Date().toISOString(), ok };
    if (!ok) body.problem = { category: category.value, description: description.value };
    if (photo.files?.[0]) body.photo = { data: (await scaledPhoto(photo.files[0])).data };
    await found.outbox.add({ kind: "patrol", key: `patrol:${patrol.patrol}:${n}`, path: "/api/patrols/checks", body });
    await draw();
    await found.sync();
    const left = found.outbox.items.some((i) => i.key === `patrol:${patrol.patrol}:${n}`);
    if (!left) {
      const key = `${CURRENT}-sent-${patrol.patrol}`;
      localStorage.setItem(key, JSON.stringify([...JSON.parse(localStorage.getItem(key) || "[]"), n]));
    }
    await draw();
  };
  const ok = el("button", { type: "button", class: "primary", "data-ok": "yes", id: `pt-ok-${n}` }, t("pt_ok"));
  const problem = el("button", { type: "button", "data-ok": "no", id: `pt-problem-${n}` }, t("pt_problem"));
  ok.addEventListener("click", () => record(true));
  problem.addEventListener("click", () => record(false));
  return el("div", { class: "record-form" },
    el("div", { class: "field" }, el("label", { for: `pt-photo-${n}` }, t("pt_photo")), photo),
    el("details", {}, el("summary", {}, t("pt_problem_details")),
      el("div", { class: "field" }, el("label", { for: `pt-category-${n}` }, t("pt_category")), category),
      el("div", { class: "field" }, el("label", { for: `pt-description-${n}` }, t("pt_description")), description)),
    el("div", { class: "actions" }, ok, problem));
}
