// The neighbourhood centre for a provider's staff (邻里中心服务方, docs/centre.md): the day list
// of their own slots (`#/centre-day/<YYYY-MM-DD>`, Beijing dates; today by default), each
// booking by the resident's name (else their phone masked) with its status and the matter they
// wrote, confirmed (确认) or declined (婉拒) here; and a new slot of one of their services. The
// bookings live on the server (server/web/centre.py): the screen needs the network and says so.
// A decision carries this phone's own id for it, so a retry is the same decision.

import { callApi, Unreachable } from "./api.js";
import { el } from "./dom.js";
import { cityTime, message, t, tf } from "./i18n.js";
import { requestId } from "./resident/apicopy.js";
import { backLink, heading } from "./resident/ui.js";

export function providesServices(me) {
  return Boolean(me) && me.role === "provider";
}

export function centreLink(me) {
  return providesServices(me) ? el("a", { href: "#/centre-day", id: "centre-day-link" }, t("ce_day")) : null;
}

function today() {
  return new Date().toLocaleDateString("en-CA", { timeZone: "Asia/Shanghai" });
}

function reasonOf(answer) {
  return message(answer.body?.reason || answer.body?.error || String(answer.status));
}

function time(value) {
  const ms = Date.parse(value || "");
  return Number.isNaN(ms) ? "" : cityTime(ms);
}

const STATUS = { awaiting_approval: "ce_awaiting_approval", confirmed: "ce_confirmed" };

function bookingRow(slot, booking, redraw) {
  const status = el("p", { class: "hint", role: "status" },
    booking.status === "waiting" ? tf("v_waiting_line", { n: booking.line }) : t(STATUS[booking.status] || "ce_pending"));
  const row = el("li", { class: "card", "data-booking": booking.booking, "data-status": booking.status },
    el("p", { class: "main" }, booking.name), status,
    booking.matter ? el("p", { class: "notice-body" }, booking.matter) : null);
  if (booking.status !== "awaiting_approval") return row;
  const decide = (approve) => {
    const b = el("button", { type: "button", class: approve ? "primary" : "", "data-act": approve ? "confirm" : "decline" },
      t(approve ? "ce_confirm" : "ce_decline"));
    const body = { booking: booking.booking, approve, claim_id: requestId() };
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        const answer = await callApi(`/api/centre/slots/${slot._id.split(":")[1]}/decide`,
          { method: "POST", body: JSON.stringify(body) });
        if (!answer.ok) throw new Error(reasonOf(answer));
        redraw();
      } catch (err) {
        b.disabled = false;
        status.textContent = err instanceof Unreachable ? t("needs_network") : String(err.message || err);
      }
    });
    return b;
  };
  row.append(el("div", { class: "actions" }, decide(true), decide(false)));
  return row;
}

function field(id, label, control) {
  return el("div", { class: "field" }, el("label", { for: id }, label), control);
}

// A new slot of one of the provider's services; the time typed is Beijing time whatever the
// phone's zone. The server checks it against the opening times and says what is wrong, by label.
function slotForm(day, services, redraw) {
  const service = el("select", { id: "slot-service" }, services.map((s) => el("option", { value: s.code }, s.name)));
  const starts = el("input", { id: "slot-starts", type: "datetime-local", value: `${day}T09:00`, required: "" });
  const minutes = el("select", { id: "slot-minutes" }, [15, 30, 45, 60, 90, 120].map((m) =>
    el("option", { value: String(m), ...(m === 30 ? { selected: "" } : {}) }, String(m))));
  const places = el("input", { id: "slot-places", type: "number", min: "1", max: "50", value: "1", required: "" });
  const status = el("p", { class: "error form-status", role: "alert", id: "slot-status" });
  const form = el("form", { id: "slot-form" },
    el("h3", {}, t("ce_new_slot")),
    field("slot-service", t("ce_service"), service), field("slot-starts", t("ce_starts"), starts),
    field("slot-minutes", t("ce_minutes"), minutes), field("slot-places", t("ce_places"), places),
    status, el("button", { type: "submit", class: "primary", id: "slot-submit" }, t("ce_add")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const begin = new Date(`${starts.value}:00+08:00`);
    const body = { service: service.value, starts_at: `${starts.value}:00+08:00`, places: Number(places.value),
      ends_at: Number.isNaN(begin.getTime()) ? "" : new Date(begin.getTime() + Number(minutes.value) * 60_000).toISOString() };
    try {
      const answer = await callApi("/api/centre/slots", { method: "POST", body: JSON.stringify(body) });
      if (!answer.ok) throw new Error(reasonOf(answer));
      status.textContent = "";
      redraw();
    } catch (err) {
      status.textContent = err instanceof Unreachable ? t("needs_network") : String(err.message || err);
    }
  });
  return form;
}

export function centreDayView(app, date) {
  const day = /^\d{4}-\d{2}-\d{2}$/.test(date || "") ? date : today();
  const box = el("section", { id: "centre-day", "aria-busy": "true", "aria-live": "polite" }, el("p", { class: "meta" }, t("loading")));
  const formBox = el("section", { id: "centre-new-slot" });
  const picker = el("input", { type: "date", id: "centre-date", value: day });
  picker.addEventListener("change", () => { location.hash = `#/centre-day/${picker.value}`; });
  const fill = async () => {
    const answer = await callApi(`/api/centre/day?date=${day}`);
    if (!answer.ok) throw new Error(reasonOf(answer));
    const slots = answer.body.slots || [];
    if (!formBox.firstChild) formBox.append(slotForm(day, answer.body.provider.services, redraw));
    box.replaceChildren(el("p", { class: "meta", id: "centre-provider" }, answer.body.provider.name),
      slots.length ? el("ul", { class: "list", id: "centre-slots" }, slots.map((slot) => el("li", { "data-id": slot._id },
        el("p", { class: "main" }, `${time(slot.starts_at)}–${time(slot.ends_at)} · ${slot.service_name}`),
        el("p", { class: "meta" }, tf("ce_taken", { taken: slot.bookings.filter((b) => b.status !== "waiting").length, places: slot.places })),
        slot.bookings.length ? el("ul", { class: "list" }, slot.bookings.map((b) => bookingRow(slot, b, redraw))) :
          el("p", { class: "hint" }, t("ce_no_one")))))
        : el("p", { class: "empty", id: "centre-none" }, t("ce_day_none")));
  };
  const redraw = () => fill().catch((err) => {
    box.replaceChildren(el("p", { class: "error", role: "alert" },
      err instanceof Unreachable ? t("ce_day_offline") : String(err.message || err)));
  }).finally(() => box.setAttribute("aria-busy", "false"));
  redraw();
  return [
    backLink("#/"),
    heading(t("ce_day")),
    field("centre-date", t("ce_day_date"), picker),
    box,
    formBox,
  ];
}

// The supervisors' screen of the centre (`#/centre-overview`, supervisors and the admin,
// docs/centre.md): their communities' providers with their places booked in all and by week
// and service, and the activities with the places taken. Counts only, from
// GET /api/centre/overview: never who booked or signed up, never a matter (a lawyer's
// consultations are confidential: 保密, counted like the others).

export function centreOverviewLink(me) {
  return me && (me.role === "supervisor" || me.role === "admin")
    ? el("a", { href: "#/centre-overview", id: "centre-overview-link" }, t("ce_overview")) : null;
}

function weekLabel(monday) {
  const [y, m, d] = monday.split("-").map(Number);
  const sunday = new Date(Date.UTC(y, m - 1, d + 6));
  return tf("ce_week", { from: `${m}/${d}`, to: `${sunday.getUTCMonth() + 1}/${sunday.getUTCDate()}` });
}

function providerCard(p) {
  return el("li", { class: "card", "data-code": p.code, "data-confidential": String(p.confidential) },
    el("h3", {}, p.name, " ", el("span", { class: "chip" }, t(`ce_kind_${p.kind}`))),
    el("p", { class: "meta" }, tf("ce_overview_counts", { slots: p.slots, booked: p.booked, places: p.places })),
    p.confidential ? el("p", { class: "hint" }, t("ce_overview_confidential")) : null,
    p.weeks.length ? el("table", { class: "data co-weeks" },
      el("caption", { class: "hint" }, t("ce_overview_weeks")),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("ce_overview_week")),
        el("th", { scope: "col" }, t("ce_service")), el("th", { scope: "col" }, t("ce_overview_booked")))),
      el("tbody", {}, p.weeks.map((w) => el("tr", { "data-week": w.week, "data-service": w.service },
        el("td", {}, weekLabel(w.week)), el("td", {}, w.service_name),
        el("td", {}, `${w.booked} / ${w.places}`))))) : el("p", { class: "hint" }, t("ce_overview_no_slots")));
}

export function centreOverviewView() {
  const box = el("section", { id: "centre-overview", "aria-busy": "true", "aria-live": "polite" }, el("p", { class: "meta" }, t("loading")));
  (async () => {
    try {
      const answer = await callApi("/api/centre/overview");
      if (!answer.ok) throw new Error(reasonOf(answer));
      const { providers, activities } = answer.body;
      box.replaceChildren(
        el("h3", {}, t("ce_providers")),
        providers.length ? el("ul", { class: "cards", id: "co-providers" }, providers.map(providerCard))
          : el("p", { class: "empty" }, t("ce_none")),
        el("h3", {}, t("ce_activities")),
        activities.length ? el("ul", { class: "list", id: "co-activities" }, activities.map((a) => el("li", { "data-id": a._id },
          el("p", { class: "main" }, a.title),
          el("p", { class: "meta" }, `${cityTime(Date.parse(a.starts_at), { date: true })} · ${a.place || ""}${a.provider_name ? ` · ${a.provider_name}` : ""}`),
          el("p", { class: "meta" }, tf("ce_overview_signed", { taken: a.taken, places: a.places, waiting: a.waiting })))))
          : el("p", { class: "empty" }, t("ce_no_activities")));
    } catch (err) {
      box.replaceChildren(el("p", { class: "error", role: "alert", id: "co-offline" },
        err instanceof Unreachable ? t("ce_overview_offline") : String(err.message || err)));
    } finally {
      box.setAttribute("aria-busy", "false");
    }
  })();
  return [backLink("#/"), heading(t("ce_overview")), el("p", { class: "hint" }, t("ce_overview_intro")), box];
}
