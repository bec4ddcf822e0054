// The domain rules a JSON Schema cannot state: the resident identity number (GB 11643-1999), a
// person's ID number against their sex and birth, and a household's room against its building.
//
// A line-by-line port of server/domain/rules.py, so a record the phone accepts offline is not refused at
// sync. tests/fixtures/rules_cases.json holds both to the same verdicts and the same messages;
// change the two files together. Plain ES module: no build step, no dependencies.
//
// A problem is {field, code, zh, en, message}: a JSON Pointer into the checked document, a stable
// code for programs, and a message a grid worker can act on ("zh / en"). Messages never repeat an
// ID number. Dates are "YYYY-MM-DD" strings; `today` defaults to the phone's local date.

// ISO 7064 MOD 11-2, as GB 11643-1999 applies it to the first 17 digits.
const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS = "10X98765432";
const EARLIEST_BIRTH = "1900-01-01";

// An explicit set, not \s: Python's and JavaScript's ideas of whitespace differ, and after NFKC
// every Unicode space the phone keyboards produce (U+3000, U+00A0, ...) is a plain space.
const SPACES = /[ \t\n\r\f\v]/g;
const ID_FORM = /^[0-9]{17}[0-9X]$/;
const DIGITS = "0123456789";
// floor * 100 + index, with no leading zero: "301", "1202".
const ROOM = /^[1-9][0-9]{2,}$/;

function problem(field, code, zh, en) {
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

// The date in digits 7-14 of a well-formed number, or null if there is no such day.
function birth(n) {
  const [y, m, d] = [n.slice(6, 10), n.slice(10, 12), n.slice(12, 14)].map(Number);
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > daysInMonth(y, m)) return null;
  return `${n.slice(6, 10)}-${n.slice(10, 12)}-${n.slice(12, 14)}`;
}

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

function idProblem(code, zh, en) {
  return problem("/id_number", code, `身份证号${zh}`, `ID number: ${en}`);
}

// What is wrong with an ID number, after normalising it. Length and characters are reported alone
// (nothing else can be read from such a number); the check character and the birth date are
// independent, so both are reported.
export function idNumberProblems(idNumber, today = localToday()) {
  const chars = Array.from(normaliseIdNumber(idNumber)); // code points, as Python counts them
  const n = chars.join("");
  if (chars.length !== 18) {
    return [idProblem("id_length", `应为 18 位，现为 ${chars.length} 位`,
      `must be 18 characters, not ${chars.length}`)];
  }
  for (const [i, c] of chars.entries()) {
    if (!DIGITS.includes(c) && !(i === 17 && c === "X")) {
      return [idProblem("id_characters",
        `第 ${i + 1} 位“${c}”无效：前 17 位应为数字，第 18 位为数字或 X`,
        `character ${i + 1} "${c}" is not allowed; the first 17 must be digits ` +
          "and the 18th a digit or X")];
    }
  }
  const problems = [];
  const expected = idCheckChar(n.slice(0, 17));
  if (n[17] !== expected) {
    // A wrong check character usually means a wrong digit elsewhere: say so, or the worker
    // "fixes" the last character and stores a valid number of somebody else.
    problems.push(idProblem("id_check_digit",
      `校验位错误，应为 ${expected}：请对照证件逐位核对，不要只改最后一位`,
      `wrong check character, expected ${expected}; check every digit ` +
        "against the card, not just the last"));
  }
  const born = birth(n);
  const shown = `${n.slice(6, 10)}-${n.slice(10, 12)}-${n.slice(12, 14)}`;
  if (born === null) {
    problems.push(idProblem("id_birth_date_invalid", `中的出生日期 ${shown} 不存在`,
      `birth date ${shown} does not exist`));
  } else if (born < EARLIEST_BIRTH) {
    problems.push(idProblem("id_birth_date_early", `中的出生日期 ${shown} 早于 1900-01-01`,
      `birth date ${shown} is before 1900-01-01`));
  } else if (born > today) {
    problems.push(idProblem("id_birth_date_future", `中的出生日期 ${shown} 晚于今天`,
      `birth date ${shown} is in the future`));
  }
  return problems;
}

const SEX_ZH = { "1": "男", "2": "女" };
const SEX_EN = { "1": "male", "2": "female" };

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
        problems.push(problem("/sex", "id_sex_mismatch",
          `性别填写为${SEX_ZH[sex]}，身份证号显示为${SEX_ZH[encoded]}`,
          `Sex is ${SEX_EN[sex]} but the ID number says ${SEX_EN[encoded]}`));
      }
      const [bornYear, bornMonth] = [Number(born.slice(0, 4)), Number(born.slice(5, 7))];
      if (year !== null && year !== bornYear) {
        problems.push(problem("/birth_year", "id_birth_mismatch",
          `出生年份 ${year} 与身份证号中的 ${bornYear} 不符`,
          `Birth year ${year} does not match the ID number (${bornYear})`));
      }
      if (month !== null && month !== bornMonth) {
        problems.push(problem("/birth_month", "id_birth_mismatch",
          `出生月份 ${month} 与身份证号中的 ${bornMonth} 不符`,
          `Birth month ${month} does not match the ID number (${bornMonth})`));
      }
    }
  }
  const [thisYear, thisMonth] = [Number(today.slice(0, 4)), Number(today.slice(5, 7))];
  if (year !== null && year > thisYear) {
    problems.push(problem("/birth_year", "birth_in_future", `出生年份 ${year} 晚于今年`,
      `Birth year ${year} is in the future`));
  } else if (year === thisYear && month !== null && month > thisMonth) {
    const shown = `${year}-${String(month).padStart(2, "0")}`;
    problems.push(problem("/birth_month", "birth_in_future", `出生年月 ${shown} 晚于本月`,
      `Birth year and month ${shown} are in the future`));
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
    return [problem("/building", "building_missing", `找不到${b}幢`, `Building ${b} not found`)];
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
      return [problem("/unit", "unit_missing",
        `${b}幢有 ${units.length} 个单元（${labels.join("、")}），请填写单元`,
        `Building ${b} has ${units.length} units (${labels.join(", ")}); say which`)];
    }
    return [problem("/unit", "unit_missing",
      `${b}幢没有${label}单元，现有：${labels.join("、") || "无"}`,
      `Building ${b} has no unit "${label}"; it has: ${labels.join(", ") || "none"}`)];
  }
  const room = address.room;
  if (typeof room !== "string") return [];
  const [whereZh, whereEn] = [`${b}幢${label}单元`, `Building ${b}, unit ${label}`];
  const [floor, index] = ROOM.test(room)
    ? [Math.floor(Number(room) / 100), Number(room) % 100] : [0, 0];
  if (floor < 1 || index < 1) {
    return [problem("/room", "room_missing",
      `${whereZh}没有${room}室：房号应为楼层×100+本层序号，如 301`,
      `${whereEn} has no room ${room}: rooms are numbered floor × 100 + ` +
        "number on the floor, e.g. 301")];
  }
  if (floor > unit.floors) {
    return [problem("/room", "room_missing",
      `${whereZh}只有 ${unit.floors} 层，没有${room}室`,
      `${whereEn} has only ${unit.floors} floors, so no room ${room}`)];
  }
  if (index > unit.rooms_per_floor) {
    return [problem("/room", "room_missing",
      `${whereZh}每层只有 ${unit.rooms_per_floor} 户，没有${room}室`,
      `${whereEn} has only ${unit.rooms_per_floor} rooms per floor, so no room ${room}`)];
  }
  return [];
}
