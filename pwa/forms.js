// Forms built from the record schemas (`schemas/`, served inlined as schemas.json): one field per
// property in the schema's order, labelled from `title` / `x-title-en`, codes offered from
// `x-enum-labels`, and the validator's problems shown at the field they name (a JSON Pointer).
// What the worker typed is kept as typed (a draft), so a wrong value is shown back to be fixed,
// never silently dropped or coerced.

import { fieldLabel, message, pick, t } from "./i18n.js";
import { el } from "./dom.js";

// Fields the app fills in, never the worker (`edits`: edits.js stamps them on save).
export const SYSTEM = new Set(["type", "schema_version", "grid", "created_by", "device_time", "household",
  "person", "campaign", "record", "record_rev", "edits"]);

let formCounter = 0;

function pointerOf(path) {
  return "/" + path.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
}

function isLong(schema) {
  return (schema.maxLength || 0) > 120;
}

function getPath(obj, path) {
  let value = obj;
  for (const key of path) {
    if (value == null || typeof value !== "object") return undefined;
    value = value[key];
  }
  return value;
}

// A form for `schema`, showing `doc`'s values (or a draft's raw values). `hidden` lists extra
// paths ("registry", "address/compound") the worker does not edit.
export function buildForm({ schema, doc = {}, draft = null, hidden = [], onInput = null }) {
  const formId = `f${++formCounter}`;
  const fields = [];
  const skip = new Set(hidden);
  const form = el("form", { class: "record-form", novalidate: "" });
  const summary = el("div", { class: "form-summary", role: "alert", hidden: "" });
  form.append(summary);

  function addField(container, name, prop, path, required) {
    const key = path.join("/");
    if (skip.has(key) || (path.length === 1 && SYSTEM.has(name))) return;
    const label = fieldLabel(prop, name);
    const id = `${formId}-${path.join("-")}`;
    if (prop.type === "object" && prop.properties) {
      const fieldset = el("fieldset", { class: "group", "data-pointer": pointerOf(path) },
        el("legend", {}, label));
      const inner = new Set(prop.required || []);
      for (const [sub, subProp] of Object.entries(prop.properties)) {
        addField(fieldset, sub, subProp, [...path, sub], inner.has(sub));
      }
      fieldset.append(el("p", { class: "error", id: `${id}-error` }));
      container.append(fieldset);
      return;
    }
    const wrap = el("div", { class: "field", "data-pointer": pointerOf(path) });
    const error = el("p", { class: "error", id: `${id}-error` });
    const labelText = required ? `${label} *` : label;
    let input;
    let kind;
    if (prop.type === "array" && prop.items && prop.items.enum) {
      kind = "set";
      input = el("fieldset", { class: "choices", id, "aria-describedby": `${id}-error` },
        el("legend", {}, labelText));
      // A set's labels are the array's own (x-enum-labels beside `items`), or its items'.
      const labels = prop["x-enum-labels"] || prop.items["x-enum-labels"] || {};
      for (const value of prop.items.enum) {
        const boxId = `${id}-${value}`;
        input.append(el("label", { class: "choice", for: boxId },
          el("input", { type: "checkbox", id: boxId, value }),
          " ", pick(labels[value] || value)));
      }
      wrap.append(input);
    } else {
      if (prop.enum) {
        kind = "enum";
        input = el("select", { id });
        input.append(el("option", { value: "" }, t("choose")));
        for (const value of prop.enum) {
          input.append(el("option", { value: String(value) }, pick((prop["x-enum-labels"] || {})[value] || value)));
        }
      } else if (prop.type === "boolean") {
        kind = "boolean";
        input = el("select", { id },
          el("option", { value: "" }, t("choose")),
          el("option", { value: "true" }, t("yes")),
          el("option", { value: "false" }, t("no")));
      } else if (prop.type === "integer" || prop.type === "number") {
        kind = prop.type;
        input = el("input", { id, type: "text", inputmode: prop.type === "integer" ? "numeric" : "decimal",
          autocomplete: "off" });
      } else if (prop.format === "date") {
        kind = "string";
        input = el("input", { id, type: "date" });
      } else if (isLong(prop)) {
        kind = "string";
        input = el("textarea", { id, rows: "3" });
      } else {
        kind = "string";
        const tel = name === "phone";
        input = el("input", { id, type: tel ? "tel" : "text", autocomplete: "off",
          inputmode: tel || name === "id_number" ? (tel ? "tel" : "text") : null });
      }
      input.setAttribute("aria-describedby", `${id}-error`);
      if (required) input.setAttribute("aria-required", "true");
      input.name = key;
      wrap.append(el("label", { for: id }, labelText), input);
    }
    wrap.append(error);
    container.append(wrap);
    fields.push({ key, path, kind, input, wrap, error });
  }

  const required = new Set(schema.required || []);
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    addField(form, name, prop, [name], required.has(name));
  }

  function setRaw(field, raw) {
    if (field.kind === "set") {
      const chosen = new Set(Array.isArray(raw) ? raw.map(String) : []);
      for (const box of field.input.querySelectorAll("input[type=checkbox]")) box.checked = chosen.has(box.value);
    } else {
      field.input.value = raw == null ? "" : String(raw);
    }
  }

  // What is in the fields, as typed: the draft.
  function rawValues() {
    const raw = {};
    for (const field of fields) {
      if (field.kind === "set") {
        raw[field.key] = [...field.input.querySelectorAll("input:checked")].map((b) => b.value);
      } else {
        raw[field.key] = field.input.value;
      }
    }
    return raw;
  }

  function fill(raw) {
    for (const field of fields) if (field.key in raw) setRaw(field, raw[field.key]);
  }

  for (const field of fields) setRaw(field, getPath(doc, field.path));
  if (draft) fill(draft);

  // The document with the form's values: typed values where they parse, the text as typed
  // where they do not (so the validator names the field), empty fields removed.
  function apply(base) {
    const out = structuredClone(base);
    for (const field of fields) {
      const raw = field.kind === "set" ? rawValues()[field.key] : field.input.value.trim();
      let value;
      if (field.kind === "set") value = raw.length ? raw : undefined;
      else if (raw === "") value = undefined;
      else if (field.kind === "integer") value = /^-?\d+$/.test(raw) ? Number(raw) : raw;
      else if (field.kind === "number") value = /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
      else if (field.kind === "boolean") value = raw === "true";
      else value = raw;
      let parent = out;
      for (const key of field.path.slice(0, -1)) {
        if (parent[key] == null || typeof parent[key] !== "object") parent[key] = {};
        parent = parent[key];
      }
      const last = field.path[field.path.length - 1];
      if (value === undefined) delete parent[last];
      else parent[last] = value;
    }
    return out;
  }

  function clearProblems() {
    summary.hidden = true;
    summary.replaceChildren();
    for (const node of form.querySelectorAll(".has-error")) node.classList.remove("has-error");
    for (const node of form.querySelectorAll(".error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }

  // Each problem at the field its pointer names, or the nearest enclosing group; the rest above.
  function showProblems(problems) {
    clearProblems();
    const general = [];
    let first = null;
    for (const problem of problems) {
      let pointer = problem.field || "";
      let target = null;
      while (pointer && !target) {
        target = form.querySelector(`[data-pointer="${CSS.escape(pointer)}"]`);
        if (!target) pointer = pointer.slice(0, Math.max(pointer.lastIndexOf("/"), 0));
      }
      const text = message(problem.message);
      if (!target) {
        general.push(text);
        continue;
      }
      target.classList.add("has-error");
      const error = target.querySelector(":scope > .error");
      error.textContent = error.textContent ? `${error.textContent}；${text}` : text;
      const control = target.querySelector("input, select, textarea");
      if (control) control.setAttribute("aria-invalid", "true");
      first = first || control;
    }
    summary.append(el("p", {}, t("fix_fields")), ...general.map((g) => el("p", {}, g)));
    summary.hidden = false;
    if (first) first.focus();
    else summary.focus?.();
  }

  if (onInput) {
    form.addEventListener("input", () => onInput(rawValues()));
    form.addEventListener("change", () => onInput(rawValues()));
  }

  return { form, apply, rawValues, fill, showProblems, clearProblems, fields };
}
