// Mediation (老娘舅调解, `#/mediation`, `#/mediation/<case>`): the cases of the reader's circles
// (a resident party, a company's staff, the mediator, the community's supervisor with the
// right), one case with its record, agreement and signatures, and the acts the server says the
// reader may make now (`moves`). Strictly confidential, so read from the server only and never
// kept on the phone: online only, and the screen says so. The same screens serve the resident's
// app (pwa/resident/main.js) and the staff's (pwa/app.js); names are shown, never logins.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, lang, message, t, tf } from "../i18n.js";
import { scaledPhoto } from "../resident/reports.js";

const KINDS = ["property", "neighbours", "family", "other"];

// Staff who mediate (`mediate`) or oversee (`mediation`) a community's cases.
export function canMediate(me) {
  return Boolean(me) && ["supervisor", "worker"].includes(me.role)
    && (me.rights || []).some((r) => r === "mediate" || r === "mediation");
}

// Mediators, the community's overseers, parties that are companies, and every supervisor (the
// figures, counts only).
export function mediationLink(me) {
  return canMediate(me) || ["property", "supervisor"].includes(me?.role)
    ? el("a", { href: "#/mediation", id: "mediation-link" }, t("md_title")) : null;
}

function label(pair) {
  return Array.isArray(pair) ? (lang() === "en" ? pair[1] : pair[0]) : String(pair ?? "");
}

function failure(answer) {
  if (answer.status === 401) return t("login_again");
  return message(answer.body.reason || answer.body.error || String(answer.status));
}

function when(stamp) {
  return cityTime(Date.parse(stamp), { date: true });
}

function title(text) {
  return el("h2", { tabindex: "-1", class: "view-title" }, text);
}

// Draws `fill()` into a container once the server answers; offline, says so.
function loading(fill) {
  const body = el("div", { id: "md-body", "aria-live": "polite" });
  (async () => {
    try {
      await fill(body);
    } catch {
      body.replaceChildren(el("p", { class: "empty needs-network", id: "md-offline" }, t("md_online")));
    }
  })();
  return body;
}

export function mediationView(app, id) {
  return id ? caseView(app, id) : listView(app);
}

// The supervisors' figures (counts only): mediation cases by kind, outcome and duration (small
// counts withheld, shown as 已隐藏), and the patrols of their communities' routes.
function count(value) {
  return value === null || value === undefined ? t("md_withheld") : String(value);
}

async function figuresSection(into) {
  const [cases, patrols] = await Promise.all([callApi("/api/mediation/figures"), callApi("/api/patrols/figures")]);
  if (!cases.ok || !patrols.ok) return;
  const f = cases.body.total;
  const row = (name, value) => el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, count(value)));
  into.append(el("section", { id: "md-figures" }, el("h3", {}, t("md_figures")),
    el("table", { class: "data" }, el("tbody", {},
      row(t("md_cases"), f.cases),
      ...Object.entries(f.by_kind).map(([k, v]) => row(t(`md_kind_${k}`), v)),
      ...Object.entries(f.by_outcome).map(([k, v]) => row(label(cases.body.outcomes[k]), v)),
      row(t("md_days_median"), f.days_median))),
    el("h3", {}, t("md_patrols")),
    el("table", { class: "data", id: "md-patrols" }, el("thead", {}, el("tr", {},
      ...["md_route", "md_planned", "md_done", "md_found", "md_resolved"].map((k) => el("th", { scope: "col" }, t(k))))),
    el("tbody", {}, patrols.body.routes.map((r) => el("tr", {},
      el("td", {}, `${r.name} · ${r.compound} · ${label(r.department)}`),
      el("td", {}, String(r.planned)), el("td", {}, String(r.done)),
      el("td", {}, String(r.found)), el("td", {}, String(r.resolved))))))));
}

function listView(app) {
  const body = loading(async (into) => {
    const answer = await callApi("/api/mediation/cases");
    if (!answer.ok) return into.replaceChildren(el("p", { class: "error", role: "alert" }, failure(answer)));
    const cases = answer.body.cases;
    into.replaceChildren(
      cases.length ? el("ul", { class: "cards", id: "md-cases" }, cases.map((c) => el("li", { class: "card" },
        el("a", { href: `#/mediation/${encodeURIComponent(c.id)}`, class: "card-link", "data-case": c.id },
          el("strong", {}, `${label(c.kind_label)} · ${label(c.state_label)}`),
          el("span", {}, c.parties.join("、")),
          el("span", { class: "hint" }, `${c.community} · ${tf("md_opened", { at: when(c.opened_at) })}`))))) :
        el("p", { class: "empty", id: "md-none" }, t("md_none")),
      canMediate(app.me) ? openForm(app) : null);
    if (app.me.role === "supervisor") await figuresSection(into);
  });
  return [title(t("md_title")), el("p", { class: "hint" }, t("md_intro")), body];
}

function field(id, text, input) {
  return el("div", { class: "field" }, el("label", { for: id }, text), input);
}

function openForm(app) {
  const me = app.me;
  const communities = [...new Set((me.grids || []).map((g) => g.community).filter(Boolean))];
  const kind = el("select", { id: "md-kind", required: true },
    KINDS.map((k) => el("option", { value: k }, t(`md_kind_${k}`))));
  const community = el("select", { id: "md-community", required: true },
    communities.map((c) => el("option", { value: c }, c)));
  const matter = el("textarea", { id: "md-matter", required: true, maxlength: "500", rows: "3" });
  const rows = [1, 2].map((n) => ({
    phone: el("input", { id: `md-phone-${n}`, type: "tel", inputmode: "numeric", autocomplete: "off" }),
    name: el("input", { id: `md-name-${n}`, type: "text", maxlength: "40" }),
  }));
  const company = el("input", { id: "md-company", type: "text", maxlength: "18", autocomplete: "off" });
  const mediator = (me.rights || []).includes("mediate") ? null :
    el("input", { id: "md-mediator", type: "text", required: true, autocomplete: "off" });
  const status = el("p", { id: "md-open-status", role: "status" });
  const form = el("form", { id: "md-open", class: "record-form", "data-keep": "" },
    el("h3", {}, t("md_new")),
    field("md-kind", t("md_kind"), kind), field("md-community", t("md_community"), community),
    field("md-matter", t("md_matter"), matter),
    rows.flatMap((r, n) => [field(`md-phone-${n + 1}`, `${t("md_party_phone")} ${n + 1}`, r.phone),
      field(`md-name-${n + 1}`, `${t("md_party_name")} ${n + 1}`, r.name)]),
    field("md-company", t("md_company"), company),
    mediator ? field("md-mediator", t("md_mediator"), mediator) : el("p", { class: "hint" }, `${t("md_mediator")}：${t("md_me")}`),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "md-open-button" }, t("md_open"))),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const parties = rows.filter((r) => r.phone.value.trim())
      .map((r) => ({ resident: r.phone.value.trim(), ...(r.name.value.trim() ? { name: r.name.value.trim() } : {}) }));
    if (company.value.trim()) parties.push({ company: company.value.trim() });
    const body = { kind: kind.value, matter: matter.value, community: community.value, parties,
      mediator: mediator ? mediator.value.trim() : me.name, request: form.dataset.request || newRequest() };
    form.dataset.request = body.request; // a retry of this form is the same case
    await post("/api/mediation/cases", body, status, (c) => {
      location.hash = `#/mediation/${encodeURIComponent(c.id)}`;
    });
  });
  return form;
}

// Sends a form's body; the case answered goes to `done`, a refusal or no network to `status`.
async function post(path, body, status, done) {
  try {
    const answer = await callApi(path, { method: "POST", body: JSON.stringify(body) });
    if (!answer.ok) return void (status.textContent = tf("md_refused", { reason: failure(answer) }));
    done(answer.body.case);
  } catch {
    status.textContent = t("md_online");
  }
}

function newRequest() {
  return `md-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

function caseView(app, id) {
  const body = loading(async (into) => {
    const answer = await callApi(`/api/mediation/cases/${encodeURIComponent(id)}`);
    if (!answer.ok) return into.replaceChildren(el("p", { class: "error", role: "alert" }, failure(answer)));
    const redraw = (fresh) => into.replaceChildren(...caseBody(fresh, redraw));
    redraw(answer.body.case);
  });
  return [el("nav", { class: "crumbs" }, el("a", { href: "#/mediation", class: "back" }, `‹ ${t("md_title")}`)),
    title(t("md_title")), body];
}

function caseBody(c, redraw) {
  const signed = (p) => (p.signed ? tf(p.signed.how === "paper" ? "md_signed_paper" : "md_signed_app",
    { at: when(p.signed.at) }) : t("md_unsigned"));
  return [
    el("h3", { id: "md-case-title" }, `${label(c.kind_label)} · ${c.community}`),
    el("p", { id: "md-state" }, tf("md_state", { state: label(c.state_label) })),
    el("p", { class: "hint" }, `${tf("md_your_part", { part: label(c.part_label) })} · ${t("md_mediator")}：${c.mediator} · ${tf("md_opened", { at: when(c.opened_at) })}`),
    el("p", { id: "md-matter-text", class: "prose" }, c.matter),
    el("h3", {}, t("md_parties")),
    el("ul", { id: "md-parties" }, c.parties.map((p) => el("li", { "data-signed": p.signed ? p.signed.how : "" },
      `${p.name}${p.you ? t("md_you") : ""} · ${signed(p)}`))),
    c.agreement ? el("section", { id: "md-agreement" }, el("h3", {}, t("md_agreement")),
      el("p", { class: "prose" }, c.agreement.text)) : null,
    el("h3", {}, t("md_record")),
    el("ol", { id: "md-acts" }, c.acts.map((a) => el("li", {},
      el("strong", {}, label(a.label)), ` · ${a.by} · ${when(a.at)}`, a.note ? el("p", { class: "prose" }, a.note) : null))),
    ...c.moves.map((move) => actForm(c, move, redraw)),
  ];
}

// One act's form: the fields it needs (a note, the agreement's text, the party and the photo
// of a paper signature), sent with a request id kept for the retries of this form.
function actForm(c, move, redraw) {
  const inputs = {};
  const parts = [];
  if (["session", "fail", "follow_up"].includes(move)) {
    inputs.note = el("textarea", { id: `md-${move}-note`, rows: "3", maxlength: "2000", required: true });
    parts.push(field(`md-${move}-note`, t("md_note"), inputs.note));
  }
  if (move === "agreement") {
    inputs.text = el("textarea", { id: "md-agreement-text", rows: "5", maxlength: "5000", required: true });
    parts.push(field("md-agreement-text", t("md_text"), inputs.text));
  }
  if (move === "paper") {
    inputs.party = el("select", { id: "md-paper-party" },
      c.parties.filter((p) => !p.signed).map((p) => el("option", { value: p.key }, p.name)));
    inputs.photo = el("input", { id: "md-paper-photo", type: "file", accept: "image/*", capture: "environment", required: true });
    parts.push(field("md-paper-party", t("md_party_signing"), inputs.party), field("md-paper-photo", t("md_photo"), inputs.photo));
  }
  const status = el("p", { role: "status", class: "hint" });
  const form = el("form", { class: "record-form md-act", "data-act": move },
    ...parts, el("div", { class: "actions" },
      el("button", { type: "submit", class: move === "fail" ? "" : "primary", id: `md-act-${move}` }, t(`md_act_${move}`))),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { act: move, request: form.dataset.request || newRequest() };
    form.dataset.request = body.request;
    if (inputs.note) body.note = inputs.note.value;
    if (inputs.text) body.text = inputs.text.value;
    if (inputs.party) body.party = inputs.party.value;
    if (inputs.photo?.files?.[0]) body.photo = { data: (await scaledPhoto(inputs.photo.files[0])).data };
    await post(`/api/mediation/cases/${encodeURIComponent(c.id)}/acts`, body, status, redraw);
  });
  return form;
}
