// The one way a screen asks the server's API (/api/): with the session cookie, never from the
// HTTP cache (the answers are live: a review queue, conflicts, figures), within a time limit, and
// answered as {status, ok, body, retryAfter} whatever the status, the body {} when it is not
// JSON, retryAfter the seconds of a Retry-After (0 without one).
// Throws Unreachable when there is no network, TooSlow when no answer came in time (a retry may
// do). Screens that use it need the network, and say so.

import { message, t } from "./i18n.js";
import { toldRevoked } from "./revoke.js";

export class Unreachable extends Error {}
export class TooSlow extends Error {}

export async function callApi(path, options = {}, timeoutMs = 20_000) {
  if (!navigator.onLine) throw new Unreachable();
  const sends = options.body !== undefined ? { "Content-Type": "application/json" } : {};
  let response;
  try {
    response = await fetch(path, {
      credentials: "same-origin", cache: "no-store", signal: AbortSignal.timeout(timeoutMs),
      ...options, headers: { ...sends, Accept: "application/json", ...(options.headers || {}) },
    });
  } catch (err) {
    throw err?.name === "TimeoutError" ? new TooSlow() : new Unreachable();
  }
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  toldRevoked(response);
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10) || 0;
  return { status: response.status, ok: response.ok, body, retryAfter };
}

// A screen's answer from the API, or null once `status` says why there is none (no network, or
// the server's reason).
export async function answerOrSay(path, status, options = {}) {
  let answer;
  try {
    answer = await callApi(path, options);
  } catch {
    status.textContent = t("needs_network");
    return null;
  }
  if (!answer.ok) {
    status.textContent = message(answer.body.reason || String(answer.status));
    return null;
  }
  return answer.body;
}
