// An address as people type it into the search (门牌): building, unit and room, in every form a
// worker writes them — 3-2-301, 3幢2单元301, 3栋2单元301室, 3号楼2单元301, 三幢二单元三零一,
// 十三幢二单元三百零一 — with the compound's name before it if they like. Pure: no DOM, no
// storage, so tests run it alone (tests/test_address_search.py).

const CN_DIGITS = { 零: 0, 〇: 0, 一: 1, 二: 2, 两: 2, 三: 3, 四: 4, 五: 5, 六: 6, 七: 7, 八: 8, 九: 9 };
const CN_UNITS = { 十: 10, 百: 100, 千: 1000 };
const PART = "[0-9A-Za-z零〇一二两三四五六七八九十百千]+";
const BUILDING_MARK = "(?:号楼|幢|栋|座|号|楼)";
const SEPARATOR = "[-‐‑‒–—/\\\\.·\\s]+";
// The compound ends where the run of parts of the building starts (after a character no part
// holds, or at the start), so each run is tried once: the parse is linear in the text's length,
// not quadratic as a lazy `(.*?)` before `PART+` was (20,000 digits took seconds).
const NOT_PART = "[^0-9A-Za-z零〇一二两三四五六七八九十百千]";
const WORDED = new RegExp(`^(?:(.*${NOT_PART}))?(${PART})${BUILDING_MARK}(?:(${PART})单元)?(${PART})(?:室|号|房)?$`);
const DASHED = new RegExp(`^(?:(.*?)[^0-9A-Za-z])??([0-9A-Za-z]+)${SEPARATOR}([0-9A-Za-z]+)(?:${SEPARATOR}([0-9A-Za-z]+))?$`);
// No address is longer: a longer text (a paste) is searched as words, never parsed.
export const MAX_ADDRESS_CHARS = 64;

// A run of Chinese numerals as digits: 三零一 → "301" (read digit by digit), 三百零一 → "301",
// 十三 → "13"; anything else as it is.
export function numeralText(text) {
  const s = String(text);
  if (!/^[零〇一二两三四五六七八九十百千]+$/.test(s)) return s;
  if (!/[十百千]/.test(s)) return [...s].map((c) => CN_DIGITS[c]).join("");
  let total = 0;
  let digit = 0;
  for (const c of s) {
    if (c in CN_UNITS) {
      total += (digit || 1) * CN_UNITS[c];
      digit = 0;
    } else digit = CN_DIGITS[c];
  }
  return String(total + digit);
}

// The same part of two addresses: numbers by value (03 is 3), letters by case.
export function samePart(a, b) {
  const x = String(a ?? "").toLowerCase();
  const y = String(b ?? "").toLowerCase();
  if (/^\d+$/.test(x) && /^\d+$/.test(y)) return Number(x) === Number(y);
  return x === y;
}

// {compound, building, unit, room} of an address typed in a search, the unit "" when not typed;
// null when the text is no address (a name, a phone number).
export function parseAddress(query) {
  const s = String(query ?? "").normalize("NFKC").trim().replace(/\s+/g, " ");
  if (s.length > MAX_ADDRESS_CHARS) return null;
  const worded = WORDED.exec(s.replace(/\s+/g, ""));
  if (worded) {
    const [, compound, building, unit, room] = worded;
    return { compound: (compound ?? "").trim(), building: numeralText(building),
      unit: unit ? numeralText(unit) : "", room: numeralText(room) };
  }
  if (/^1\d{2}[-\s]?\d{4}[-\s]?\d{4}$/.test(s)) return null; // a mobile number, 138-0000-0000
  const dashed = DASHED.exec(s);
  if (!dashed) return null;
  const [, compound, building, second, third] = dashed;
  return third === undefined
    ? { compound: (compound ?? "").trim(), building, unit: "", room: second }
    : { compound: (compound ?? "").trim(), building, unit: second, room: third };
}

// How an address found in the grid stands to the one typed: "exact" when building, unit (if
// typed) and room are the same; "near" when one of them differs (13幢 for 3幢, another unit, a
// room of the same building and unit); null otherwise.
export function addressMatch(wanted, address) {
  if (!wanted || !address) return null;
  const building = samePart(wanted.building, address.building);
  const unit = !wanted.unit || samePart(wanted.unit, address.unit);
  const room = samePart(wanted.room, address.room);
  if (building && unit && room) return "exact";
  const contains = (typed, held) => String(held ?? "").toLowerCase().includes(String(typed).toLowerCase());
  if (building && room) return "near"; // another unit
  if (building && unit && contains(wanted.room, address.room)) return "near"; // 1301 for 301
  if (unit && room && contains(wanted.building, address.building)) return "near"; // 13幢 for 3幢
  return null;
}
