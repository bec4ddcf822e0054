// The domain rules a JSON Schema cannot state: the resident identity number (GB 11643-1999), a
// person's ID number against their sex and birth, a household's room against its building, and
// the calendar behind the schemas' date formats.
//
// The same rules as server/domain/rules.py, and what they share is data, kept once in
// schemas/rules.json (weights, check characters, patterns, messages), which scripts/setup
// generates into ./generated/rules.js. tests/fixtures/rules_cases.json holds both sides to the
// same verdicts and the same messages. Plain ES module: no build step at serve time.
//
// A problem is {field, code, zh, en, message}: a JSON Pointer into the checked document, a stable
// code for programs, and a message a grid worker can act on ("zh / en"). Messages never repeat an
// ID number. Dates are "YYYY-MM-DD" strings; `today` defaults to the phone's local date.

import SHARED from "./generated/rules.js";

const ID_RULES = SHARED.id_number;
// ISO 7064 MOD 11-2, as GB 11643-1999 applies it to the first 17 digits.
const { weights: WEIGHTS, check_chars: CHECK_CHARS, earliest_birth: EARLIEST_BIRTH } = ID_RULES;
const whole = (pattern, flags = "") => new RegExp(`^(?:${pattern})$`, flags);
const SPACES = new RegExp(ID_RULES.spaces, "g");
const ID_FORM = whole(ID_RULES.form);
const DIGITS = ID_RULES.digits;
const ROOM = whole(SHARED.room.pattern);

// A message template of rules.json with its {name}s filled in (rules.py `fill`).
export function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name]));
}

// [zh, en] of a [zh, en] template pair of rules.json; a value given as a [zh, en] pair is taken
// in each language (rules.py `fill_both`).
export function fillBoth(templates, values) {
  return templates.map((template, i) => fill(template, Object.fromEntries(
    Object.entries(values).map(([k, v]) => [k, Array.isArray(v) ? v[i] : v]))));
}

// [zh, en] of a list joined as each language writes one, or `empty` when there is none.
export function listed(items, empty = ["", ""]) {
  return SHARED.lists.joiners.map((joiner, i) => items.join(joiner) || empty[i]);
}

// A problem whose message is rules.json's `name` (by default its code).
function problem(field, code, name, values) {
  const [zh, en] = fillBoth(SHARED.messages[name || code], values);
  return { field, code, zh, en, message: `${zh} / ${en}` };
}

function localToday() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// What a worker typed or pasted, as stored: full-width characters made ASCII (NFKC), spaces
// removed, and a lower-case check character x made X.
export function normaliseIdNumber(s) {
  return s.normalize("NFKC").replace(SPACES, "").replaceAll("x", "X");
}

// The check character the first 17 digits call for.
export function idCheckChar(first17) {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * WEIGHTS[i];
  return CHECK_CHARS[sum % 11];
}

function daysInMonth(y, m) {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

const realDay = (y, m, d) => y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth(y, m);

// The date in digits 7-14 of a well-formed number, or null if there is no such day.
function birth(n) {
  const [y, m, d] = [n.slice(6, 10), n.slice(10, 12), n.slice(12, 14)];
  return realDay(...[y, m, d].map(Number)) ? `${y}-${m}-${d}` : null;
}

// The schemas' formats as the server's format checker reads them (rules.json "formats"): the
// text has the form, and its date exists in the calendar. The phone's schema validators
// (./generated/validators.js, made by Ajv) call these, not ajv-formats', which take a space for
// the T, an offset without its colon, a leap second and year 0, all refused by the server.
export const FORMATS = Object.fromEntries(Object.entries(SHARED.formats)
  .filter(([name]) => name !== "description")
  .map(([name, pattern]) => {
    const form = whole(pattern);
    return [name, (s) => {
      const m = form.exec(s);
      return m !== null && realDay(...m.slice(1, 4).map(Number));
    }];
  }));

// The birth date an ID number encodes ("YYYY-MM-DD"); null if it is not 17 digits and a check
// character, or the date does not exist. The check character itself is not checked.
export function idBirthDate(idNumber) {
  const n = normaliseIdNumber(idNumber);
  return ID_FORM.test(n) ? birth(n) : null;
}

// The sex an ID number encodes (odd 17th digit "1" male, even "2" female); null if the number is
// not 17 digits and a check character.
export function idSex(idNumber) {
  const n = normaliseIdNumber(idNumber);
  if (!ID_FORM.test(n)) return null;
  return Number(n[16]) % 2 ? "1" : "2";
}

// What is wrong with an ID number, after normalising it. Length and characters are reported alone
// (nothing else can be read from such a number); the check character and the birth date are
// independent, so both are reported.
export function idNumberProblems(idNumber, today = localToday()) {
  const chars = Array.from(normaliseIdNumber(idNumber)); // code points, as Python counts them
  const n = chars.join("");
  if (chars.length !== 18) {
    return [problem("/id_number", "id_length", null, { length: chars.length })];
  }
  for (const [i, c] of chars.entries()) {
    if (!DIGITS.includes(c) && !(i === 17 && c === "X")) {
      return [problem("/id_number", "id_characters", null, { position: i + 1, char: c })];
    }
  }
  const problems = [];
  const expected = idCheckChar(n.slice(0, 17));
  if (n[17] !== expected) {
    // A wrong check character usually means a wrong digit elsewhere: say so, or the worker
    // "fixes" the last character and stores a valid number of somebody else.
    problems.push(problem("/id_number", "id_check_digit", null, { expected }));
  }
  const born = birth(n);
  const shown = `${n.slice(6, 10)}-${n.slice(10, 12)}-${n.slice(12, 14)}`;
  if (born === null) {
    problems.push(problem("/id_number", "id_birth_date_invalid", null, { shown }));
  } else if (born < EARLIEST_BIRTH) {
    problems.push(problem("/id_number", "id_birth_date_early", null,
      { shown, earliest: EARLIEST_BIRTH }));
  } else if (born > today) {
    problems.push(problem("/id_number", "id_birth_date_future", null, { shown }));
  }
  return problems;
}

// What is wrong with a person's ID number, sex and birth. The ID number is compared with sex and
// birth only when it is valid: a number that fails its own check proves nothing. Fields that are
// absent or of the wrong type are the schema's business and are skipped here.
export function personProblems(person, today = localToday()) {
  const problems = [];
  const { id_number: idNumber, sex } = person;
  const year = Number.isInteger(person.birth_year) ? person.birth_year : null;
  let month = Number.isInteger(person.birth_month) ? person.birth_month : null;
  if (month !== null && !(month >= 1 && month <= 12)) month = null;
  if (typeof idNumber === "string") {
    const idProblems = idNumberProblems(idNumber, today);
    problems.push(...idProblems);
    const [born, encoded] = [idBirthDate(idNumber), idSex(idNumber)];
    if (idProblems.length === 0 && born !== null && encoded !== null) {
      if ((sex === "1" || sex === "2") && sex !== encoded) {
        problems.push(problem("/sex", "id_sex_mismatch", null,
          { sex: SHARED.sex[sex], encoded: SHARED.sex[encoded] }));
      }
      const [bornYear, bornMonth] = [Number(born.slice(0, 4)), Number(born.slice(5, 7))];
      if (year !== null && year !== bornYear) {
        problems.push(problem("/birth_year", "id_birth_mismatch", "id_birth_year_mismatch",
          { year, born: bornYear }));
      }
      if (month !== null && month !== bornMonth) {
        problems.push(problem("/birth_month", "id_birth_mismatch", "id_birth_month_mismatch",
          { month, born: bornMonth }));
      }
    }
  }
  const [thisYear, thisMonth] = [Number(today.slice(0, 4)), Number(today.slice(5, 7))];
  if (year !== null && year > thisYear) {
    problems.push(problem("/birth_year", "birth_in_future", "birth_year_in_future", { year }));
  } else if (year === thisYear && month !== null && month > thisMonth) {
    const shown = `${year}-${String(month).padStart(2, "0")}`;
    problems.push(problem("/birth_month", "birth_in_future", "birth_month_in_future", { shown }));
  }
  return problems;
}

// Whether a household's address names a room its building has. Rooms are numbered
// floor * 100 + index: floor 3 room 1 is "301". An address without a unit is fine in a building
// of one unit. Pointers are relative to the address.
export function roomProblems(address, building) {
  const number = address.building;
  const b = number === undefined || number === null ? "" : String(number);
  if (building === null || building === undefined) {
    return [problem("/building", "building_missing", null, { building: b })];
  }
  const units = [...(building.units || [])];
  let label = address.unit ?? null;
  const labels = units.map((u) => String(u.label));
  let unit;
  if (label === null && units.length === 1) {
    [unit, label] = [units[0], labels[0]];
  } else {
    unit = units.find((u) => u.label === label) ?? null;
  }
  if (unit === null) {
    if (label === null) {
      return [problem("/unit", "unit_missing", "unit_unnamed",
        { building: b, count: units.length, labels: listed(labels) })];
    }
    return [problem("/unit", "unit_missing", null,
      { building: b, unit: label, labels: listed(labels, SHARED.lists.none) })];
  }
  const room = address.room;
  if (typeof room !== "string") return [];
  const where = { building: b, unit: label, room };
  const [floor, index] = ROOM.test(room)
    ? [Math.floor(Number(room) / 100), Number(room) % 100] : [0, 0];
  if (floor < 1 || index < 1) {
    return [problem("/room", "room_missing", "room_form", where)];
  }
  if (floor > unit.floors) {
    return [problem("/room", "room_missing", "room_floor", { ...where, floors: unit.floors })];
  }
  if (index > unit.rooms_per_floor) {
    return [problem("/room", "room_missing", "room_index",
      { ...where, rooms_per_floor: unit.rooms_per_floor })];
  }
  return [];
}
