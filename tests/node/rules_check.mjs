// Runs rules cases through pwa/rules.js, so tests/test_rules.py can hold the browser's rules to
// the same fixtures as server/domain/rules.py.
//
//   node tests/node/rules_check.mjs CASES.json [--helpers | --formats]
//
// CASES.json is {"cases": [{"fn": "id_number" | "person" | "room", "input", "today"}, ...]}, as in
// tests/fixtures/rules_cases.json. Prints one JSON list with an entry per case: its problems as
// [{field, code, message}], or with --helpers (id_number cases) {birth_date, sex}, or with
// --formats (cases {"input": {"format", "value"}}) whether the value has the format.

import { readFileSync } from "node:fs";

import {
  FORMATS, idBirthDate, idNumberProblems, idSex, personProblems, roomProblems,
} from "../../pwa/rules.js";

const [file, mode] = process.argv.slice(2);
const { cases } = JSON.parse(readFileSync(file, "utf8"));

const RUN = {
  id_number: (c) => idNumberProblems(c.input, c.today),
  person: (c) => personProblems(c.input, c.today),
  room: (c) => roomProblems(c.input.address, c.input.building),
};

function check(c) {
  return RUN[c.fn](c).map((p) => {
    if (p.message !== `${p.zh} / ${p.en}`) throw new Error(`message is not "zh / en": ${p.message}`);
    return { field: p.field, code: p.code, message: p.message };
  });
}

const MODES = {
  "--helpers": (c) => ({ birth_date: idBirthDate(c.input), sex: idSex(c.input) }),
  "--formats": (c) => FORMATS[c.input.format](c.input.value),
};

process.stdout.write(JSON.stringify(cases.map(MODES[mode] ?? check)));
