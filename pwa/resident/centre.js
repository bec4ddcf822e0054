// The neighbourhood centre (邻里中心, docs/centre.md): the providers of the resident's community
// (a bank, housekeeping, training, a lawyer, the 96811 line) with their services and opening
// times, their slots to come, the centre's activities, and the resident's own bookings. What the
// server answered is kept on the phone (apicopy.js: a `_local/` document) so the screens open
// offline and say how old their copy is. A booking, a sign-up or a cancellation is queued on the
// phone (outbox.js) with its own claim id, kept for every retry, so the server counts it once;
// until the server has it the screen says 已预约，等待联网确认. Places are decided by the server
// in the order it receives bookings (docs/allocation.md); its answer comes back through the sync
// as the resident's `allocation` document (已预约，待服务方确认, 预约成功, 候补...). What a
// resident writes with a booking (咨询事项) is read by them and the provider's staff only.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { ApiCopy, requestId } from "./apicopy.js";
import { backLink, heading } from "./ui.js";

const COPY = "_local/linli-centre";
const EMPTY = { providers: [], activities: [], slots: {}, mine: { bookings: [], activities: [] } };
const HOLDS = new Set(["confirmed", "awaiting_approval", "waiting", "pending"]);
const CHIP = { confirmed: "chip-visited", rejected: "chip-refused", late: "chip-refused", refused: "chip-refused" };

async function copyOf(app) {
  const r = app.resident;
  if (!r.centre) r.centre = await ApiCopy.open(r.store.db, COPY, EMPTY);
  return r.centre;
}

// Read again from the server when online (at most every 2 s; at once for a provider whose
// slots the phone never read), then redraw.
async function refresh(app, provider = null) {
  const copy = await copyOf(app);
  const first = Boolean(provider) && !(provider in copy.data.slots);
  const changed = await copy.refresh(async (c) => {
    const [providers, activities, mine] = await Promise.all(["/api/centre/providers",
      "/api/centre/activities", "/api/centre/mine"].map((path) => callApi(path)));
    if (!providers.ok) return false;
    c.data = { ...c.data, providers: providers.body.providers,
      activities: activities.ok ? activities.body.activities : c.data.activities,
      mine: mine.ok ? mine.body : c.data.mine };
    if (provider) {
      const slots = await callApi(`/api/centre/providers/${encodeURIComponent(provider)}/slots`);
      if (slots.ok) c.data.slots = { ...c.data.slots, [provider]: slots.body.slots };
    }
    return true;
  }, first);
  if (changed) app.resident.sync.dataChanged();
}

function when(value, date = true) {
  const ms = Date.parse(value || "");
  return Number.isNaN(ms) ? "" : cityTime(ms, { date });
}

function span(item) {
  return `${when(item.starts_at)} – ${when(item.ends_at, false)}`;
}

// Opening times, Beijing time as the provider set them: 周一 09:00–11:30、13:30–17:00；…
function hoursText(hours) {
  return Object.keys(hours || {}).sort().map((d) => `${t(`ce_day_${d}`)} ${
    hours[d].map(([a, b]) => `${a}–${b}`).join("、")}`).join("；");
}

// Where the resident stands on a slot or an activity: what waits in the outbox first, else the
// server's allocation as pulled.
function standing(app, subject) {
  const { store } = app.resident;
  const queued = store.outbox.items.filter((i) => i.kind === "centre" && i.shown.subject === subject);
  const last = queued[queued.length - 1];
  if (last?.refused) return { status: "refused", reason: message(last.refused.reason) };
  if (last) return { status: last.shown.act === "cancel" ? "cancelling" : "pending" };
  const decided = store.docs.get(`allocation:${subject.replace(":", ".")}:${store.me.name}`);
  return decided ? { status: decided.status, line: decided.line, promoted: decided.promoted } : null;
}

function standingText(state, slot) {
  if (!state) return "";
  if (state.status === "refused") return `${t("v_refused")}：${state.reason}`;
  if (state.status === "waiting") return tf("v_waiting_line", { n: state.line });
  return t(`${slot ? "ce" : "v"}_${state.status}`);
}

function chip(state, slot) {
  return state ? el("span", { class: `chip ${CHIP[state.status] || "chip-waiting"}`, "data-status": state.status },
    standingText(state, slot)) : null;
}

function act(subject, what, body = {}) {
  const [kind, key] = subject.split(":");
  const path = kind === "centre_slot" ? `/api/centre/slots/${key}/${what === "claim" ? "book" : what}` :
    `/api/centre/activities/${key}/${what}`;
  return { kind: "centre", key: `centre:${subject}:${what}:${Date.now()}`, path,
    body: { claim_id: requestId(), ...body }, shown: { subject, act: what } };
}

function button(app, id, label, item, primary = false) {
  const b = el("button", { type: "button", id, class: primary ? "primary" : "" }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    await app.resident.sync.send(item());
  });
  return b;
}

function copyLine(copy) {
  return el("p", { class: "hint", id: "ce-copy" },
    copy.at ? `${t("r_copy_of")}：${cityTime(copy.at, { date: true })}` : t("ma_never_read"));
}

function activityRow(app, activity) {
  const state = standing(app, activity._id);
  const closed = Date.parse(activity.deadline) < Date.now();
  const row = el("li", { "data-id": activity._id, class: "card" },
    el("p", { class: "main" }, activity.title),
    el("p", { class: "meta" }, [span(activity), activity.place, activity.provider_name].filter(Boolean).join(" · ")),
    el("p", { class: "meta" }, tf("ce_taken", { taken: activity.taken ?? 0, places: activity.places })),
    el("p", { class: "hint", role: "status", "data-status": state?.status || "" }, standingText(state, false)));
  if (!state || ["cancelled", "refused"].includes(state.status)) {
    if (!closed) row.append(button(app, `ce-join-${activity._id.split(":")[1]}`, t("ce_join"), () => act(activity._id, "claim"), true));
  } else if (HOLDS.has(state.status)) {
    row.append(button(app, `ce-leave-${activity._id.split(":")[1]}`, t("ce_leave"), () => act(activity._id, "cancel")));
  }
  return row;
}

export async function centreView(app) {
  const copy = await copyOf(app);
  refresh(app);
  const { providers, activities, mine } = copy.data;
  return [
    backLink("#/"),
    heading(t("ce_title")),
    copyLine(copy),
    el("h3", {}, t("ce_providers")),
    providers.length ? el("ul", { class: "list", id: "ce-providers" }, providers.map((p) => el("li", { "data-code": p.code },
      el("a", { href: `#/centre-provider/${encodeURIComponent(p.code)}` },
        el("span", { class: "main" }, p.name),
        el("span", { class: "chip" }, t(`ce_kind_${p.kind}`)),
        el("span", { class: "meta" }, p.services.map((s) => s.name).join("、")))))) :
      el("p", { class: "hint", id: "ce-none" }, t("ce_none")),
    el("h3", {}, t("ce_mine")),
    mine.bookings.length ? el("ul", { class: "list", id: "ce-mine" }, mine.bookings.map((b) => el("li", { "data-id": b._id },
      el("a", { href: `#/centre-provider/${encodeURIComponent(b.provider)}` },
        el("span", { class: "main" }, `${b.provider_name} · ${b.service_name}`),
        chip(standing(app, b._id), true),
        el("span", { class: "meta" }, span(b)))))) : el("p", { class: "hint" }, t("ce_no_bookings")),
    el("h3", {}, t("ce_activities")),
    activities.length ? el("ul", { class: "list", id: "ce-activities" }, activities.map((a) => activityRow(app, a))) :
      el("p", { class: "hint" }, t("ce_no_activities")),
  ];
}

function slotRow(app, provider, slot) {
  const state = standing(app, slot._id);
  const key = slot._id.split(":")[1];
  const row = el("li", { class: "card", "data-id": slot._id, "data-status": state?.status || "" },
    el("p", { class: "main" }, `${span(slot)} · ${slot.service_name}`),
    el("p", { class: "meta" }, tf("ce_taken", { taken: slot.taken ?? 0, places: slot.places })),
    el("p", { class: "hint", role: "status", id: `ce-status-${key}` }, standingText(state, true)));
  if (!state || ["cancelled", "refused"].includes(state.status)) {
    const matter = el("textarea", { id: `ce-matter-${key}`, rows: "3", maxlength: "500" });
    row.append(el("label", { for: `ce-matter-${key}` }, provider.confidential ? t("ce_matter_secret") : t("ce_matter")), matter,
      button(app, `ce-book-${key}`, t("ce_book"), () => act(slot._id, "claim", matter.value.trim() ? { matter: matter.value.trim() } : {}), true));
  } else if (HOLDS.has(state.status)) {
    row.append(button(app, `ce-cancel-${key}`, t("ce_cancel"), () => act(slot._id, "cancel")));
  }
  return row;
}

export async function centreProviderView(app, code) {
  const copy = await copyOf(app);
  refresh(app, code);
  const provider = copy.data.providers.find((p) => p.code === code);
  if (!provider) return [backLink("#/centre", t("ce_title")), heading(t("not_found"))];
  const slots = copy.data.slots[code] || [];
  return [
    backLink("#/centre", t("ce_title")),
    heading(provider.name),
    el("p", { class: "meta" }, `${t(`ce_kind_${provider.kind}`)} · ${provider.services.map((s) => s.name).join("、")}`),
    el("p", { class: "hint", id: "ce-hours" }, `${t("ce_hours")}：${hoursText(provider.hours)}`),
    provider.confidential ? el("p", { class: "hint", id: "ce-confidential" }, t("ce_confidential")) : null,
    copyLine(copy),
    slots.length ? el("ul", { class: "list", id: "ce-slots" }, slots.map((s) => slotRow(app, provider, s))) :
      el("p", { class: "hint", id: "ce-no-slots" }, t("ce_no_slots")),
  ];
}
