// Validates a record in the browser exactly as the server does (server/domain/validation.py), so a record
// the phone accepts offline is not refused at sync: the same JSON Schemas, the same verdicts, the
// same messages in the same order, then the same person rules (./rules.js, the port of
// server/domain/rules.py). tests/test_pwa_validator.py runs this file in Chromium against the server on
// every fixture document; change the two together.
//
// An interpreter of the JSON Schema keywords schemas/ uses, not generated code: the PWA's Content
// Security Policy forbids eval and new Function. A keyword it does not implement is refused
// loudly rather than ignored, so a new schema cannot make the phone laxer than the server.
//
// What the server sees is the record as PouchDB sends it: JSON. So the record is checked as JSON
// gives it to Python (1 and 1.0 are one number in JavaScript and both reach the server as 1), and
// the values quoted in messages are written as Python writes them (json.dumps, repr).
//
// A problem is {field, zh, en, message}: a JSON Pointer into the record, the Chinese and English
// halves, and message, the server's text for the same problem (for a schema problem "zh / en").
// Plain ES module: no build step, no dependencies.

import { personProblems } from "./rules.js";

const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function problem(field, zh, en, message = `${zh} / ${en}`) {
  return { field, zh, en, message };
}

// ---- Python's view of values -------------------------------------------------------------

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
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
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

// What str.isprintable() refuses beyond ASCII: other, separator and unassigned characters.
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

function pythonStrRepr(s) {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    const hex = (width) => cp.toString(16).padStart(width, "0");
    if (ch === quote || ch === "\\") out += `\\${ch}`;
    else if (ch === "\t") out += "\\t";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${hex(2)}`;
    else if (cp < 0x80 || !NOT_PRINTABLE.test(ch)) out += ch;
    else if (cp <= 0xff) out += `\\x${hex(2)}`;
    else if (cp <= 0xffff) out += `\\u${hex(4)}`;
    else out += `\\U${hex(8)}`;
  }
  return out + quote;
}

// repr(value), as jsonschema quotes an instance in its own messages.
function pythonRepr(v) {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return pythonNumber(v);
  if (typeof v === "string") return pythonStrRepr(v);
  if (Array.isArray(v)) return `[${v.map(pythonRepr).join(", ")}]`;
  return `{${Object.entries(v).map(([k, x]) => `${pythonStrRepr(k)}: ${pythonRepr(x)}`)
    .join(", ")}}`;
}

// server/domain/validation.py _show: a value as JSON, cut to 40 characters.
function show(value) {
  const chars = Array.from(pythonJson(value));
  return chars.length <= 40 ? chars.join("") : `${chars.slice(0, 37).join("")}...`;
}

function pointer(path) {
  const parts = path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1"));
  return parts.length ? `/${parts.join("/")}` : "/";
}

// ---- JSON Schema 2020-12, as jsonschema applies it ---------------------------------------

// jsonschema's equality: a boolean is never a number (True == 1 in Python, not in JSON Schema);
// arrays and objects compare member by member.
function equal(a, b) {
  if (typeof a === "string" || typeof b === "string") return a === b;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length &&
      keys.every((k) => hasOwn(b, k) && equal(a[k], b[k]));
  }
  return a === b;
}

const TYPES = {
  string: (v) => typeof v === "string",
  number: (v) => typeof v === "number",
  // 1.0 is an integer in JSON Schema too; JavaScript cannot tell the two apart anyway.
  integer: (v) => typeof v === "number" && Number.isInteger(v),
  boolean: (v) => typeof v === "boolean",
  object: isObject,
  array: Array.isArray,
  null: (v) => v === null,
};

function isType(value, type) {
  if (!hasOwn(TYPES, type)) throw new Error(`validate.js: unknown type ${JSON.stringify(type)}`);
  return TYPES[type](value);
}

function daysInMonth(y, m) {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

const DATE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
// rfc3339-validator's expression. The server upper-cases the text first (so "t" and "z" pass);
// a trailing newline is refused on both sides (server/domain/validation.py `_format_checker`).
const DATE_TIME = new RegExp(
  "^([0-9]{4})-(0[1-9]|1[0-2])-([0-9]{2})[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]" +
  "(?:\\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$");

function realDay(match) {
  const [y, m, d] = match.slice(1, 4).map(Number);
  return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth(y, m);
}

// The formats the schemas use, checked as jsonschema's format checker does: an RFC 3339
// full-date that exists in the calendar, and an RFC 3339 date-time with its offset.
const FORMATS = {
  date: (s) => { const m = DATE.exec(s); return m !== null && realDay(m); },
  "date-time": (s) => { const m = DATE_TIME.exec(s); return m !== null && realDay(m); },
};

// A Python `re` pattern as a JavaScript one with the same matches (re.search: not anchored unless
// the pattern is). A final "$" is the end of the text on both sides (the server reads it so, see
// server/domain/validation.py `ecma_pattern`); Python's "." matches any
// character but "\n" (JavaScript's skips "\r" and U+2028 too) and its "\d" any Unicode digit.
function pythonPattern(source) {
  let out = "";
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "\\") {
      const next = source[++i] ?? "";
      out += next === "d" ? "\\p{Nd}" : next === "D" ? "\\P{Nd}" : `\\${next}`;
    } else if (inClass) {
      if (c === "]") inClass = false;
      out += c;
    } else if (c === "[") {
      inClass = true;
      out += c;
      if (source[i + 1] === "^") out += source[++i];
      if (source[i + 1] === "]") { out += "\\]"; i++; } // Python: a leading "]" is literal
    } else if (c === ".") {
      out += "[^\\n]";
    } else {
      out += c;
    }
  }
  return new RegExp(out, "u");
}

const patterns = new Map();
function compiled(source) {
  if (!patterns.has(source)) patterns.set(source, pythonPattern(source));
  return patterns.get(source);
}

// Keywords of JSON Schema 2020-12 that validate but are not implemented here.
const UNSUPPORTED = new Set([
  "allOf", "anyOf", "oneOf", "not", "prefixItems", "contains", "minContains", "maxContains",
  "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas",
  "unevaluatedItems", "unevaluatedProperties", "multipleOf", "minProperties", "maxProperties",
  "$dynamicRef",
]);

function resolve(ref, root) {
  if (!ref.startsWith("#")) {
    throw new Error(`validate.js: ${ref} is not inlined (see inline_refs in server/domain/validation.py)`);
  }
  let target = root;
  for (const part of ref.slice(1).split("/").slice(1)) {
    const name = decodeURIComponent(part).replaceAll("~1", "/").replaceAll("~0", "~");
    if (target === null || typeof target !== "object" || !hasOwn(target, name)) {
      throw new Error(`validate.js: unresolvable reference ${ref}`);
    }
    target = target[name];
  }
  return target;
}

// Each keyword pushes its errors as jsonschema yields them: {path, kind, expected, instance,
// schema (the one holding the keyword), message (jsonschema's, where the server shows it)}.
const KEYWORDS = {
  $ref(v, ref, schema, path, ctx) {
    check(v, resolve(ref, ctx.root), path, ctx);
  },
  type(v, types, schema, path, ctx) {
    const wanted = Array.isArray(types) ? types : [types];
    if (!wanted.some((t) => isType(v, t))) ctx.fail(path, "type", types, v, schema);
  },
  const(v, value, schema, path, ctx) {
    if (!equal(v, value)) ctx.fail(path, "const", value, v, schema);
  },
  enum(v, values, schema, path, ctx) {
    if (!values.some((e) => equal(e, v))) ctx.fail(path, "enum", values, v, schema);
  },
  maxLength(v, n, schema, path, ctx) {
    if (typeof v === "string" && codePoints(v).length > n) {
      ctx.fail(path, "maxLength", n, v, schema);
    }
  },
  minLength(v, n, schema, path, ctx) {
    if (typeof v === "string" && codePoints(v).length < n) {
      ctx.fail(path, "minLength", n, v, schema);
    }
  },
  pattern(v, source, schema, path, ctx) {
    if (typeof v === "string" && !compiled(source).test(v)) {
      ctx.fail(path, "pattern", source, v, schema);
    }
  },
  format(v, name, schema, path, ctx) {
    if (!hasOwn(FORMATS, name)) throw new Error(`validate.js: format ${name} is not checked here`);
    if (typeof v === "string" && !FORMATS[name](v)) ctx.fail(path, "format", name, v, schema);
  },
  minimum(v, n, schema, path, ctx) {
    if (typeof v === "number" && v < n) ctx.fail(path, "minimum", n, v, schema);
  },
  maximum(v, n, schema, path, ctx) {
    if (typeof v === "number" && v > n) ctx.fail(path, "maximum", n, v, schema);
  },
  exclusiveMinimum(v, n, schema, path, ctx) {
    if (typeof v === "number" && v <= n) ctx.fail(path, "exclusiveMinimum", n, v, schema);
  },
  exclusiveMaximum(v, n, schema, path, ctx) {
    if (typeof v === "number" && v >= n) ctx.fail(path, "exclusiveMaximum", n, v, schema);
  },
  required(v, names, schema, path, ctx) {
    if (!isObject(v)) return;
    for (const name of names) {
      if (!hasOwn(v, name)) ctx.fail(path, "required", names, v, schema, { missing: name });
    }
  },
  properties(v, properties, schema, path, ctx) {
    if (!isObject(v)) return;
    for (const [name, sub] of Object.entries(properties)) {
      if (hasOwn(v, name)) check(v[name], sub, [...path, name], ctx);
    }
  },
  additionalProperties(v, allowed, schema, path, ctx) {
    if (!isObject(v)) return;
    const known = isObject(schema.properties) ? schema.properties : {};
    const extras = Object.keys(v).filter((k) => !hasOwn(known, k));
    if (isObject(allowed)) {
      for (const name of extras) check(v[name], allowed, [...path, name], ctx);
    } else if (allowed === false && extras.length) {
      ctx.fail(path, "additionalProperties", allowed, v, schema);
    }
  },
  items(v, items, schema, path, ctx) {
    if (Array.isArray(v)) v.forEach((item, i) => check(item, items, [...path, i], ctx));
  },
  minItems(v, n, schema, path, ctx) {
    if (Array.isArray(v) && v.length < n) {
      ctx.fail(path, "minItems", n, v, schema,
        { message: `${pythonRepr(v)} ${n === 1 ? "should be non-empty" : "is too short"}` });
    }
  },
  maxItems(v, n, schema, path, ctx) {
    if (Array.isArray(v) && v.length > n) {
      ctx.fail(path, "maxItems", n, v, schema,
        { message: `${pythonRepr(v)} ${n === 0 ? "is expected to be empty" : "is too long"}` });
    }
  },
  uniqueItems(v, unique, schema, path, ctx) {
    if (unique && Array.isArray(v) && v.some((x, i) => v.slice(0, i).some((y) => equal(x, y)))) {
      ctx.fail(path, "uniqueItems", unique, v, schema,
        { message: `${pythonRepr(v)} has non-unique elements` });
    }
  },
  // "then" and "else" act only through "if", where "if" stands among the keywords.
  if(v, condition, schema, path, ctx) {
    if (isValid(v, condition, ctx.root)) {
      if (hasOwn(schema, "then")) check(v, schema.then, path, ctx);
    } else if (hasOwn(schema, "else")) {
      check(v, schema.else, path, ctx);
    }
  },
};

function check(value, schema, path, ctx) {
  if (schema === true) return;
  if (schema === false) {
    ctx.fail(path, null, null, value, schema,
      { message: `False schema does not allow ${pythonRepr(value)}` });
    return;
  }
  for (const [keyword, argument] of Object.entries(schema)) {
    if (hasOwn(KEYWORDS, keyword)) KEYWORDS[keyword](value, argument, schema, path, ctx);
    else if (UNSUPPORTED.has(keyword)) {
      throw new Error(`validate.js: the keyword ${keyword} is not implemented`);
    }
  }
}

function errorsOf(value, schema, root) {
  const errors = [];
  const fail = (path, kind, expected, instance, where, extra = {}) =>
    errors.push({ path, kind, expected, instance, schema: where, ...extra });
  check(value, schema, [], { root, fail });
  return errors;
}

const isValid = (value, schema, root) => errorsOf(value, schema, root).length === 0;

// ---- messages: server/domain/validation.py describe() --------------------------------------------

const TYPE_NAMES = new Map([
  ["string", ["文字", "text"]], ["integer", ["整数", "a whole number"]],
  ["number", ["数字", "a number"]], ["boolean", ["是/否", "yes/no"]],
  ["object", ["对象", "an object"]], ["array", ["列表", "a list"]], ["null", ["空值", "null"]],
]);

// (zh, en) label of a field from its schema's title and x-title-en.
function label(schema, name = null) {
  if (name !== null) {
    const properties = isObject(schema.properties) ? schema.properties : {};
    schema = hasOwn(properties, name) && isObject(properties[name]) ? properties[name] : {};
  }
  return [String(schema.title || name || ""), String(schema["x-title-en"] || name || "")];
}

function describe(error) {
  const at = pointer(error.path);
  const { kind, expected } = error;
  const schema = isObject(error.schema) ? error.schema : {};
  if (kind === "required") {
    const [zh, en] = label(schema, error.missing);
    const where = pointer([...error.path, error.missing]);
    return problem(where, `缺少必填项“${zh}”(${where})`, `${en} (${where}) is required`);
  }
  if (kind === "additionalProperties") {
    const known = isObject(schema.properties) ? schema.properties : {};
    const names = Object.keys(error.instance).filter((k) => !hasOwn(known, k))
      .sort(compareStrings).join(", ");
    return problem(at, `${at}：不允许的字段 ${names}`, `${at}: field(s) not allowed: ${names}`);
  }
  const [zhLabel, enLabel] = label(schema);
  const fieldZh = zhLabel ? `“${zhLabel}”(${at})` : at;
  const fieldEn = enLabel ? `${enLabel} (${at})` : at;
  const value = show(error.instance);
  const number = typeof expected === "number" ? pythonNumber(expected) : String(expected);
  switch (kind) {
    case "enum":
    case "const": {
      const shown = (kind === "enum" ? expected : [expected]).map(show).join(", ");
      return problem(at, `${fieldZh} 的值 ${value} 无效，应为 ${shown} 之一`,
        `${fieldEn}: ${value} is not one of ${shown}`);
    }
    case "type": {
      const wanted = (Array.isArray(expected) ? expected : [expected])
        .map((t) => TYPE_NAMES.get(t) ?? [t, t]);
      return problem(at, `${fieldZh} 应为${wanted.map((n) => n[0]).join("或")}，收到 ${value}`,
        `${fieldEn} must be ${wanted.map((n) => n[1]).join(" or ")}, got ${value}`);
    }
    case "format":
      return problem(at, `${fieldZh} 格式错误，应为 ${expected} 格式，收到 ${value}`,
        `${fieldEn} is not a valid ${expected}: ${value}`);
    case "pattern":
      return problem(at, `${fieldZh} 格式错误：${value}`, `${fieldEn} has the wrong form: ${value}`);
    case "minimum":
    case "exclusiveMinimum":
      return problem(at, `${fieldZh} 不能小于 ${number}，收到 ${value}`,
        `${fieldEn} must be at least ${number}, got ${value}`);
    case "maximum":
    case "exclusiveMaximum":
      return problem(at, `${fieldZh} 不能大于 ${number}，收到 ${value}`,
        `${fieldEn} must be at most ${number}, got ${value}`);
    case "maxLength":
      return problem(at, `${fieldZh} 太长，最多 ${number} 个字`,
        `${fieldEn} is too long (at most ${number} characters)`);
    case "minLength":
      return problem(at, `${fieldZh} 太短，至少 ${number} 个字`,
        `${fieldEn} is too short (at least ${number} characters)`);
    default:
      return problem(at, `${fieldZh} 无效：${error.message}`,
        `${fieldEn} is invalid: ${error.message}`);
  }
}

function comparePaths(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const [x, y] = [a[i], b[i]];
    if (x === y) continue;
    if (typeof x === "number" && typeof y === "number") return x - y;
    if (typeof x === "string" && typeof y === "string") return compareStrings(x, y);
    return typeof x === "number" ? -1 : 1;
  }
  return a.length - b.length;
}

// The record as the server receives it: what JSON.stringify keeps of it, parsed again.
const asSent = (doc) => JSON.parse(JSON.stringify(doc));

function problemsOf(doc, schema) {
  return errorsOf(doc, schema, schema).sort((a, b) => comparePaths(a.path, b.path))
    .map(describe);
}

// The problems of `doc` against one schema whose references to other files are inlined (as the
// server sends them; "#/..." references are resolved against the schema), [] when valid. Sorted
// by field, as the server sorts them.
export function schemaProblems(doc, schema) {
  return problemsOf(asSent(doc), schema);
}

// What the server says of a record (SchemaRegistry.problems, or when the schema is satisfied
// domain_problems): an unknown type or version, else the schema's problems, else the person
// rules. `schemas` maps each type to its versions, {type: {version: inlined schema}}; `today` is
// "YYYY-MM-DD" (by default the phone's date). CouchDB's own members (_id, _rev...) are skipped.
export function documentProblems(doc, schemas, today = undefined) {
  const sent = asSent(doc);
  const body = Object.fromEntries(Object.entries(sent).filter(([k]) => !k.startsWith("_")));
  const { type, schema_version: version } = body;
  if (typeof type !== "string" || !hasOwn(schemas, type)) {
    const known = Object.keys(schemas).sort(compareStrings);
    return [problem("/type", `字段 type：未知的记录类型 ${show(type)}，应为 ${known.join("、")} 之一`,
      `type: unknown record type ${show(type)}; expected one of ${known.join(", ")}`)];
  }
  const versions = schemas[type];
  // The server looks versions up as Python ints, and a Python bool is an int: true finds
  // version 1 (whose schema_version const then refuses it).
  const key = version === true ? 1 : version === false ? 0 : version;
  if (!Number.isInteger(key) || !hasOwn(versions, String(key))) {
    const known = Object.keys(versions).map(Number).sort((a, b) => a - b).join(", ");
    return [problem("/schema_version",
      `字段 schema_version：${type} 没有版本 ${show(version)}，可用版本 ${known}`,
      `schema_version: ${type} has no version ${show(version)}; known versions ${known}`)];
  }
  const problems = problemsOf(body, versions[String(key)]);
  if (problems.length || type !== "person") return problems;
  return personProblems(sent, today).map((p) =>
    problem(p.field, p.zh, p.en, `${p.field}: ${p.message}`));
}
