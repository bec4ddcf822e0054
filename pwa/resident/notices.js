// The resident's notices (公告/通知), offline: the list (pinned first, unread marked, expired ones
// apart) and a notice in full, its body as plain text in paragraphs (never HTML) and its images
// from the phone's copy. Opening a notice writes the resident's read receipt on the phone; a
// notice that asks for it (须确认) gets a confirm button, and the confirmation is kept once
// given. Receipts wait on the phone until the server has them, and the screen says so.

import { el } from "../dom.js";
import { cityTime, message, pick, t, tf } from "../i18n.js";
import { expired } from "./store.js";
import { backLink, heading, latestOf } from "./ui.js";

function levelLabel(schemas, level) {
  const prop = latestOf(schemas, "notice").properties?.audience?.properties?.level || {};
  return pick((prop["x-enum-labels"] || {})[level] || level);
}

function when(value) {
  const ms = Date.parse(value || "");
  return Number.isNaN(ms) ? "" : cityTime(ms, { date: true });
}

function noticeItem(app, notice) {
  const { store } = app.resident;
  const receipt = store.receipt(notice._id);
  const chips = [
    notice.pinned ? el("span", { class: "chip chip-pinned" }, t("r_pinned")) : null,
    receipt || expired(notice) ? null : el("span", { class: "chip chip-unread" }, t("r_unread")),
    notice.needs_confirmation ? el("span", { class: `chip ${receipt?.confirmed_at ? "chip-visited" : "chip-waiting"}` },
      t(receipt?.confirmed_at ? "r_confirmed" : "r_please_confirm")) : null,
  ];
  return el("li", { class: receipt ? "notice-item read" : "notice-item unread", "data-id": notice._id },
    el("a", { href: `#/notice/${encodeURIComponent(notice._id)}` },
      el("span", { class: "main" }, notice.title), ...chips,
      el("span", { class: "meta" }, when(notice.published_at))));
}

export function noticesView(app) {
  const notices = app.resident.store.notices();
  const current = notices.filter((n) => !expired(n));
  const past = notices.filter((n) => expired(n));
  const unread = app.resident.store.unread();
  return [
    backLink("#/"),
    heading(t("r_notices")),
    el("p", { class: "hint", id: "r-notices-count", role: "status" },
      notices.length ? tf("r_notices_count", { n: notices.length, unread }) : t("r_no_notices")),
    current.length ? el("ul", { class: "list notices", id: "r-notices" }, current.map((n) => noticeItem(app, n))) : null,
    past.length ? el("section", { "aria-label": t("r_expired_notices") },
      el("h3", {}, t("r_expired_notices")),
      el("ul", { class: "list notices expired" }, past.map((n) => noticeItem(app, n)))) : null,
  ];
}

// The body as the author wrote it: a paragraph per blank-line-separated block, lines kept.
function paragraphs(body) {
  return String(body || "").split(/\n\s*\n/).filter((p) => p.trim()).map((p) => {
    const lines = p.split("\n");
    return el("p", {}, lines.flatMap((line, i) => (i ? [el("br"), line] : [line])));
  });
}

async function images(app, notice) {
  const names = Object.keys(notice._attachments || {}).slice(0, 3);
  const shown = [];
  for (const [i, name] of names.entries()) {
    try {
      const blob = await app.resident.store.db.getAttachment(notice._id, name);
      shown.push(el("img", { src: URL.createObjectURL(blob), alt: tf("r_image_n", { n: i + 1, title: notice.title }),
        class: "notice-image", loading: "lazy" }));
    } catch {
      shown.push(el("p", { class: "hint" }, t("r_image_not_here")));
    }
  }
  return shown;
}

// A read or a confirmation, for the server's receipt route; one per notice on the phone, a
// confirmation taking the place of a read not yet sent.
function receiptItem(notice, confirmed) {
  const now = new Date().toISOString();
  return { kind: "receipt", key: `receipt:${notice._id}`, replaces: confirmed,
    path: `/api/notices/${encodeURIComponent(notice._id)}/receipt`, body: confirmed ? { confirmed: true } : {},
    shown: { read_at: now, confirmed_at: confirmed ? now : undefined } };
}

export async function noticeView(app, id) {
  const { store, sync } = app.resident;
  const notice = store.docs.get(id);
  if (!notice || notice.type !== "notice") return [backLink("#/notices"), heading(t("not_found"))];
  const past = expired(notice);
  if (!store.receipt(id) && !past) await sync.send(receiptItem(notice, false));
  let receipt = store.receipt(id);
  const status = el("p", { class: "hint", id: "r-receipt", role: "status", "data-waiting": receipt?.waiting ? "1" : null });
  const confirmBox = el("div", { class: "actions" });
  const showReceipt = () => {
    const waiting = Boolean(receipt?.waiting);
    status.dataset.waiting = waiting ? "1" : "";
    if (receipt?.refused) {
      status.textContent = `${t("r_receipt_refused")}：${message(receipt.refused.reason)}`;
    } else if (notice.needs_confirmation && receipt?.confirmed_at) {
      status.textContent = tf(waiting ? "r_confirmed_waiting" : "r_confirmed_at", { time: when(receipt.confirmed_at) });
      confirmBox.replaceChildren();
    } else {
      status.textContent = receipt ? t(waiting ? "r_read_waiting" : "r_read") : "";
    }
  };
  if (notice.needs_confirmation && !receipt?.confirmed_at && !past) {
    const button = el("button", { type: "button", class: "primary", id: "r-confirm" }, t("r_confirm"));
    button.addEventListener("click", async () => {
      button.disabled = true;
      await sync.send(receiptItem(notice, true));
      receipt = store.receipt(id);
      showReceipt();
    });
    confirmBox.append(button);
  }
  showReceipt();
  const level = notice.audience?.level;
  return [
    backLink("#/notices", t("r_notices")),
    heading(notice.title),
    el("p", { class: "meta" },
      [when(notice.published_at), level ? levelLabel(app.schemas, level) : "",
        notice.expires_at ? tf("r_expires", { time: when(notice.expires_at) }) : ""].filter(Boolean).join(" · ")),
    notice.needs_confirmation ? el("p", { class: "chip chip-waiting" }, t("r_please_confirm")) : null,
    el("article", { class: "notice-body" }, paragraphs(notice.body)),
    ...(await images(app, notice)),
    confirmBox,
    status,
  ];
}
