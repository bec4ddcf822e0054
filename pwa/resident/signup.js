// The resident's sign-up (居民注册), before any login: phone, name, community (searched by name),
// address as they write it; then the 6-digit code the phone receives and a password. The server
// decides everything (server/web/residents.py): its refusals land at the field they name, and
// its answer is the same whether the registry knew the person or not, so the screen never says
// more than the server did. Once the account is made the phone logs in with the phone number.

import { Unreachable, callApi } from "../api.js";
import { el } from "../dom.js";
import { lang, message, t } from "../i18n.js";
import { LoginError, logIn } from "../session.js";
import { callProblem, clearErrors, field, pauseText, showProblems } from "./fields.js";

const LABELS = { "su-phone": "手机号", "su-name": "姓名", "su-community": "社区",
  "su-address": "住址（按您的写法）" };
const VERIFY_LABELS = { "su-code": "验证码", "su-password": "密码", "su-phone-2": "手机号" };
const SHOWN_COMMUNITIES = 8; // a short list to tap; typing narrows it
// The server learns of a new account from its directory's changes feed, a moment after the
// verify answered: the first login is tried again for a while before it is called wrong.
const FIRST_LOGIN_TRIES_MS = [300, 600, 1200, 2400, 4800];

async function firstLogin(phone, password) {
  for (const wait of [...FIRST_LOGIN_TRIES_MS, null]) {
    try {
      return await logIn(phone, password);
    } catch (err) {
      if (!(err instanceof LoginError) || err.status !== 401 || wait === null) throw err;
      await new Promise((resolve) => { setTimeout(resolve, wait); });
    }
  }
  throw new LoginError("unreachable", 0);
}

// Searchable by name or street: "坊门", "府山"; every word typed must appear.
function matches(community, words) {
  const text = `${community.name} ${community.street_name || ""}`.toLowerCase();
  return words.every((w) => text.includes(w));
}

function communityPicker(state) {
  const search = el("input", { type: "search", id: "su-community-search", autocomplete: "off",
    "aria-describedby": "su-community-count su-community-error", "aria-controls": "su-community-list" });
  const list = el("div", { class: "choices community-list", id: "su-community-list", role: "radiogroup",
    "aria-labelledby": "su-community-legend" });
  const count = el("p", { class: "hint", id: "su-community-count", role: "status" });
  const render = () => {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const found = state.communities.filter((c) => matches(c, words));
    const chosen = state.communities.find((c) => c.code === state.community);
    const shown = found.slice(0, SHOWN_COMMUNITIES);
    if (chosen && !shown.includes(chosen)) shown.unshift(chosen);
    list.replaceChildren(...shown.map((c) => {
      const radio = el("input", { type: "radio", name: "su-community", value: c.code, id: `su-c-${c.code}`,
        checked: c.code === state.community });
      radio.addEventListener("change", () => { state.community = c.code; });
      return el("label", { class: "choice community-choice", for: `su-c-${c.code}` }, radio,
        el("span", {}, c.name, c.street_name ? el("span", { class: "meta" }, ` ${c.street_name}`) : null));
    }));
    if (state.loading) count.textContent = t("loading");
    else if (!found.length) count.textContent = t("r_no_community");
    else if (found.length > shown.length) count.textContent = t("r_more_communities").replace("{n}", found.length);
    else count.textContent = "";
  };
  search.addEventListener("input", render);
  state.renderCommunities = render;
  render();
  return el("fieldset", { class: "field", "data-field": "su-community" },
    el("legend", { id: "su-community-legend" }, t("r_community")),
    el("label", { for: "su-community-search", class: "hint" }, t("r_community_search")),
    search, count, list,
    el("p", { class: "error", id: "su-community-error", role: "alert" }));
}

// What was typed survives a redraw (the language switched): kept on the app, never stored.
function keepTyped(app, forms) {
  const kept = app.signupTyped || (app.signupTyped = {});
  for (const form of forms) {
    for (const input of form.querySelectorAll("input:not([type=password]):not([type=radio])")) {
      if (kept[input.id] !== undefined) input.value = kept[input.id];
      input.addEventListener("input", () => { kept[input.id] = input.value; });
    }
  }
  return kept;
}

export function signupView(app, onJoined) {
  const state = { communities: [], community: app.signupTyped?.community || "", loading: true,
    renderCommunities: () => {} };
  const general = el("p", { class: "error", id: "su-general", role: "alert" });
  const sent = el("p", { class: "flash-inline", id: "su-sent", role: "status" });
  const send = el("button", { type: "submit", class: "primary", id: "su-send" }, t("r_send_code"));
  const details = el("form", { id: "signup-form", class: "record-form", novalidate: true },
    field("su-phone", t("r_phone"), { type: "tel", inputmode: "tel", autocomplete: "tel", maxlength: "32", required: true },
      t("r_phone_hint")),
    field("su-name", t("r_name"), { autocomplete: "name", maxlength: "50", required: true }),
    communityPicker(state),
    field("su-address", t("r_address"), { autocomplete: "off", maxlength: "100", required: true }, t("r_address_hint")),
    general, send, sent);
  const verifyGeneral = el("p", { class: "error", id: "su-verify-general", role: "alert" });
  const join = el("button", { type: "submit", class: "primary", id: "su-join" }, t("r_join"));
  const verify = el("form", { id: "verify-form", class: "record-form", novalidate: true, hidden: true },
    el("h3", {}, t("r_step_verify")),
    field("su-code", t("r_code"), { inputmode: "numeric", autocomplete: "one-time-code", maxlength: "6", required: true },
      t("r_code_hint")),
    field("su-password", t("password"), { type: "password", autocomplete: "new-password", minlength: "8", maxlength: "128",
      required: true }, t("r_password_hint")),
    verifyGeneral, join);
  const value = (id) => details.querySelector(`#${id}`).value;
  const kept = keepTyped(app, [details, verify]);
  verify.hidden = !kept.sent;
  details.addEventListener("change", () => { kept.community = state.community; });

  details.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(details);
    sent.textContent = "";
    const body = { phone: value("su-phone"), name: value("su-name"), community: state.community,
      address: value("su-address") };
    send.disabled = true;
    general.textContent = t("r_sending");
    try {
      const reply = await callApi("/api/residents/signup", { method: "POST", body: JSON.stringify(body) });
      general.textContent = "";
      if (reply.ok) {
        sent.textContent = t("r_code_sent");
        verify.hidden = false;
        kept.sent = true;
        verify.querySelector("#su-code").focus();
      } else if (reply.status === 429) {
        general.textContent = pauseText("r_paused", reply.retryAfter || 60).text;
      } else {
        showProblems(details, general, reply.body.reason, LABELS);
      }
    } catch (err) {
      general.textContent = callProblem(err);
    } finally {
      send.disabled = false;
    }
  });

  verify.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(verify);
    const phone = value("su-phone");
    const password = verify.querySelector("#su-password").value;
    join.disabled = true;
    verifyGeneral.textContent = t("r_joining");
    try {
      const reply = await callApi("/api/residents/verify", { method: "POST",
        body: JSON.stringify({ phone, code: verify.querySelector("#su-code").value.trim(), password }) });
      if (!reply.ok) {
        verifyGeneral.textContent = "";
        if (reply.status === 429) verifyGeneral.textContent = pauseText("r_paused", reply.retryAfter || 60).text;
        else showProblems(verify, verifyGeneral, reply.body.reason, VERIFY_LABELS);
        return;
      }
      verifyGeneral.textContent = t("r_logging_in");
      const { me } = await firstLogin(phone, password);
      verify.querySelector("#su-password").value = "";
      app.signupTyped = null;
      await onJoined(me);
    } catch (err) {
      verifyGeneral.textContent = err instanceof LoginError ? message(err.message) : callProblem(err);
    } finally {
      join.disabled = false;
    }
  });

  callApi("/api/residents/communities").then((reply) => {
    state.communities = reply.ok ? reply.body.communities || [] : [];
    state.loading = false;
    if (!reply.ok) general.textContent = t("r_communities_failed");
    state.renderCommunities();
  }, (err) => {
    state.loading = false;
    general.textContent = err instanceof Unreachable ? t("r_needs_network") : callProblem(err);
    state.renderCommunities();
  });

  return [
    el("h2", { class: "view-title", tabindex: "-1" }, t("r_signup_title")),
    el("p", { class: "about" }, t("r_signup_about")),
    details,
    verify,
    el("p", { class: "actions" },
      el("button", { type: "button", id: "su-to-login", onclick: () => app.askLogin() }, t("r_have_account"))),
    el("p", { class: "hint", lang: lang() === "en" ? "en" : "zh-CN" }, t("r_signup_privacy")),
  ];
}
