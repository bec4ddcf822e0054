// Problem reports (问题上报), offline: the resident's own reports and where each one is, and a
// form to report one with up to 3 photos. Photos are scaled on the phone to at most 1600 px
// and about 300 KB of JPEG by a canvas, which also leaves their EXIF (GPS position included)
// behind, before anything is queued. A report is queued in the outbox (outbox.js) with the
// phone's own request id, kept for every retry, so the server stores it once however often it
// is sent; until the server has it the screen says 待发送. The server's report, its steps and
// its status come back through the sync (filed under the reporter: nobody else's phone).

import { el } from "../dom.js";
import { callApi } from "../api.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { backLink, heading } from "./ui.js";

const MAX_SIDE = 1600;
const TARGET_BYTES = 300 * 1024;
export const MAX_PHOTOS = 3;
const CATEGORIES = "linli-report-categories";
const STATE_CHIP = { submitted: "chip-waiting", accepted: "chip-waiting", dispatched: "chip-waiting",
  in_progress: "chip-waiting", done: "chip-visited", closed: "chip-visited" };

// The phone's id for a report or a step: kept for every retry, so the server stores it once.
const requestId = () => crypto.randomUUID().replaceAll("-", "");
const when = (value) => (Date.parse(value || "") ? cityTime(Date.parse(value), { date: true }) : "");

// The categories as the server offers them, kept on the phone for offline use.
export async function categories() {
  try {
    const reply = await callApi("/api/reports/categories");
    if (reply.ok) localStorage.setItem(CATEGORIES, JSON.stringify(reply.body));
  } catch { /* offline: the kept copy */ }
  return kept();
}

function kept() {
  try {
    return JSON.parse(localStorage.getItem(CATEGORIES)) || { categories: [], states: [] };
  } catch {
    return { categories: [], states: [] };
  }
}

function label(list, code) {
  const found = list.find((c) => c.code === code);
  return found ? message(`${found.zh} / ${found.en}`) : code;
}

function stateLabel(code) {
  return t(`rp_state_${code}`);
}

// A photo scaled by a canvas: at most MAX_SIDE px on its longer side, JPEG at the quality that
// brings it within TARGET_BYTES (smaller still when no quality does); the canvas keeps pixels
// only, so no EXIF leaves the phone.
export async function scaledPhoto(file) {
  const bitmap = await createImageBitmap(file);
  let side = Math.min(MAX_SIDE, Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  let blob = null;
  // Quality first; a photo still too heavy at the lowest (fine detail, noise) gets smaller.
  while (!blob || blob.size > TARGET_BYTES) {
    const scale = side / Math.max(bitmap.width, bitmap.height);
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    for (const quality of [0.85, 0.75, 0.65, 0.55, 0.45]) {
      blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
      if (blob.size <= TARGET_BYTES) break;
    }
    if (side <= 320) break;
    side = Math.round(side * 0.8);
  }
  bitmap.close?.();
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { data: btoa(text), size: bytes.length, width: canvas.width, height: canvas.height };
}

// A file input (`id`) that adds up to MAX_PHOTOS photos, each scaled (`scaledPhoto`), to
// `photos`, and the line that says how many (`data-sizes`: each one's pixels and bytes).
export function photoInput(id, photos) {
  const picked = el("p", { class: "hint", id: `${id}-picked`, role: "status" },
    photos.length ? tf("rp_photos_n", { n: photos.length }) : "");
  const file = el("input", { id, type: "file", accept: "image/*", multiple: true });
  file.addEventListener("change", async () => {
    for (const f of [...file.files].slice(0, MAX_PHOTOS - photos.length)) {
      try {
        photos.push(await scaledPhoto(f));
      } catch {
        picked.textContent = t("rp_photo_unreadable");
        return;
      }
    }
    file.value = "";
    picked.textContent = tf("rp_photos_n", { n: photos.length });
    picked.dataset.sizes = photos.map((p) => `${p.width}x${p.height}:${p.size}`).join(",");
  });
  return [file, picked];
}

// The resident's reports: the server's (pulled) and those still in the outbox (待发送).
export function myReports(store) {
  const sent = [...store.docs.values()].filter((d) => d.type === "report")
    .map((r) => ({ id: r._id, category: r.category, description: r.description, at: r.submitted_at,
      state: store.docs.get(`report_status:${r._id.slice("report:".length)}`)?.state || "submitted" }));
  const queued = store.outbox.items.filter((i) => i.kind === "report")
    .map((i) => ({ id: "", request: i.body.request, category: i.body.category, description: i.body.description,
      at: new Date(i.at).toISOString(), state: i.refused ? "refused" : "queued",
      reason: i.refused ? message(i.refused.reason) : "" }));
  return [...queued, ...sent].sort((a, b) => String(b.at).localeCompare(String(a.at)));
}

function chip(item) {
  const cls = item.state === "refused" ? "chip-refused" : STATE_CHIP[item.state] || "chip-waiting";
  const text = item.state === "queued" ? t("rp_queued")
    : item.state === "refused" ? `${t("rp_refused")}：${item.reason}` : stateLabel(item.state);
  return el("span", { class: `chip ${cls}`, "data-state": item.state }, text);
}

export function reportsView(app) {
  const { store } = app.resident;
  const list = myReports(store);
  const { categories: cats } = kept();
  if (!cats.length) categories();
  return [
    backLink("#/"),
    heading(t("rp_reports")),
    el("p", { class: "actions" }, el("a", { href: "#/report-new", id: "rp-new", class: "button primary" }, t("rp_new"))),
    el("p", { class: "hint", role: "status", id: "rp-count" }, list.length ? tf("rp_count", { n: list.length }) : t("rp_none")),
    list.length ? el("ul", { class: "list reports", id: "rp-list" }, list.map((item) => el("li",
      { "data-id": item.id, "data-request": item.request || "" },
      el(item.id ? "a" : "span", item.id ? { href: `#/report/${encodeURIComponent(item.id)}` } : {},
        el("span", { class: "main" }, label(cats, item.category)),
        chip(item),
        el("span", { class: "meta" }, `${when(item.at)} · ${item.description.slice(0, 40)}`))))) : null,
  ];
}

export function newReportView(app) {
  const { sync } = app.resident;
  const { categories: cats } = kept();
  const photos = [];
  const select = el("select", { id: "rp-category", name: "category", required: true },
    cats.map((c) => el("option", { value: c.code }, message(`${c.zh} / ${c.en}`))));
  const description = el("textarea", { id: "rp-description", name: "description", required: true, maxlength: 1000, rows: 4 });
  const spot = el("input", { id: "rp-spot", name: "spot", maxlength: 60 });
  const anonymous = el("input", { id: "rp-anonymous", type: "checkbox", name: "anonymous" });
  const anonRow = el("label", { class: "choice", id: "rp-anonymous-row" }, anonymous, t("rp_anonymous"));
  const showAnon = () => {
    const allowed = cats.find((c) => c.code === select.value)?.anonymous_allowed;
    anonRow.hidden = !allowed;
    if (!allowed) anonymous.checked = false;
  };
  select.addEventListener("change", showAnon);
  showAnon();
  const [file, picked] = photoInput("rp-photos", photos);
  const field = (id, text, control) => el("div", { class: "field" }, el("label", { for: id }, text), control);
  const form = el("form", { id: "rp-form", class: "record-form", "data-keep": "" },
    field("rp-category", t("rp_category"), select),
    field("rp-description", t("rp_description"), description),
    field("rp-spot", t("rp_spot"), spot),
    anonRow,
    field("rp-photos", tf("rp_photos", { n: MAX_PHOTOS }), file), picked,
    el("p", { class: "hint" }, t("rp_privacy")),
    el("button", { type: "submit", class: "primary", id: "rp-submit" }, t("rp_submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const request = requestId();
    const body = { category: select.value, description: description.value.trim(), request };
    if (spot.value.trim()) body.spot = spot.value.trim();
    if (anonymous.checked) body.anonymous = true;
    if (photos.length) body.photos = photos.map((p) => ({ data: p.data }));
    form.querySelector("button[type=submit]").disabled = true;
    await sync.send({ kind: "report", key: `report:${request}`, path: "/api/reports", body,
      shown: { request } });
    description.value = "";
    location.hash = "#/reports";
  });
  return [backLink("#/reports", t("rp_reports")), heading(t("rp_new")), form];
}

function step(report, status, to, extra = {}) {
  const request = requestId();
  return { kind: "report-step", key: `report-step:${request}`,
    path: `/api/reports/${encodeURIComponent(report._id)}/steps`,
    body: { from: status.state, to, round: status.round || 0, request, ...extra },
    shown: { report: report._id, to } };
}

// A step's "after" photos (办理后照片), from the phone's copy (they come with the step through
// the sync), shown as they load.
function afterPhotos(store, step) {
  const names = Object.keys(step._attachments || {}).sort();
  if (!names.length) return null;
  const box = el("span", { class: "after-photos" });
  (async () => {
    for (const [i, name] of names.entries()) {
      try {
        const blob = await store.db.getAttachment(step._id, name);
        box.append(el("img", { src: URL.createObjectURL(blob), class: "notice-image", "data-name": name,
          alt: tf("rp_after_n", { n: i + 1 }) }));
      } catch {
        box.append(el("span", { class: "hint" }, t("r_image_not_here")));
      }
    }
  })();
  return box;
}

export function reportView(app, id) {
  const { store, sync } = app.resident;
  const report = store.docs.get(id);
  if (!report || report.type !== "report") return [backLink("#/reports"), heading(t("not_found"))];
  const key = id.slice("report:".length);
  const status = store.docs.get(`report_status:${key}`) || { state: "submitted", round: 0 };
  const steps = [...store.docs.values()].filter((d) => d.type === "report_step" && d.report === id)
    .sort((a, b) => String(a.at).localeCompare(String(b.at)));
  const queued = store.outbox.items.filter((i) => i.kind === "report-step" && i.shown.report === id);
  const { categories: cats } = kept();
  const actions = el("div", { class: "actions", id: "rp-actions" });
  if (status.state === "done" && !queued.length) {
    const rating = el("select", { id: "rp-rating" }, [5, 4, 3, 2, 1].map((n) => el("option", { value: n }, `${n} ★`)));
    const comment = el("input", { id: "rp-comment", maxlength: 200 });
    const close = el("button", { type: "button", class: "primary", id: "rp-close" }, t("rp_confirm"));
    close.addEventListener("click", async () => {
      close.disabled = true;
      await sync.send(step(report, status, "closed", { rating: Number(rating.value),
        ...(comment.value.trim() ? { comment: comment.value.trim() } : {}) }));
    });
    actions.append(el("div", { class: "field" }, el("label", { for: "rp-rating" }, t("rp_rating")), rating),
      el("div", { class: "field" }, el("label", { for: "rp-comment" }, t("rp_comment")), comment), close);
    if (!(status.round >= 1)) {
      const reopen = el("button", { type: "button", id: "rp-reopen" }, t("rp_reopen"));
      reopen.addEventListener("click", async () => {
        reopen.disabled = true;
        await sync.send(step(report, status, "in_progress", comment.value.trim() ? { comment: comment.value.trim() } : {}));
      });
      actions.append(reopen);
    }
  }
  return [
    backLink("#/reports", t("rp_reports")),
    heading(label(cats, report.category)),
    el("p", { id: "rp-state", "data-state": status.state }, chip({ state: status.state })),
    el("article", { class: "notice-body" }, el("p", {}, report.description)),
    el("ol", { class: "list steps", id: "rp-steps" }, steps.map((s) => el("li", { "data-to": s.to },
      `${when(s.at)} · ${stateLabel(s.to)}${s.note ? ` · ${s.note}` : ""}`, afterPhotos(store, s)))),
    queued.map((i) => el("p", { class: "hint" }, i.refused ? `${t("rp_refused")}：${message(i.refused.reason)}` : t("rp_queued"))),
    actions,
  ];
}
