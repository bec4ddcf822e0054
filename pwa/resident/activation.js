// Activation by code (激活码): the 8 characters a grid worker made for the household, as the
// resident reads them off the worker's phone. Read kindly as typed: spaces, dashes, lower case
// and full-width letters are the server's to forgive (server/domain/activation.py); the screen
// shows how it reads what was typed. Wrong, used, expired and withdrawn codes are said at the
// field; after 5 wrong tries the server pauses the account, and the screen says until when in
// Beijing time and keeps the button off until then.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { t, tf } from "../i18n.js";
import { fetchMe } from "../session.js";
import { callProblem, clearErrors, field, pauseText, showProblems } from "./fields.js";
import { backLink, heading } from "./ui.js";

const LABELS = { "r-code": "激活码" };
const ALPHABET = /^[2-9A-HJKMNP-Z]{8}$/; // the server's: no 0/O/1/I/L
const PAUSE_KEY = "linli.activation-paused-until";
const KEPT_CODE = "linli.activation-code";

// A worker's QR (`#/activate/<code>`) opened before any login: the code is kept for this tab
// through the sign-up, and offered once the resident is in (`keptActivationCode`).
export function keepActivationCode() {
  const found = location.hash.match(/^#\/activate\/([^/]+)$/);
  if (found) sessionStorage.setItem(KEPT_CODE, decodeURIComponent(found[1]));
}

export function keptActivationCode() {
  const code = sessionStorage.getItem(KEPT_CODE);
  sessionStorage.removeItem(KEPT_CODE);
  return code;
}

// How the server will read what was typed: full-width to half-width, separators dropped, upper
// case; grouped as on the worker's phone (ABCD-EFGH).
export function readCode(typed) {
  const text = String(typed || "").normalize("NFKC").replace(/[\s\-_.·—–]/g, "").toUpperCase();
  return { text, valid: ALPHABET.test(text), shown: text.length === 8 ? `${text.slice(0, 4)}-${text.slice(4)}` : text };
}

// `prefill`: the code of the worker's QR (`#/activate/<code>`, pwa/worker/residents.js), which
// stands typed for the resident to send.
export function activateView(app, prefill = "") {
  const general = el("p", { class: "error", id: "r-code-general", role: "alert" });
  const submit = el("button", { type: "submit", class: "primary", id: "r-code-submit" }, t("r_activate"));
  const reading = el("p", { class: "hint", id: "r-code-reading", "aria-live": "polite" });
  const form = el("form", { id: "activate-form", class: "record-form", novalidate: true, "data-keep": true },
    field("r-code", t("r_code_label"), { autocomplete: "off", autocapitalize: "characters", spellcheck: "false",
      maxlength: "24", required: true }, t("r_code_label_hint")),
    reading, general, submit);
  const input = form.querySelector("#r-code");
  if (prefill) input.value = prefill.slice(0, 24); // as the QR gave it; the reading says how it reads
  input.setAttribute("aria-describedby", `${input.getAttribute("aria-describedby")} r-code-reading`);
  const showReading = () => {
    const code = readCode(input.value);
    reading.textContent = code.text ? tf(code.valid ? "r_code_reads" : "r_code_reads_partial", { code: code.shown, n: code.text.length }) : "";
  };
  input.addEventListener("input", showReading);
  showReading();

  const pausedUntil = Number(localStorage.getItem(PAUSE_KEY) || 0);
  const lock = (until, text) => {
    general.textContent = text;
    general.dataset.pausedUntil = String(until);
    localStorage.setItem(PAUSE_KEY, String(until));
    submit.disabled = true;
    setTimeout(() => {
      submit.disabled = false;
      delete general.dataset.pausedUntil;
    }, Math.max(0, until - Date.now()));
  };
  if (pausedUntil > Date.now()) lock(pausedUntil, pauseText("r_code_paused", Math.ceil((pausedUntil - Date.now()) / 1000)).text);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    clearErrors(form);
    general.textContent = t("r_sending");
    form.dataset.busy = "1";
    submit.disabled = true;
    let paused = false;
    try {
      const reply = await callApi("/api/residents/activate", { method: "POST", body: JSON.stringify({ code: input.value }) });
      general.textContent = "";
      if (reply.ok) {
        const me = await fetchMe();
        app.flash(t("r_activated"));
        await app.restart(me);
        location.hash = "#/household";
        return;
      }
      if (reply.status === 429) {
        const pause = pauseText("r_code_paused", reply.retryAfter || 900);
        lock(pause.until, pause.text);
        paused = true;
      } else if (reply.status === 401) {
        app.askLogin(t("login_again"));
      } else {
        showProblems(form, general, reply.body.reason, LABELS);
      }
    } catch (err) {
      general.textContent = callProblem(err);
    } finally {
      delete form.dataset.busy;
      if (!paused) submit.disabled = false;
    }
  });

  return [
    backLink("#/"),
    heading(t("r_activate_title")),
    el("p", { class: "about" }, t("r_activate_about")),
    form,
  ];
}
