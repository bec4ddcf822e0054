// Mutual aid (邻里互助, docs/mutual-aid.md): the listings of the resident's compound and
// community (拼车, 二手置换, 工具共享, 流动图书, 团购), read from GET /api/mutual-aid/listings and
// kept on the phone (a local document that never replicates) so the screens open offline and
// say how old their copy is. A claim or a group-buy order is queued on the phone (outbox.js)
// with its own claim id, kept for every retry, so the server counts it once however often it
// is sent; until the server has it the screen says 待发送. Seats and stock are decided by the
// server in the order it receives claims (docs/allocation.md); its answer comes back through
// the sync as the resident's `allocation` document. No neighbour's phone, name or unit is ever
// shown: contact goes through the app's messages.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { scaledPhoto } from "./reports.js";
import { backLink, heading } from "./ui.js";
import { randomHex, when } from "./votes.js";

const CACHE = "_local/linli-mutual-aid";
const KINDS = ["carpool", "swap", "tool", "book", "groupbuy"];

export function yuan(fen) {
  return `¥${(Number(fen || 0) / 100).toFixed(2)}`;
}

async function cache(app) {
  const r = app.resident;
  if (!r.aid) {
    try {
      const doc = await r.store.db.get(CACHE);
      r.aid = { list: doc.list || [], details: doc.details || {}, at: doc.at || 0, rev: doc._rev };
    } catch {
      r.aid = { list: [], details: {}, at: 0, rev: undefined };
    }
  }
  return r.aid;
}

async function keep(app, aid) {
  const { db } = app.resident.store;
  for (;;) {
    try {
      const res = await db.put({ _id: CACHE, _rev: aid.rev, list: aid.list, details: aid.details, at: aid.at });
      aid.rev = res.rev;
      return;
    } catch (err) {
      if (err.status !== 409) return;
      aid.rev = (await db.get(CACHE))._rev;
    }
  }
}

// Read again from the server when online (at most every 2 s), then redraw.
async function refresh(app, id = null) {
  const aid = await cache(app);
  if (!navigator.onLine || Date.now() - (aid.tried || 0) < 2000) return;
  aid.tried = Date.now();
  try {
    const listed = await callApi("/api/mutual-aid/listings?limit=50");
    if (!listed.ok) return;
    aid.list = listed.body.listings || [];
    if (id) {
      const one = await callApi(`/api/mutual-aid/listings/${encodeURIComponent(id)}`);
      if (one.ok) aid.details[id] = one.body;
      else if (one.status === 404) delete aid.details[id];
    }
    aid.at = Date.now();
    await keep(app, aid);
    app.resident.sync.dataChanged();
  } catch {
    // offline or slow: the phone's copy stays, with its time
  }
}

function copyLine(aid) {
  return el("p", { class: "hint", id: "ma-copy" },
    aid.at ? `${t("r_copy_of")}：${cityTime(aid.at, { date: true })}` : t("ma_never_read"));
}

function summary(listing) {
  if (listing.kind === "carpool") return `${listing.from} → ${listing.to} · ${when(listing.departs_at)} · ${tf("ma_seats_n", { n: listing.seats })}`;
  if (listing.kind === "swap") return listing.free ? t("ma_free") : tf("ma_wanted_x", { x: listing.wanted });
  if (listing.kind === "groupbuy") return `${listing.poster} · ${tf("ma_deadline_x", { time: when(listing.deadline) })}`;
  return tf("ma_loan_days_n", { n: listing.loan_days });
}

export async function aidView(app) {
  const aid = await cache(app);
  refresh(app);
  return [
    backLink("#/"),
    heading(t("ma_title")),
    el("p", { class: "hint" }, t("ma_privacy")),
    copyLine(aid),
    el("p", { class: "actions" }, el("a", { href: "#/aid-new", id: "ma-new-link", class: "button primary" }, t("ma_post")),
      el("a", { href: "#/aid-mine", id: "ma-mine-link", class: "button" }, t("ma_mine"))),
    aid.list.length ? el("ul", { class: "list", id: "ma-list" }, aid.list.map((listing) => el("li", { "data-id": listing._id },
      el("a", { href: `#/aid-item/${encodeURIComponent(listing._id)}` },
        el("span", { class: "main" }, listing.title),
        el("span", { class: "chip", "data-kind": listing.kind }, t(`ma_kind_${listing.kind}`)),
        el("span", { class: "meta" }, summary(listing)))))) :
      el("p", { class: "hint", id: "ma-none" }, t("ma_none")),
  ];
}

function claimItem(listing, what, extra = {}) {
  const part = extra.item ?? 0;
  return { kind: "mutualaid", key: `mutualaid:${listing._id}:${part}:${what}:${Date.now()}`,
    path: `/api/mutual-aid/listings/${encodeURIComponent(listing._id)}/${what}`,
    body: { claim_id: randomHex(12), ...extra }, shown: { listing: listing._id, part, act: what } };
}

// Where the resident stands on one part (a ride's seats, an item's stock): what waits in the
// outbox first, else the server's allocation as pulled.
function standing(app, listing, part) {
  const { store } = app.resident;
  const queued = store.outbox.items.filter((i) => i.kind === "mutualaid" && i.shown.listing === listing._id && i.shown.part === part);
  const last = queued[queued.length - 1];
  if (last?.refused) return { status: "refused", reason: message(last.refused.reason) };
  if (last) return { status: "pending" };
  const key = listing._id.replace(":", ".");
  const subject = listing.kind === "groupbuy" ? `${key}.i${part}` : `${key}.r${listing.round || 1}`;
  const decided = store.docs.get(`allocation:${subject}:${store.me.name}`);
  return decided ? { status: decided.status, line: decided.line } : null;
}

function standingText(state) {
  if (!state) return "";
  if (state.status === "refused") return `${t("v_refused")}：${state.reason}`;
  if (state.status === "waiting") return tf("v_waiting_line", { n: state.line });
  return t(`v_${state.status}`);
}

function partRow(app, listing, part, label) {
  const { sync } = app.resident;
  const state = standing(app, listing, part);
  const row = el("div", { class: "card ma-part", "data-part": String(part), "data-status": state?.status || "" },
    el("p", { class: "main" }, label),
    el("p", { class: "hint", role: "status" }, standingText(state)));
  if (listing.mine || listing.status !== "open") return row;
  const holds = state && ["confirmed", "awaiting_approval", "waiting", "pending"].includes(state.status);
  const extra = listing.kind === "groupbuy" ? { item: part, pickup: Number(document.getElementById("ma-pickup")?.value || 0) } : {};
  const button = el("button", { type: "button", class: holds ? "" : "primary", id: `ma-${holds ? "cancel" : "claim"}-${part}` },
    t(holds ? "v_cancel" : listing.kind === "groupbuy" ? "ma_order" : "ma_claim"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    const chosen = listing.kind === "groupbuy" ? { item: part, pickup: Number(document.getElementById("ma-pickup")?.value || 0) } : {};
    await sync.send(claimItem(listing, holds ? "cancel" : "claim", holds ? (listing.kind === "groupbuy" ? { item: part } : {}) : { ...extra, ...chosen }));
  });
  row.append(el("p", { class: "actions" }, button));
  return row;
}

function messagesBox(listing) {
  const list = el("ul", { class: "list", id: "ma-messages" });
  const text = el("textarea", { id: "ma-message", maxlength: "500", rows: "2" });
  const status = el("p", { class: "hint", role: "status", id: "ma-message-status" }, "");
  const form = el("form", { id: "ma-message-form" }, el("label", { for: "ma-message" }, t("ma_message")), text,
    el("button", { type: "submit" }, t("ma_send")), status);
  const load = async () => {
    const got = await callApi(`/api/mutual-aid/listings/${encodeURIComponent(listing._id)}/messages`).catch(() => null);
    if (!got?.ok) return;
    const threads = got.body.threads || [];
    list.replaceChildren(...threads.flatMap((th) => th.messages.map((m) => el("li", { class: m.mine ? "mine" : "", "data-thread": th.thread },
      el("span", { class: "meta" }, `${m.mine ? t("ma_me") : listing.mine ? t("ma_neighbour") : t("ma_poster")} · ${when(m.sent_at)}`),
      el("span", { class: "main" }, m.text)))));
    form.dataset.thread = threads[threads.length - 1]?.thread || "";
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { text: text.value, key: randomHex(8) };
    if (listing.mine) body.thread = form.dataset.thread;
    const sent = await callApi(`/api/mutual-aid/listings/${encodeURIComponent(listing._id)}/messages`,
      { method: "POST", body: JSON.stringify(body) }).catch(() => null);
    status.textContent = sent?.ok ? t("ma_sent") : message(sent?.body?.reason || t("offline"));
    if (sent?.ok) {
      text.value = "";
      load();
    }
  });
  load();
  return el("section", { class: "card", "aria-label": t("ma_message") }, el("h3", {}, t("ma_messages")), list, form);
}

export async function aidItemView(app, id) {
  const aid = await cache(app);
  refresh(app, id);
  const held = aid.details[id];
  const listing = held?.listing || aid.list.find((l) => l._id === id);
  if (!listing) return [backLink("#/aid"), heading(t("not_found"))];
  const parts = held?.parts || [];
  const rows = [];
  if (listing.kind === "groupbuy") {
    rows.push(el("label", { for: "ma-pickup" }, t("ma_pickup")),
      el("select", { id: "ma-pickup" }, (listing.pickup_points || []).map((p, n) => el("option", { value: String(n) }, p))));
    (listing.items || []).forEach((item, n) => rows.push(partRow(app, listing, n,
      `${item.name}（${item.unit}）${yuan(item.price_fen)} · ${tf("ma_left_n", { n: item.stock - (parts[n]?.taken || 0) })}`)));
  } else {
    const places = listing.kind === "carpool" ? listing.seats : 1;
    rows.push(partRow(app, listing, 0, tf("ma_left_n", { n: places - (parts[0]?.taken || 0) })));
  }
  return [
    backLink("#/aid", t("ma_title")),
    heading(listing.title),
    el("p", { class: "meta" }, `${t(`ma_kind_${listing.kind}`)} · ${listing.poster} · ${summary(listing)}`),
    listing.description ? el("article", { class: "notice-body" }, el("p", {}, listing.description)) : null,
    (listing.photos || []).length ? el("p", { class: "photos" }, listing.photos.map((name) => el("img", {
      alt: t("ma_photo"), width: "96", loading: "lazy",
      src: `/api/mutual-aid/listings/${encodeURIComponent(listing._id)}/photos/${encodeURIComponent(name)}` }))) : null,
    listing.mine && listing.kind === "groupbuy" ? el("p", {}, el("a", { href: `#/aid-pickups/${encodeURIComponent(listing._id)}`, id: "ma-pickups-link" }, t("ma_pickups"))) : null,
    ...rows,
    listing.mine && listing.kind !== "groupbuy" ? posterPanel(app, listing) : null,
    messagesBox(listing),
  ];
}

function actButton(id, label, onClick) {
  const b = el("button", { type: "button", id }, label);
  b.addEventListener("click", onClick);
  return b;
}

// One act sent at once (it needs the network): the answer in `status`, `after()` once taken.
async function sendAct(path, body, status, after) {
  const sent = await callApi(path, { method: "POST", body: JSON.stringify(body) }).catch(() => null);
  status.textContent = sent?.ok ? t("ma_done") : message(sent?.body?.reason || t("offline"));
  if (sent?.ok) after();
}

// What the poster does with those who claimed (each by an opaque key, never an account):
// accept or refuse the first asker of a swap or a loan, lend or hand over to one holding the
// place, confirm a loan's return. Each act goes to its route at once (it needs the network).
// The screen may be redrawn while an act is on its way (new data came), its new panel reading
// the claimants before the act lands: an act whose panel is gone when it is answered redraws
// the screen (the new panel reads them after the act), rather than reading them again into a
// panel no longer shown, which left the stale one showing.
function posterPanel(app, listing) {
  const list = el("ul", { class: "list", id: "ma-claimants" });
  const status = el("p", { class: "hint", role: "status", id: "ma-poster-status" }, "");
  const base = `/api/mutual-aid/listings/${encodeURIComponent(listing._id)}`;
  const after = () => (list.isConnected ? load() : app.resident.sync.dataChanged());
  const send = (path, body) => () => sendAct(`${base}/${path}`, body, status, after);
  const button = actButton;
  const opens = listing.kind === "tool" || listing.kind === "book" ? "lend" : "handover";
  const load = async () => {
    const got = await callApi(`${base}/claims`).catch(() => null);
    if (!got?.ok) return;
    list.replaceChildren(...got.body.claimants.map((c, n) => {
      const acts = [];
      if (c.status === "awaiting_approval") {
        acts.push(button(`ma-approve-${n}`, t("ma_approve"), send("decide", { with: c.with, approve: true, claim_id: randomHex(12) })),
          button(`ma-refuse-${n}`, t("ma_refuse"), send("decide", { with: c.with, approve: false, claim_id: randomHex(12) })));
      } else if (c.status === "confirmed" && !c.deal.handed_at) {
        acts.push(button(`ma-${opens}-${n}`, t(`ma_${opens}`), send("deal", { act: opens, with: c.with })));
      } else if (opens === "lend" && c.deal.handed_at && !c.deal.returned_owner_at) {
        acts.push(button(`ma-returned-${n}`, t("ma_return"), send("deal", { act: "return", with: c.with })));
      }
      return el("li", { "data-status": c.status },
        el("span", { class: "main" }, `${t("ma_neighbour")} ${c.with.slice(0, 4)}`),
        el("span", { class: "meta" }, standingText({ status: c.status, line: c.line })),
        c.deal.due_at ? el("span", { class: "meta" }, tf("ma_due_x", { time: when(c.deal.due_at) })) : null,
        acts.length ? el("p", { class: "actions" }, acts) : null);
    }));
  };
  load();
  return el("section", { class: "card", "aria-label": t("ma_claimants") }, el("h3", {}, t("ma_claimants")), list, status);
}

export async function aidPickupsView(app, id) {
  const got = await callApi(`/api/mutual-aid/listings/${encodeURIComponent(id)}/pickups`).catch(() => null);
  if (!got?.ok) return [backLink(`#/aid-item/${encodeURIComponent(id)}`), heading(t("ma_pickups")), el("p", { class: "hint" }, t("offline"))];
  return [
    backLink(`#/aid-item/${encodeURIComponent(id)}`),
    heading(t("ma_pickups")),
    ...got.body.points.map((point) => el("section", { class: "card", "data-point": point.point },
      el("h3", {}, `${point.point} · ${tf("ma_orders_n", { n: point.orders.length })}`),
      el("ul", { class: "list" }, point.orders.map((o) => el("li", { "data-code": o.code },
        el("span", { class: "main" }, `${t("ma_code")} ${o.code}`),
        el("span", { class: "meta" }, `${o.items.map((i) => i.name).join("、")} · ${yuan(o.total_fen)}`),
        el("span", { class: `chip ${o.picked_up ? "chip-visited" : "chip-waiting"}` }, o.picked_up ? tf("ma_paid_x", { x: yuan(o.paid_fen) }) : t("ma_not_collected")),
        o.picked_up ? null : collect(app, id, o)))))),
  ];
}

// Cash on pickup (货到付款): the supplier records the order collected and what was paid.
function collect(app, id, order) {
  const b = el("button", { type: "button", class: "primary", "data-code": order.code }, tf("ma_collect_x", { x: yuan(order.total_fen) }));
  b.addEventListener("click", async () => {
    b.disabled = true;
    const sent = await callApi(`/api/mutual-aid/listings/${encodeURIComponent(id)}/deal`, { method: "POST",
      body: JSON.stringify({ act: "pickup", with: order.with, paid_fen: order.total_fen }) }).catch(() => null);
    if (sent?.ok) app.resident.sync.dataChanged();
    else b.textContent = message(sent?.body?.reason || t("offline"));
  });
  return b;
}

// The form for one kind; sent at once (a listing is no claim: nothing is limited by it).
export function aidNewView(app) {
  const kind = el("select", { id: "ma-kind", name: "kind" }, KINDS.filter((k) => k !== "groupbuy").map((k) => el("option", { value: k }, t(`ma_kind_${k}`))));
  const field = (name, label, attrs = {}) => el("p", {}, el("label", { for: `ma-${name}` }, label), el("input", { id: `ma-${name}`, name, ...attrs }));
  const fields = el("div", { id: "ma-fields" });
  const photos = [];
  const draw = () => {
    const k = kind.value;
    fields.replaceChildren(
      k === "carpool" ? [field("from", t("ma_from")), field("to", t("ma_to")), field("departs_at", t("ma_departs"), { type: "datetime-local" }),
        field("seats", t("ma_seats"), { type: "number", min: "1", max: "8", value: "1" })] : [],
      k === "swap" ? [field("wanted", t("ma_wanted")), el("p", {}, el("label", {}, el("input", { type: "checkbox", id: "ma-free" }), t("ma_free")))] : [],
      ["tool", "book"].includes(k) ? [field("loan_days", t("ma_loan_days"), { type: "number", min: "1", max: "60", value: "7" })] : []);
  };
  kind.addEventListener("change", draw);
  draw();
  const status = el("p", { class: "hint", role: "status", id: "ma-new-status" }, "");
  const file = el("input", { id: "ma-photos", type: "file", accept: "image/*", multiple: true });
  file.addEventListener("change", async () => {
    for (const f of [...file.files].slice(0, 3 - photos.length)) photos.push(await scaledPhoto(f));
  });
  const form = el("form", { id: "ma-new-form", "data-keep": "1" },
    el("p", {}, el("label", { for: "ma-kind" }, t("ma_kind")), kind),
    field("title", t("ma_item_title"), { maxlength: "60" }),
    el("p", {}, el("label", { for: "ma-description" }, t("ma_description")), el("textarea", { id: "ma-description", rows: "3" })),
    el("p", {}, el("label", { for: "ma-scope" }, t("ma_scope")), el("select", { id: "ma-scope" },
      el("option", { value: "compound" }, t("ma_scope_compound")), el("option", { value: "community" }, t("ma_scope_community")))),
    fields, el("p", {}, el("label", { for: "ma-photos" }, t("ma_photos")), file),
    el("button", { type: "submit", class: "primary", id: "ma-submit" }, t("ma_post")), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (id) => document.getElementById(id)?.value;
    const body = { kind: kind.value, title: value("ma-title"), scope: value("ma-scope") };
    if (value("ma-description")) body.description = value("ma-description");
    if (body.kind === "carpool") {
      Object.assign(body, { from: value("ma-from"), to: value("ma-to"), seats: Number(value("ma-seats")),
        departs_at: value("ma-departs_at") ? new Date(value("ma-departs_at")).toISOString() : "" });
    } else if (body.kind === "swap") {
      if (document.getElementById("ma-free").checked) body.free = true;
      else body.wanted = value("ma-wanted");
    } else body.loan_days = Number(value("ma-loan_days"));
    if (photos.length) body.photos = photos.map((p) => ({ data: p.data }));
    const sent = await callApi("/api/mutual-aid/listings", { method: "POST", body: JSON.stringify(body) }).catch(() => null);
    if (sent?.ok) {
      location.hash = `#/aid-item/${encodeURIComponent(sent.body.listing._id)}`;
      (await cache(app)).list.unshift(sent.body.listing);
    } else status.textContent = message(sent?.body?.reason || t("offline"));
  });
  return [backLink("#/aid", t("ma_title")), heading(t("ma_post")), el("p", { class: "hint" }, t("ma_privacy")), form];
}

// The resident's own: their deals (a loan's due date, overdue in red, the return to confirm,
// the one rating each side gives) and their listings. Acts go to the deal route at once:
// they need the network, and the screen says so when it is not there.
export async function aidMineView(app) {
  const got = await callApi("/api/mutual-aid/mine").catch(() => null);
  if (!got?.ok) return [backLink("#/aid", t("ma_title")), heading(t("ma_mine")), el("p", { class: "hint" }, t("offline"))];
  const status = el("p", { class: "hint", role: "status", id: "ma-mine-status" }, "");
  const act = (deal, body) => () => sendAct(`/api/mutual-aid/listings/${encodeURIComponent(deal.listing)}/deal`,
    deal.side === "owner" ? { ...body, with: deal.with } : body, status, () => app.resident.sync.dataChanged());
  const button = actButton;
  const deals = got.body.deals || [];
  return [
    backLink("#/aid", t("ma_title")),
    heading(t("ma_mine")),
    status,
    el("h3", {}, t("ma_deals")),
    deals.length ? el("ul", { class: "list", id: "ma-deals" }, deals.map((deal, n) => el("li", {
      "data-listing": deal.listing, "data-overdue": String(deal.overdue) },
      el("span", { class: "main" }, deal.title || t(`ma_kind_${deal.kind}`)),
      deal.overdue ? el("span", { class: "chip chip-refused" }, t("ma_overdue")) : null,
      el("span", { class: "meta" }, [deal.due_at ? tf("ma_due_x", { time: when(deal.due_at) }) : "",
        deal.completed_at ? t("ma_completed") : ""].filter(Boolean).join(" · ")),
      ["tool", "book"].includes(deal.kind) && deal.handed_at && !deal[`returned_${deal.side}_at`] ?
        button(`ma-return-${n}`, t("ma_return"), act(deal, { act: "return" })) : null,
      deal.completed_at && !(deal.ratings || {})[deal.side] ?
        el("p", { class: "actions" }, [1, 2, 3, 4, 5].map((stars) =>
          button(`ma-rate-${n}-${stars}`, "★".repeat(stars), act(deal, { act: "rate", stars })))) : null))) :
      el("p", { class: "hint" }, t("ma_no_deals")),
    el("h3", {}, t("ma_my_listings")),
    el("ul", { class: "list", id: "ma-my-listings" }, (got.body.listings || []).map((l) => el("li", { "data-id": l._id },
      el("a", { href: `#/aid-item/${encodeURIComponent(l._id)}` }, el("span", { class: "main" }, l.title),
        l.hidden_reason ? el("span", { class: "chip chip-refused" }, tf("ma_hidden_x", { x: l.hidden_reason })) : null)))),
  ];
}
