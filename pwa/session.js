// Who is using the phone. The login is a CouchDB-style cookie session with the server
// (`/couch/_session`); what the app needs to work offline afterwards (the user's name, role, grids
// and campaigns, from `/api/me`) is remembered on the phone, so the app opens and works with no
// network for as long as the worker needs. A lapsed session only stops syncing, never work.

import { forgetWipe, toldRevoked } from "./revoke.js";

const ME_KEY = "linli.me";

export class LoginError extends Error {
  // retryAfter: seconds the server asks to wait (Retry-After of a 429 after too many failures).
  constructor(message, status, retryAfter = 0) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

// The identity remembered from the last login, or null.
export function rememberedUser() {
  try {
    const me = JSON.parse(localStorage.getItem(ME_KEY) || "null");
    return me && typeof me.name === "string" && Array.isArray(me.grids) ? me : null;
  } catch {
    return null;
  }
}

export async function fetchMe() {
  const response = await fetch("/api/me", { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) throw new LoginError(toldRevoked(response) ? "revoked" : "unauthorized", 401);
  if (!response.ok) throw new LoginError((await readJson(response)).reason || response.statusText, response.status);
  const me = await response.json();
  localStorage.setItem(ME_KEY, JSON.stringify(me));
  return me;
}

// A resident logs in with their phone number, typed as they like ("138 0000-0000", full-width
// digits, +86): the 11 digits the server knows it by, as server/domain/signup.py reads them.
// A user name is left as typed.
export function loginName(typed) {
  const text = String(typed).normalize("NFKC").trim();
  if (!/^[0-9+\s().\-\u2010-\u2015\u2212]+$/.test(text)) return text;
  let digits = text.replace(/[\s().\-\u2010-\u2015\u2212]/g, "");
  for (const prefix of ["+86", "0086", "86"]) {
    if (digits.startsWith(prefix) && digits.length === prefix.length + 11) {
      digits = digits.slice(prefix.length);
      break;
    }
  }
  return /^1[3-9][0-9]{9}$/.test(digits) ? digits : text;
}

export async function logIn(typedName, password) {
  const name = loginName(typedName);
  let response;
  try {
    response = await fetch("/couch/_session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ name, password }),
    });
  } catch {
    throw new LoginError("首次登录需要网络 / The first login needs a network connection", 0);
  }
  if (!response.ok) {
    const body = await readJson(response);
    const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new LoginError(body.reason || response.statusText, response.status,
      response.status === 429 && wait > 0 ? wait : 0);
  }
  const previous = rememberedUser();
  const me = await fetchMe();
  forgetWipe();
  return { me, switched: previous !== null && previous.name !== me.name };
}

// Whether the server still knows this phone's session; null when the server cannot be reached.
export async function sessionAlive() {
  try {
    const response = await fetch("/couch/_session", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return null;
    const body = await response.json();
    return Boolean(body.userCtx && body.userCtx.name);
  } catch {
    return null;
  }
}

export async function logOut() {
  try {
    await fetch("/couch/_session", { method: "DELETE", credentials: "same-origin" });
  } catch {
    // offline: the cookie lapses by itself
  }
  localStorage.removeItem(ME_KEY);
}
