// Runs documents through a schema compiled at run time with the options of the phone's
// validators (scripts/generate-pwa.mjs `compiler`), and pwa/validate.js `schemaProblems`, so
// tests/test_pwa_validator.py can compare any schema's messages with the server's `describe`.
//
//   node tests/node/schema_check.mjs CASE.json
//
// CASE.json is {"schema": {...}, "docs": [...]}. Prints one JSON list: each document's problems.

import { readFileSync } from "node:fs";

import { FORMATS } from "../../pwa/rules.js";
import { schemaProblems } from "../../pwa/validate.js";
import { compiler } from "../../scripts/generate-pwa.mjs";

const { schema, docs } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const validate = compiler(FORMATS, [schema]).compile(schema);
process.stdout.write(JSON.stringify(docs.map((doc) => schemaProblems(doc, validate))));
