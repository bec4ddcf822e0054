// Notices (公告): the supervisor's list, authoring screen (audience picked by names, images with
// upload progress, a preview as residents will see it) and follow-up by grid; the grid worker's
// list of households to visit for notices that ask to be confirmed. The notices live on the
// server (server/web/notices.py), so authoring and follow-up need the network and say so. The
// worker's list is kept on the phone (a _local document of the grid's database, never
// replicated, gone with the grid) and shown offline with the time it was fetched.

import { callApi, Unreachable } from "./api.js";
import { el } from "./dom.js";
import { formatTime, message, t, tf } from "./i18n.js";

const AUTHORS = new Set(["supervisor", "admin"]);
const LEVELS = ["city", "street", "community", "grid", "building"];
const PLURAL = { street: "streets", community: "communities", grid: "grids" }; // /api/notices/areas
const TAGS = ["elderly_alone", "hardship", "disability", "health_needs", "owner", "tenant"];
const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];
const MAX_IMAGES = 3;
const MAX_IMAGE_BYTES = 512 * 1024;
const MAX_SIDE = 1600; // a photo larger than the limit is scaled to this and made a JPEG
const VISITS_DOC = "_local/notice-visits";

// The one check of who does what with notices.
export function canAuthorNotices(me) {
  return Boolean(me) && AUTHORS.has(me.role);
}

export function followsUpNotices(me) {
  return Boolean(me) && me.role === "worker";
}

export function noticesLink(me) {
  if (canAuthorNotices(me)) return el("a", { href: "#/notices", id: "notices-link" }, t("notices"));
  if (followsUpNotices(me)) return el("a", { href: "#/notices", id: "notices-link" }, t("notice_visits"));
  return null;
}

// `#/notices`, `#/notices/new`, `#/notices/follow/<id>`.
export function noticesView(app, what, id) {
  if (followsUpNotices(app.me)) return visitsView(app);
  if (!canAuthorNotices(app.me)) return [el("p", { class: "empty" }, t("not_found"))];
  if (what === "new") return authorView(app);
  if (what === "follow" && id) return followUpView(app, id);
  return listView(app);
}

function title(text) {
  return el("h2", { class: "view-title", tabindex: "-1" }, text);
}

function reasonOf(answer) {
  return message(answer.body.reason || answer.body.error || String(answer.status));
}

// A box whose content comes from the server: busy while asked, then filled, or a plain word
// on what went wrong (no network, the server's refusal).
function loading(id, fill) {
  const box = el("section", { id, "aria-busy": "true", "aria-live": "polite" }, el("p", { class: "meta" }, t("loading")));
  fill(box).catch((err) => {
    box.replaceChildren(el("p", { class: "error", role: "alert" },
      err instanceof Unreachable ? t("needs_network") : String(err)));
  }).finally(() => box.setAttribute("aria-busy", "false"));
  return box;
}

function levelWord(level) {
  return t(`level_${level}`);
}

// --- the list --------------------------------------------------------------------------------

function listView(app) {
  return [
    title(t("notices")),
    el("div", { class: "actions" }, el("a", { href: "#/notices/new", id: "notice-new", class: "button" }, t("notice_new"))),
    loading("notice-list", async (box) => {
      const answer = await callApi("/api/notices");
      if (!answer.ok) throw new Error(reasonOf(answer));
      const notices = answer.body.notices || [];
      if (!notices.length) {
        box.replaceChildren(el("p", { class: "empty" }, t("no_notices")));
        return;
      }
      box.replaceChildren(el("ul", { class: "list" }, notices.map((n) => noticeRow(app, n))));
    }),
  ];
}

function noticeRow(app, n) {
  const chips = [
    n.status === "withdrawn" && el("span", { class: "chip chip-refused" }, t("withdrawn")),
    n.pinned && el("span", { class: "chip" }, t("pinned")),
    n.needs_confirmation && el("span", { class: "chip chip-waiting" }, t("needs_confirmation")),
  ];
  const counts = n.needs_confirmation ? tf("read_confirmed", { read: n.read, confirmed: n.confirmed })
    : tf("read_count", { read: n.read });
  const row = el("li", { "data-notice": n._id },
    el("a", { href: `#/notices/follow/${encodeURIComponent(n._id)}` },
      el("span", { class: "main" }, n.title), ...chips,
      el("span", { class: "meta" }, `${formatTime(Date.parse(n.published_at))} · ${counts}`)));
  if (n.status === "published") {
    const button = el("button", { type: "button", class: "withdraw", "aria-label": `${t("withdraw")}：${n.title}` }, t("withdraw"));
    button.addEventListener("click", async () => {
      if (!window.confirm(t("withdraw_confirm"))) return;
      button.disabled = true;
      try {
        const answer = await callApi(`/api/notices/${encodeURIComponent(n._id)}/withdraw`, { method: "POST", body: "{}" });
        app.flash(answer.ok ? t("withdrawn") : reasonOf(answer));
      } catch {
        app.flash(t("needs_network"));
      }
      location.hash = "#/notices";
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    });
    row.append(el("div", { class: "row-actions" }, button));
  }
  return row;
}

// --- authoring -------------------------------------------------------------------------------

function field(id, label, control, hint) {
  return el("div", { class: "field" }, el("label", { for: id }, label), control,
    hint ? el("p", { class: "meta", id: `${id}-hint` }, hint) : null);
}

function checkbox(id, label, value, name) {
  return el("label", { class: "choice", for: id }, el("input", { type: "checkbox", id, value, name }), " ", label);
}

function authorView(app) {
  const state = { areas: null, images: [] };
  const status = el("p", { class: "error form-status", role: "alert", id: "notice-status" });
  const titleInput = el("input", { type: "text", id: "notice-title", maxlength: "60", autocomplete: "off", required: true });
  const body = el("textarea", { id: "notice-body", rows: "8", maxlength: "5000", required: true, "aria-describedby": "notice-body-hint" });
  const level = el("select", { id: "notice-level" });
  const codes = el("fieldset", { class: "choices", id: "notice-codes" }, el("legend", {}, t("audience_which")));
  const gridPick = el("select", { id: "notice-building-grid" });
  const gridPickField = field("notice-building-grid", t("building_grid"), gridPick);
  gridPickField.hidden = true;
  const tags = el("fieldset", { class: "choices", id: "notice-tags" }, el("legend", {}, t("audience_tags")),
    TAGS.map((tag) => checkbox(`notice-tag-${tag}`, t(`tag_${tag}`), tag, "tags")));
  const pinned = checkbox("notice-pinned", t("pinned"), "1");
  const confirm = checkbox("notice-confirm", t("needs_confirmation"), "1");
  const expires = el("input", { type: "datetime-local", id: "notice-expires" });
  const files = el("input", { type: "file", id: "notice-images", accept: IMAGE_TYPES.join(","), multiple: true, "aria-describedby": "notice-images-hint" });
  const imageList = el("ul", { class: "image-list", id: "notice-image-list" });
  const progress = el("progress", { id: "notice-progress", max: "100", value: "0", hidden: true, "aria-label": t("uploading") });
  const preview = el("section", { id: "notice-preview", class: "card notice-preview", hidden: true, "aria-label": t("preview") });
  const previewButton = el("button", { type: "button", id: "notice-preview-button" }, t("preview"));
  const submit = el("button", { type: "submit", class: "primary", id: "notice-publish" }, t("publish"));

  const fillCodes = async () => {
    const chosen = level.value;
    gridPickField.hidden = chosen !== "building";
    let options = [];
    if (chosen === "building") {
      const grid = gridPick.value;
      if (grid) {
        const answer = await callApi(`/api/notices/areas?grid=${encodeURIComponent(grid)}`);
        options = answer.ok ? answer.body.buildings : [];
      }
    } else if (chosen !== "city") options = state.areas[PLURAL[chosen]] || [];
    codes.hidden = chosen === "city";
    codes.replaceChildren(el("legend", {}, t("audience_which")),
      ...(options.length ? options.map((o, i) => checkbox(`notice-code-${i}`, o.name, o.code, "codes"))
        : [el("p", { class: "meta" }, t("audience_none"))]));
  };
  level.addEventListener("change", () => fillCodes().catch(() => { status.textContent = t("needs_network"); }));
  gridPick.addEventListener("change", () => fillCodes().catch(() => { status.textContent = t("needs_network"); }));

  files.addEventListener("change", async () => {
    status.textContent = "";
    for (const file of files.files) {
      if (state.images.length >= MAX_IMAGES) {
        status.textContent = tf("images_at_most", { n: MAX_IMAGES });
        break;
      }
      const problem = IMAGE_TYPES.includes(file.type) ? "" : t("image_type");
      if (problem) {
        status.textContent = `${file.name}：${problem}`;
        continue;
      }
      const blob = file.size > MAX_IMAGE_BYTES ? await scaled(file) : file;
      if (!blob || blob.size > MAX_IMAGE_BYTES) {
        status.textContent = `${file.name}：${tf("image_too_big", { kb: MAX_IMAGE_BYTES / 1024 })}`;
        continue;
      }
      const name = blob === file ? file.name : file.name.replace(/\.[^.]*$/, "") + ".jpg";
      state.images.push({ name: safeName(name, state.images.length), blob, url: URL.createObjectURL(blob) });
    }
    files.value = "";
    showImages();
  });
  const showImages = () => {
    imageList.replaceChildren(...state.images.map((image, i) => {
      const remove = el("button", { type: "button", "aria-label": `${t("remove_image")}：${image.name}` }, t("remove_image"));
      remove.addEventListener("click", () => {
        URL.revokeObjectURL(image.url);
        state.images.splice(i, 1);
        showImages();
      });
      return el("li", {}, el("img", { src: image.url, alt: image.name, class: "thumb" }),
        el("span", { class: "meta" }, `${image.name} · ${Math.ceil(image.blob.size / 1024)} KB`), remove);
    }));
  };

  const collect = () => {
    const audience = { level: level.value };
    if (level.value !== "city") audience.codes = [...codes.querySelectorAll("input:checked")].map((i) => i.value);
    const chosenTags = [...tags.querySelectorAll("input:checked")].map((i) => i.value);
    if (chosenTags.length) audience.tags = chosenTags;
    const draft = { title: titleInput.value, body: body.value, audience,
      pinned: pinned.querySelector("input").checked, needs_confirmation: confirm.querySelector("input").checked };
    if (expires.value) draft.expires_at = new Date(expires.value).toISOString();
    return draft;
  };
  const audienceText = (draft) => {
    const names = [...codes.querySelectorAll("input:checked")].map((i) => i.labels[0].textContent.trim());
    const tagNames = (draft.audience.tags || []).map((tag) => t(`tag_${tag}`));
    return [levelWord(draft.audience.level), names.join("、"), tagNames.length && `（${tagNames.join("、")}）`]
      .filter(Boolean).join(" ");
  };
  previewButton.addEventListener("click", () => {
    const draft = collect();
    preview.hidden = false;
    preview.replaceChildren(
      el("h3", {}, draft.title || "—"),
      el("p", { class: "meta" }, [draft.pinned && t("pinned"), draft.needs_confirmation && t("needs_confirmation"),
        `${t("audience")}：${audienceText(draft)}`].filter(Boolean).join(" · ")),
      ...paragraphs(draft.body).map((p) => el("p", { class: "notice-paragraph" }, p)),
      ...state.images.map((image) => el("img", { src: image.url, alt: image.name, class: "notice-image" })));
    preview.focus?.();
  });

  const form = el("form", { class: "record-form", id: "notice-form", novalidate: "", "aria-labelledby": "notice-form-title" },
    field("notice-title", t("notice_title"), titleInput),
    field("notice-body", t("notice_body"), body, t("notice_body_hint")),
    field("notice-level", t("audience"), level),
    gridPickField, codes, tags,
    el("div", { class: "choices" }, pinned, confirm),
    field("notice-expires", t("expires_at"), expires),
    field("notice-images", t("images"), files, tf("images_hint", { n: MAX_IMAGES, kb: MAX_IMAGE_BYTES / 1024 })),
    imageList, progress, preview, status,
    el("div", { class: "form-actions" }, previewButton, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const draft = collect();
    const missing = !draft.title.trim() ? t("notice_title") : !draft.body.trim() ? t("notice_body")
      : (draft.audience.codes && !draft.audience.codes.length) ? t("audience") : "";
    if (missing) {
      status.textContent = tf("fill_in", { field: missing });
      return;
    }
    submit.disabled = true;
    status.textContent = t("publishing");
    try {
      draft.images = await Promise.all(state.images.map(async (image) => ({
        name: image.name, content_type: image.blob.type, data: await base64(image.blob) })));
      if (!draft.images.length) delete draft.images;
      const answer = await upload(JSON.stringify(draft), progress);
      if (answer.status === 201) {
        app.flash(t("published"));
        location.hash = `#/notices/follow/${encodeURIComponent(answer.body.notice._id)}`;
        return;
      }
      status.textContent = answer.status === 0 ? t("needs_network") : reasonOf(answer);
    } finally {
      submit.disabled = false;
      progress.hidden = true;
    }
  });

  const holder = loading("notice-author", async (box) => {
    const answer = await callApi("/api/notices/areas");
    if (!answer.ok) throw new Error(reasonOf(answer));
    state.areas = answer.body;
    const levels = LEVELS.filter((l) => l !== "city" || state.areas.city)
      .filter((l) => l !== "street" || state.areas.streets.length);
    level.replaceChildren(...levels.map((l) => el("option", { value: l }, levelWord(l))));
    level.value = levels.includes("community") ? "community" : levels[0];
    gridPick.replaceChildren(...state.areas.grids.map((g) => el("option", { value: g.code }, g.name)));
    await fillCodes();
    box.replaceChildren(form);
  });
  return [el("p", { class: "crumbs" }, el("a", { href: "#/notices", class: "back" }, t("notices"))),
    el("h2", { class: "view-title", id: "notice-form-title", tabindex: "-1" }, t("notice_new")), holder];
}

function paragraphs(text) {
  return String(text || "").split(/\n[ \u3000]*\n/).map((p) => p.trim()).filter(Boolean);
}

function safeName(name, n) {
  const clean = name.replace(/[\\/\u0000-\u001f\u007f-\u009f]/g, "_").replace(/^[_.]+/, "");
  return (clean || `image-${n + 1}.jpg`).slice(0, 100);
}

// A photo too large for a notice, scaled down and made a JPEG (a notice's image is fetched by
// every resident's phone it reaches); null when it cannot be read as an image.
async function scaled(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return null;
  }
  const ratio = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * ratio);
  canvas.height = Math.round(bitmap.height * ratio);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  for (const quality of [0.85, 0.7, 0.5]) {
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    if (blob && blob.size <= MAX_IMAGE_BYTES) return blob;
  }
  return null;
}

function base64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// The draft sent with its upload's progress shown (fetch cannot report it); status 0 when the
// network failed.
function upload(text, progress) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/api/notices");
    request.setRequestHeader("Content-Type", "application/json");
    request.setRequestHeader("Accept", "application/json");
    progress.hidden = false;
    progress.value = 0;
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    };
    request.onload = () => {
      progress.value = 100;
      let body = {};
      try {
        body = JSON.parse(request.responseText);
      } catch {
        // not JSON: the status says enough
      }
      resolve({ status: request.status, body });
    };
    request.onerror = () => resolve({ status: 0, body: {} });
    request.send(text);
  });
}

// --- the follow-up ---------------------------------------------------------------------------

function countsText(counts) {
  return tf("follow_counts", counts);
}

function householdRows(households) {
  if (!households.length) return el("p", { class: "meta" }, t("all_done"));
  return el("ul", { class: "list visit-list" }, households.map((h) => el("li", { "data-household": h.household, "data-state": h.state },
    el("div", { class: "visit" }, el("span", { class: "main" }, h.address),
      el("span", {}, h.head_name), el("span", { class: `chip chip-visit-${h.state}` }, t(`state_${h.state}`))))));
}

function gridSection(g) {
  return el("section", { class: "card follow-grid", "data-grid": g.grid },
    el("h3", {}, g.name || g.grid),
    el("p", { class: "meta follow-counts" }, countsText(g.counts)),
    g.listed === false ? el("p", { class: "meta" }, t("not_listed")) : householdRows(g.households));
}

// Names as the server masks them; a holder of the unmask right may ask for them in full,
// which the server writes to the audit log.
function followUpView(app, id, unmask = false) {
  return [el("p", { class: "crumbs" }, el("a", { href: "#/notices", class: "back" }, t("notices"))),
    title(t("follow_up")),
    loading("notice-follow-up", async (box) => {
      const query = unmask ? "?unmask=1" : "";
      const answer = await callApi(`/api/notices/${encodeURIComponent(id)}/follow-up${query}`);
      if (!answer.ok) throw new Error(reasonOf(answer));
      const { notice, grids } = answer.body;
      const mayUnmask = !unmask && (app.me.rights || []).includes("unmask");
      const unmaskButton = mayUnmask ? el("button", { type: "button", id: "follow-unmask" }, t("show_unmasked")) : null;
      unmaskButton?.addEventListener("click", () => {
        document.getElementById("view").replaceChildren(...followUpView(app, id, true));
      });
      box.replaceChildren(
        el("h3", { id: "follow-title" }, notice.title),
        el("p", { class: "meta" }, [notice.status === "withdrawn" && t("withdrawn"),
          notice.needs_confirmation ? t("needs_confirmation") : t("read_only_notice")].filter(Boolean).join(" · ")),
        unmaskButton ? el("div", { class: "actions" }, unmaskButton) : null,
        grids.length ? el("div", { class: "follow-grids" }, grids.map(gridSection))
          : el("p", { class: "empty" }, t("no_households")));
    })];
}

// --- the worker's list, held on the phone --------------------------------------------------

async function heldVisits(app) {
  try {
    return await app.sync.db.get(VISITS_DOC);
  } catch {
    return null;
  }
}

// Fetched when online and kept on the phone; the held copy otherwise. Called at start too, so
// the list is on the phone before the worker goes out.
export async function refreshVisits(app) {
  if (!app.sync || !followsUpNotices(app.me)) return null;
  const held = await heldVisits(app);
  let answer;
  try {
    answer = await callApi("/api/notices/to-visit");
  } catch {
    return held;
  }
  if (!answer.ok) return held;
  const doc = { _id: VISITS_DOC, ...(held ? { _rev: held._rev } : {}), as_of: answer.body.as_of, notices: answer.body.notices };
  try {
    await app.sync.db.put(doc);
  } catch {
    // another refresh wrote it a moment ago: the next one takes it
  }
  return doc;
}

function visitsView(app) {
  return [title(t("notice_visits")),
    loading("notice-visits", async (box) => {
      const held = await refreshVisits(app);
      if (!held) {
        box.replaceChildren(el("p", { class: "empty" }, t("needs_network")));
        return;
      }
      const stale = !navigator.onLine;
      const asOf = el("p", { class: stale ? "warn" : "meta", id: "visits-as-of" },
        tf(stale ? "visits_offline" : "visits_as_of", { time: formatTime(Date.parse(held.as_of)) }));
      if (!held.notices.length) {
        box.replaceChildren(asOf, el("p", { class: "empty" }, t("no_visits")));
        return;
      }
      box.replaceChildren(asOf, ...held.notices.map((entry) => el("section", { class: "card", "data-notice": entry.notice._id },
        el("h3", {}, entry.notice.title),
        ...entry.grids.map((g) => el("div", { class: "follow-grid", "data-grid": g.grid },
          el("p", { class: "meta follow-counts" }, `${g.name} · ${countsText(g.counts)}`),
          householdRows(g.households))))));
    })];
}
