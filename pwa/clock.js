// The phone's hybrid logical clock: the stamp of a field edit (`edits[].at` in household and
// person records, version 2), by which the server orders concurrent edits of one field.
//
// Rule: a stamp is "ms-counter", 13 then 4 zero-padded digits ("1795718117877-0003"), so comparing
// two stamps as text compares them as numbers. Every stamp the phone issues is greater than every
// stamp it issued or observed before: the physical part is Date.now() unless that is behind the
// last stamp (a phone clock set back, or another phone's clock ahead), in which case the last
// milliseconds are kept and the counter goes up; a counter past 9999 moves on to the next
// millisecond. The last stamp is kept in localStorage, so a reload never issues one again.

const KEY = "linli.clock";
const MAX_MS = 9_999_999_999_999; // 13 digits: the year 2286
const MAX_COUNTER = 9999;
export const STAMP = /^[0-9]{13}-[0-9]{4}$/;

export function format(ms, counter) {
  return `${String(ms).padStart(13, "0")}-${String(counter).padStart(4, "0")}`;
}

// {ms, counter} of a well-formed stamp, else null.
export function parse(stamp) {
  if (typeof stamp !== "string" || !STAMP.test(stamp)) return null;
  return { ms: Number(stamp.slice(0, 13)), counter: Number(stamp.slice(14)) };
}

// The stamp after `last` (a stamp or null) when the phone's clock reads `now`: pure.
export function tick(last, now) {
  const physical = Math.min(Math.max(Math.floor(Number(now)) || 0, 0), MAX_MS);
  const prev = parse(last);
  if (!prev || physical > prev.ms) return format(physical, 0);
  if (prev.counter < MAX_COUNTER) return format(prev.ms, prev.counter + 1);
  return format(prev.ms + 1, 0);
}

// The later of two stamps (either may be null or malformed, which counts as nothing).
export function later(a, b) {
  const goodA = parse(a) ? a : null;
  const goodB = parse(b) ? b : null;
  if (!goodA) return goodB;
  if (!goodB) return goodA;
  return goodA >= goodB ? goodA : goodB;
}

let last = null;

// The last stamp issued or observed, on this page or another tab of the app.
function current() {
  let stored = null;
  try {
    stored = localStorage.getItem(KEY);
  } catch {
    // storage refused (private mode): the page's own memory still keeps stamps in order
  }
  last = later(last, stored);
  return last;
}

function keep(stamp) {
  last = stamp;
  try {
    localStorage.setItem(KEY, stamp);
  } catch {
    // as above
  }
}

// A new stamp for an edit made now.
export function stamp() {
  const next = tick(current(), Date.now());
  keep(next);
  return next;
}

// Fold in a stamp seen in a record, so no later edit on this phone is stamped before it.
export function observe(seen) {
  if (!parse(seen)) return;
  const before = current();
  if (later(before, seen) !== before) keep(seen);
}

// The last stamp issued or observed (null before the first).
export function lastStamp() {
  return current();
}
