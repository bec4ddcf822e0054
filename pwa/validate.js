// Validates a record on the phone as the server does (server/domain/validation.py), so a record
// the phone accepts offline is not refused at sync: the same JSON Schemas, the same verdicts, the
// same messages in the same order, then the same person rules (./rules.js).
//
// The schemas are checked by Ajv's standalone validators, compiled from schemas/ by scripts/setup
// into ./generated/validators.js (the app's Content Security Policy forbids compiling them here).
// This module only turns Ajv's errors into the server's messages, whose templates are data in
// schemas/rules.json ("schema_messages"), read by both sides. tests/test_pwa_validator.py runs
// it in Chromium against the server on every fixture document and on every kind of error of
// every schema.
//
// What the server sees is the record as PouchDB sends it: JSON. So the record is checked as JSON
// gives it to Python, and values quoted in messages are written as Python's json.dumps writes
// them (1e-05, not 0.00001).
//
// A problem is {field, zh, en, message}: a JSON Pointer into the record, the Chinese and English
// halves, and message, the server's text for the same problem (for a schema problem "zh / en").

import { VALIDATORS } from "./generated/validators.js";
import SHARED from "./generated/rules.js";
import { fill, fillBoth, listed, personProblems } from "./rules.js";

const MESSAGES = SHARED.schema_messages;
const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// A problem from a [zh, en] template pair of rules.json.
function problem(field, templates, values) {
  const [zh, en] = fillBoth(templates, values);
  return { field, zh, en, message: `${zh} / ${en}` };
}

// ---- values as the server writes them ------------------------------------------------------

// Code points, as Python counts and compares str; JavaScript counts UTF-16 units.
const codePoints = (s) => Array.from(s, (c) => c.codePointAt(0));

function compareStrings(a, b) {
  const [x, y] = [codePoints(a), codePoints(b)];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

// repr() of a Python float: the shortest digits that round-trip (as JavaScript's), in positional
// notation from 1e-4 up to 1e16 and in exponent notation, with at least two exponent digits,
// outside it.
function pythonFloat(x) {
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mantissa, exponent] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const exp = Number(exponent);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  return `${sign}${digits.slice(0, exp + 1).padEnd(exp + 1, "0")}.${digits.slice(exp + 1) || "0"}`;
}

// A number as Python writes the value json.loads made of JSON.stringify's text: an int when the
// text has no fraction or exponent, else a float.
function pythonNumber(n) {
  const text = String(n);
  return /[.e]/.test(text) ? pythonFloat(n) : text;
}

const JSON_ESCAPES = {
  '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
};

// json.dumps(value, ensure_ascii=False): ", " and ": " between members.
function pythonJson(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return pythonNumber(v);
  if (typeof v === "string") {
    return `"${v.replace(/[\x00-\x1f"\\]/g, (c) =>
      JSON_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`;
  }
  if (Array.isArray(v)) return `[${v.map(pythonJson).join(", ")}]`;
  return `{${Object.entries(v).map(([k, x]) => `${pythonJson(k)}: ${pythonJson(x)}`).join(", ")}}`;
}

// server/domain/validation.py _show: a value as JSON, cut to 40 characters.
function show(value) {
  const chars = Array.from(pythonJson(value));
  return chars.length <= 40 ? chars.join("") : `${chars.slice(0, 37).join("")}...`;
}

// ---- Ajv's errors as the server's messages ---------------------------------------------------

// An Ajv instancePath ("/units/10/floors") as its parts, array indexes as numbers, read
// against the record.
function pathOf(instancePath, doc) {
  const parts = [];
  let value = doc;
  for (const raw of instancePath.split("/").slice(1)) {
    const name = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    const part = Array.isArray(value) ? Number(name) : name;
    parts.push(part);
    value = value?.[part];
  }
  return parts;
}

function pointer(path) {
  const parts = path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1"));
  return parts.length ? `/${parts.join("/")}` : "/";
}

// What Ajv's verbose errors carry, found from the paths, for the phone's validators leave it
// out (a fifth of their bytes, scripts/generate-pwa.mjs): the subschema the keyword is in
// (parentSchema) and the keyword's value (schema), by schemaPath in the validator's schema, and
// the value at instancePath (data). Every validator is one function of its own schema (each
// $ref into it is compiled inline), so its schemaPaths are from that schema's root.
function located(error, root, path, doc) {
  if (error.parentSchema !== undefined) return error;
  const parts = error.schemaPath.split("/").slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  let parentSchema = root;
  for (const part of parts.slice(0, -1)) parentSchema = parentSchema?.[part];
  let data = doc;
  for (const part of path) data = data?.[part];
  return { ...error, parentSchema, schema: parentSchema?.[parts.at(-1)], data };
}

// Where the keyword stands in the schema, as the positions of the keywords on the way to it:
// jsonschema reports a field's problems in the order its schema lists the keywords ("then"
// counts as its "if"), Ajv in an order of its own.
function keywordOrder(schemaPath, root) {
  const order = [];
  let schema = root;
  const parts = schemaPath.split("/").slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  for (let i = 0; i < parts.length && isObject(schema); i++) {
    const keyword = parts[i];
    const keys = Object.keys(schema);
    order.push(keys.indexOf(keyword === "then" || keyword === "else" ? "if" : keyword));
    schema = schema[keyword];
    if (keyword === "properties" || keyword === "$defs") schema = schema?.[parts[++i]];
  }
  return order;
}

function compareLists(a, b, compare) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compare(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

// Python's order of two paths: numbers by value, names by code point.
function comparePart(x, y) {
  if (x === y) return 0;
  if (typeof x === "number" && typeof y === "number") return x - y;
  if (typeof x === "string" && typeof y === "string") return compareStrings(x, y);
  return typeof x === "number" ? -1 : 1;
}

// (zh, en) label of one field from its schema's title and x-title-en, else its name.
function title(schema, name) {
  const s = isObject(schema) ? schema : {};
  return [String(s.title || name), String(s["x-title-en"] || name)];
}

// server/domain/validation.py _labels: the field at `path` named as a person reads it ("Address
// · Building"), never a JSON Pointer; `leaf` is the field's own schema where the error names it.
function labels(root, path, leaf = null) {
  const parts = [];
  let schema = root;
  for (const step of path) {
    const node = isObject(schema) ? schema : {};
    if (typeof step === "number") {
      schema = node.items ?? {};
      parts.push(fillBoth(MESSAGES.item, { n: step + 1 }));
    } else {
      const properties = isObject(node.properties) ? node.properties : {};
      schema = hasOwn(properties, step) ? properties[step] : {};
      parts.push(title(schema, step));
    }
  }
  if (isObject(leaf) && leaf.title && path.length && typeof path.at(-1) !== "number") {
    parts[parts.length - 1] = title(leaf, path.at(-1));
  }
  return [0, 1].map((i) => parts.map((p) => p[i]).join(MESSAGES.label_joiner));
}

// server/domain/validation.py describe(): one error (for additionalProperties, the extra fields of
// one object together) as a problem.
function describe({ error, path, extras, root }) {
  const at = pointer(path);
  const schema = isObject(error.parentSchema) ? error.parentSchema : {};
  const { keyword, params } = error;
  if (keyword === "required") {
    const missing = params.missingProperty;
    const properties = isObject(schema.properties) ? schema.properties : {};
    const leaf = hasOwn(properties, missing) && isObject(properties[missing]) ? properties[missing] : null;
    return problem(pointer([...path, missing]), MESSAGES.required,
      { label: labels(root, [...path, missing], leaf) });
  }
  const quoted = labels(root, path, schema).map((text, i) =>
    (text ? fill(MESSAGES.field[i], { label: text }) : MESSAGES.record[i]));
  if (keyword === "additionalProperties") {
    return problem(at, MESSAGES.additionalProperties,
      { place: quoted, names: extras.sort(compareStrings).join(", ") });
  }
  const field = quoted;
  const wanted = [error.schema].flat();
  const values = {
    field,
    value: show(error.data),
    expected: typeof error.schema === "number" ? pythonNumber(error.schema) : String(error.schema),
    options: (keyword === "const" ? [error.schema] : wanted).map(show).join(", "),
    types: [0, 1].map((i) => wanted.map((t) => MESSAGES.type_names[t]?.[i] ?? t)
      .join(MESSAGES.type_joiners[i])),
    reason: error.message ?? `${keyword} ${JSON.stringify(params)}`, // messages are left out
  };
  const name = MESSAGES.same_as[keyword] ?? keyword;
  return problem(at, MESSAGES[hasOwn(MESSAGES, name) ? name : "other"], values);
}

// Ajv's errors as the server reports jsonschema's: sorted by the field they are about, those of
// one field in the order its schema lists the keywords; an object's extra fields in one problem;
// the "if" that only says its "then" failed left out.
function problemsOf(doc, validate) {
  if (validate(doc)) return [];
  const errors = [];
  const extraOf = new Map();
  for (const found of validate.errors) {
    if (found.keyword === "if") continue;
    const path = pathOf(found.instancePath, doc);
    const error = located(found, validate.schema, path, doc);
    if (error.keyword === "additionalProperties") {
      const group = extraOf.get(error.instancePath);
      if (group) { group.push(error.params.additionalProperty); continue; }
      extraOf.set(error.instancePath, [error.params.additionalProperty]);
    }
    errors.push({ error, path, extras: extraOf.get(error.instancePath), root: validate.schema,
      order: keywordOrder(error.schemaPath, validate.schema) });
  }
  errors.sort((a, b) => compareLists(a.path, b.path, comparePart) ||
    compareLists(a.order, b.order, (x, y) => x - y));
  return errors.map(describe);
}

// The record as the server receives it: what JSON.stringify keeps of it, parsed again.
const asSent = (doc) => JSON.parse(JSON.stringify(doc));

// The problems of `doc` against one compiled schema (a validator of ./generated/validators.js,
// or any Ajv validator made with the options scripts/generate-pwa.mjs uses), [] when valid.
export function schemaProblems(doc, validate) {
  return problemsOf(asSent(doc), validate);
}

// The newest version of a record type's validator.
function latest(type) {
  const versions = VALIDATORS[type] || {};
  return versions[Math.max(...Object.keys(versions).map(Number))];
}

// The problems of one field's value, as the newest form of `type` states them (for a value typed
// in to settle a conflict): only those at the field or inside it.
export function fieldProblems(type, field, value) {
  const validate = latest(type);
  if (!validate) return [];
  const at = pointer([field]);
  return schemaProblems({ [field]: value }, validate)
    .filter((p) => p.field === at || p.field.startsWith(`${at}/`));
}

// What the server says of a record (SchemaRegistry.problems, or when the schema is satisfied
// domain_problems): an unknown type or version, else the schema's problems, else the person
// rules. `today` is "YYYY-MM-DD" (by default the phone's date). CouchDB's own members (_id,
// _rev...) are skipped.
export function documentProblems(doc, today = undefined) {
  const sent = asSent(doc);
  const body = Object.fromEntries(Object.entries(sent).filter(([k]) => !k.startsWith("_")));
  const { type, schema_version: version } = body;
  if (typeof type !== "string" || !hasOwn(VALIDATORS, type)) {
    const known = Object.keys(VALIDATORS).sort(compareStrings);
    return [problem("/type", MESSAGES.unknown_type, { value: show(type), known: listed(known) })];
  }
  const versions = VALIDATORS[type];
  // The server looks versions up as Python ints, and a Python bool is an int: true finds
  // version 1 (whose schema_version const then refuses it).
  const key = version === true ? 1 : version === false ? 0 : version;
  if (!Number.isInteger(key) || !hasOwn(versions, String(key))) {
    const known = Object.keys(versions).map(Number).sort((a, b) => a - b).join(", ");
    return [problem("/schema_version", MESSAGES.unknown_version,
      { type, value: show(version), known })];
  }
  const problems = problemsOf(body, versions[String(key)]);
  if (problems.length || type !== "person") return problems;
  return personProblems(sent, today).map((p) =>
    ({ field: p.field, zh: p.zh, en: p.en, message: p.message }));
}
