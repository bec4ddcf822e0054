// Who last changed each field of a record, and when (`edits`, in household and person records
// from version 2), so that the server can merge two phones' concurrent edits field by field.
//
// Rule: on every save, each top-level field whose value differs from the record as it was when the
// form opened (a deep comparison; a field added or removed counts) gets the entry
// {field, at: a stamp of the phone's hybrid logical clock, by: the user}, replacing that field's
// earlier entry; the other entries stay as they were. A new record gets an entry for each field
// the worker filled in. CouchDB's own members (`_id`, `_rev`...), the phone's time, the version
// and `edits` itself are not fields of the record's content. All fields of one save share one
// stamp: they were changed at the same moment.

import { stamp as clockStamp } from "./clock.js";

// Version 2 of these types is version 1 plus `edits` (the schemas say so), so a version 1 record
// becomes version 2 by its number alone. No other upgrade is that simple: add one here only when
// the newer schema is the older one plus optional fields.
const EDIT_UPGRADES = { household: { from: 1, to: 2 }, person: { from: 1, to: 2 } };

function ignored(name) {
  return name.startsWith("_") || name === "device_time" || name === "edits" || name === "schema_version";
}

// Equal as JSON values: objects whatever their key order; arrays in order, except where the
// schema makes the array a set (uniqueItems), which a form may give back in another order.
export function sameValue(a, b, prop = null) {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    if (prop && prop.uniqueItems) {
      const key = (v) => JSON.stringify(canonical(v));
      const left = a.map(key).sort();
      const right = b.map(key).sort();
      return left.every((v, i) => v === right[i]);
    }
    return a.every((v, i) => sameValue(v, b[i], prop && prop.items));
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k], prop && prop.properties && prop.properties[k]));
}

function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
  }
  return value;
}

// The record at the newest version its type can be raised to without changing anything else.
export function upgraded(doc, types) {
  const upgrade = EDIT_UPGRADES[doc.type];
  if (!upgrade || doc.schema_version !== upgrade.from || !(types[doc.type] || {})[upgrade.to]) return doc;
  return { ...doc, schema_version: upgrade.to };
}

// The top-level fields of `after` that differ from `before` (null for a new record, whose fields
// in `appFilled` are the app's, not the worker's).
export function changedFields(before, after, schema = {}, appFilled = new Set()) {
  const props = schema.properties || {};
  const names = new Set([...Object.keys(before || {}), ...Object.keys(after)]);
  return [...names].filter((name) => {
    if (ignored(name) || (!before && appFilled.has(name))) return false;
    const had = before ? Object.hasOwn(before, name) : false;
    const has = Object.hasOwn(after, name);
    if (had !== has) return true;
    return has && !sameValue(before[name], after[name], props[name]);
  });
}

// `after`, upgraded where it can be, with the edits of this save recorded when its schema has
// `edits`. `stamp` is the clock (a function), `by` the user.
export function withEdits(before, after, { types, by, stamp = clockStamp, appFilled = new Set() }) {
  const doc = upgraded(after, types);
  const schema = (types[doc.type] || {})[doc.schema_version];
  if (!schema || !schema.properties || !schema.properties.edits) return doc;
  const changed = changedFields(before, doc, schema, appFilled);
  if (changed.length === 0) return doc;
  const at = stamp();
  const earlier = Array.isArray(doc.edits) ? doc.edits : [];
  const edits = earlier.map((e) => (changed.includes(e.field) ? { field: e.field, at, by } : e));
  const order = Object.keys(schema.properties);
  for (const field of changed.sort((a, b) => order.indexOf(a) - order.indexOf(b))) {
    if (!earlier.some((e) => e.field === field)) edits.push({ field, at, by });
  }
  return { ...doc, edits };
}
