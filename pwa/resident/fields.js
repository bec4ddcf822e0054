// The resident's form fields and how the server's refusals land on them. The server names a
// field by its label, zh-CN first ("“手机号”应为 11 位手机号码… / Mobile phone must be…"), several
// problems joined ("zh1；zh2 / en1; en2"); each is shown under the field whose label it names, in
// the language shown, and the field is marked invalid for screen readers. What names no field
// shows at the top of the form.

import { TooSlow } from "../api.js";
import { el } from "../dom.js";
import { cityTime, lang, t, tf } from "../i18n.js";

// A labelled input with its hint and its error slot, wired by ids.
export function field(id, label, attrs = {}, hint = "") {
  const input = el("input", { id, name: id, ...attrs,
    "aria-describedby": [hint ? `${id}-hint` : "", `${id}-error`].filter(Boolean).join(" ") });
  return el("div", { class: "field", "data-field": id },
    el("label", { for: id }, label),
    hint ? el("p", { class: "hint", id: `${id}-hint` }, hint) : null,
    input,
    el("p", { class: "error", id: `${id}-error`, role: "alert" }));
}

// The server's reason as [zh, en] pairs, one per problem.
export function problemsOf(reason) {
  const text = String(reason || "");
  const cut = text.indexOf(" / ");
  if (cut < 0) return [[text, text]];
  const zh = text.slice(0, cut).split("；");
  const en = text.slice(cut + 3).split("; ");
  if (zh.length !== en.length) return [[text.slice(0, cut), text.slice(cut + 3)]];
  return zh.map((one, i) => [one, en[i]]);
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".error")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const box of form.querySelectorAll(".has-error")) box.classList.remove("has-error");
}

function mark(form, id, text) {
  const box = form.querySelector(`[data-field="${id}"]`);
  const slot = form.querySelector(`#${id}-error`);
  if (!box || !slot) return false;
  slot.textContent = slot.textContent ? `${slot.textContent} ${text}` : text;
  box.classList.add("has-error");
  box.querySelector("input")?.setAttribute("aria-invalid", "true");
  return true;
}

// Shows each problem of `reason` at the field whose zh label it names (`labels`: field id →
// zh label, quoted names first), the rest in `general`. Returns the ids marked.
export function showProblems(form, general, reason, labels) {
  const marked = [];
  const rest = [];
  for (const [zh, en] of problemsOf(reason)) {
    const shown = lang() === "en" ? en : zh;
    const found = Object.entries(labels).find(([, label]) => zh.includes(`“${label}”`)) ||
      Object.entries(labels).find(([, label]) => zh.includes(label));
    if (found && mark(form, found[0], shown)) marked.push(found[0]);
    else rest.push(shown);
  }
  general.textContent = rest.join(lang() === "en" ? " " : "；");
  const first = marked[0] && form.querySelector(`#${marked[0]}`);
  if (first) first.focus();
  return marked;
}

// "Try again after 14:05 (Beijing time), in about 15 minutes", from a Retry-After in seconds.
export function pauseText(key, seconds) {
  const until = Date.now() + seconds * 1000;
  const wait = seconds >= 120 ? tf("wait_minutes", { n: Math.ceil(seconds / 60) }) : tf("wait_seconds", { n: seconds });
  return { until, text: tf(key, { time: cityTime(until, { seconds: seconds < 120 }), wait }) };
}

// Sends a form's call: its button off and "sending…" while it goes, the reply ({status, ok,
// body, retryAfter}) to `answered`, and no network or no answer said in words.
export async function sendForm(form, submit, general, call, answered) {
  clearErrors(form);
  submit.disabled = true;
  general.textContent = t("r_sending");
  try {
    const reply = await call();
    general.textContent = "";
    await answered(reply);
  } catch (err) {
    general.textContent = callProblem(err);
  } finally {
    submit.disabled = false;
  }
}

// What a failed call says when no field is at fault: no network, too slow, or the server's word.
export function callProblem(err) {
  return err instanceof TooSlow ? t("r_too_slow") : t("r_needs_network");
}
