"""Validation of every document written through the gateway: the JSON Schemas in `schemas/` (the
single source of truth; one validator per type and version, built once), and the rules a schema
cannot state: who may write what, the fields the server owns, ids, sizes and attachments.

A refusal carries a reason a grid worker can act on, naming the field and what was expected, in
zh-CN and English. It is reported per document, so the rest of a batch is still written.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import jsonschema
import referencing
import referencing.jsonschema

from server.config import SETTINGS_BY_NAME, shipped
from server.domain import retention, rules
from server.domain.messages import bilingual
from server.domain.scope import User, grid_db

SCHEMA_DIR = shipped("schemas")
SCHEMA_FILE = re.compile(r"^(?P<type>[a-z][a-z_]*)\.v(?P<version>[1-9][0-9]*)\.schema\.json$")

# A grid record's id says what it is: "<type>:<key>", e.g. "household_visit:h0042:7f3a".
RECORD_ID = re.compile(r"^(?P<type>[a-z][a-z_]*):[A-Za-z0-9_.:-]{1,200}$")
MAX_ID_LENGTH = 256
# Members CouchDB itself allows on a document; any other leading underscore is refused.
SPECIAL_MEMBERS = frozenset({"_id", "_rev", "_revisions", "_attachments", "_deleted",
                             "_conflicts", "_deleted_conflicts", "_local_seq", "_revs_info"})
REVISION = re.compile(r"^[1-9][0-9]{0,9}-[0-9a-zA-Z]{1,64}\Z")
REVISION_HASH = re.compile(r"^[0-9a-zA-Z]{1,64}\Z")
# The longest history a revision may carry: CouchDB's default _revs_limit, beyond which neither
# CouchDB nor PouchDB keeps ancestors anyway.
MAX_REVISIONS = 1000
# All a deletion may carry. The record's type is in its id, its grid is the database's, and its
# author is that of the revision it replaces (server/sync/replication.py reads it): no field of the
# body is needed, so none is kept, and a tombstone cannot smuggle data past the schemas.
TOMBSTONE_MEMBERS = frozenset({"_id", "_rev", "_deleted", "_revisions"})
# The content types any document may carry (an admin's design documents): none a browser runs
# as a page or script. A form lists its own among them (`x-attachments` in its schema).
ATTACHMENT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/pdf"})
# What an attachment object may hold (CouchDB's names); `follows` needs a multipart body, which
# the gateway never takes.
ATTACHMENT_MEMBERS = frozenset({"content_type", "data", "stub", "digest", "length", "revpos",
                                "encoding", "encoded_length", "follows"})
MAX_ATTACHMENT_NAME_BYTES = 255  # as a file name
# C0 and C1 controls, DEL, lone surrogates and the bidirectional controls (which can make
# "photo\u202egnp.exe" read as "photoexe.png").
UNSAFE_NAME_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f"
                              "\u202a-\u202e\u2066-\u2069]")
MAX_REASONS = 3  # a phone shows a short list; the first problems are the ones to fix first


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why one document was not written, and the status a single write answers with."""

    reason: str
    status: int = 403


def refuse(zh: str, en: str, status: int = 403) -> Refusal:
    return Refusal(bilingual(zh, en), status=status)


@functools.cache
def shared_registry() -> SchemaRegistry:
    """The schemas as the `linli` commands use them: loaded and compiled once per process."""
    return SchemaRegistry()


class SchemaRegistry:
    """Every `<type>.v<N>.schema.json` in `schemas/`, checked with `check_schema` and compiled
    once into a validator with the format checker on. Old versions stay valid, so a phone that
    syncs weeks late is not refused for having the form it was given."""

    def __init__(self, schema_dir: Path = SCHEMA_DIR) -> None:
        resources: list[tuple[str, referencing.Resource[Any]]] = []
        self.schemas: dict[tuple[str, int], dict[str, Any]] = {}
        for path in sorted(schema_dir.glob("*.schema.json")):
            match = SCHEMA_FILE.match(path.name)
            if match is None:
                raise ValueError(f"{path.name}: schema files are named <type>.v<N>.schema.json")
            schema = json.loads(path.read_text(encoding="utf-8"))
            jsonschema.Draft202012Validator.check_schema(schema)
            resources.append((schema["$id"], referencing.jsonschema.DRAFT202012.create_resource(
                schema)))
            if match["type"] != "common":
                self.schemas[(match["type"], int(match["version"]))] = schema
        registry: referencing.Registry[Any] = referencing.Registry().with_resources(resources)
        checker = _format_checker()
        self.validators = {
            key: RecordValidator(inline_refs(schema, registry), registry=registry,
                                 format_checker=checker)
            for key, schema in self.schemas.items()}
        for (doc_type, version), validator in self.validators.items():
            missing = unclassified(validator.schema)
            if missing:
                raise ValueError(f"{doc_type}.v{version}: fields without x-sensitivity "
                                 f"(public, personal or sensitive): {', '.join(missing)}")
        self.types = frozenset(t for t, _ in self.schemas)
        retention.check_rules({t: schema.get("x-database") for (t, _), schema
                               in self.schemas.items()})  # every type has a retention rule
        self.attachment_types = {key: attachment_types_of(schema)
                                 for key, schema in self.schemas.items()}

    def versions(self, doc_type: str) -> list[int]:
        return sorted(v for t, v in self.schemas if t == doc_type)

    def problems(self, doc: Mapping[str, Any]) -> list[str]:
        """Readable problems of a document, [] when valid. CouchDB's special members (`_id`,
        `_rev`, `_attachments`...) are not part of the schema."""
        body = {k: v for k, v in doc.items() if not k.startswith("_")}
        doc_type, version = body.get("type"), body.get("schema_version")
        if not isinstance(doc_type, str) or doc_type not in self.types:
            return [schema_message("unknown_type", value=_show(doc_type),
                                   known=rules.listed(sorted(self.types)))]
        validator = self.validators.get((doc_type, version)) if isinstance(version, int) else None
        if validator is None:
            return [schema_message("unknown_version", type=doc_type, value=_show(version),
                                   known=", ".join(map(str, self.versions(doc_type))))]
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        return [describe(error, validator.schema) for error in errors]


SENSITIVITIES = ("public", "personal", "sensitive")  # PIPL art. 28's line, and what is no one's
# Keywords whose subschemas declare fields of the same record (an `if` only tests fields
# declared elsewhere).
SUBSCHEMA_KEYWORDS = ("then", "else", "items", "additionalProperties")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")


def unclassified(schema: Any, path: str = "") -> list[str]:
    """The fields of a schema, at any depth (nested objects, array items, conditional
    branches), that carry no `x-sensitivity` class: masking, reveals and purges follow the
    class, so a field without one would be nobody's decision."""
    if not isinstance(schema, Mapping):
        return []
    found = []
    for name, prop in schema.get("properties", {}).items():
        if isinstance(prop, Mapping) and prop.get("x-sensitivity") not in SENSITIVITIES:
            found.append(f"{path}/{name}")
        found += unclassified(prop, f"{path}/{name}")
    for key in SUBSCHEMA_KEYWORDS:
        found += unclassified(schema.get(key), path + ("/items" if key == "items" else ""))
    for key in SUBSCHEMA_LISTS:
        for sub in schema.get(key) or ():
            found += unclassified(sub, path)
    return list(dict.fromkeys(found))


def attachment_types_of(schema: Mapping[str, Any]) -> frozenset[str]:
    """The content types a form's records may carry as attachments: its `x-attachments`
    keyword, `{"content_types": [...]}`; none without it. Only types no browser runs as a page
    (ATTACHMENT_TYPES) may be listed: a schema naming another is an error at start."""
    listed = schema.get("x-attachments", {}).get("content_types", [])
    types = frozenset(listed)
    if not types <= ATTACHMENT_TYPES:
        raise ValueError(f"{schema.get('$id')}: x-attachments may list only "
                         f"{', '.join(sorted(ATTACHMENT_TYPES))}")
    return types


def inline_refs(schema: Any, registry: referencing.Registry[Any]) -> Any:
    """The schema with every `$ref` to another file replaced by what it points to (siblings of
    the `$ref`, such as a title, kept). Resolving references costs 40 % of the validation time
    when done per document; done here, once, it costs nothing per document."""
    if isinstance(schema, list):
        return [inline_refs(item, registry) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        target = registry.resolver().lookup(ref).contents
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return inline_refs({**target, **siblings}, registry)
    return {key: inline_refs(value, registry) for key, value in schema.items()}


SCALAR_CACHE_SIZE = 50_000  # (field, value) pairs remembered as valid, per process
SCALAR_CACHE_CHARS = 64  # free text rarely repeats: remember short strings only (≤ 13 MB in all)


def remembered_properties(validator: Any, properties: Mapping[str, Any], instance: Any,
                          schema: Mapping[str, Any]) -> Iterator[jsonschema.ValidationError]:
    """Draft 2020-12's `properties`, remembering which scalar values already passed a field's
    subschema. Records of one grid repeat most values (type, grid, author, date, outcome), and
    checking a scalar against a fixed subschema always gives the same answer, so the verdict is
    unchanged while a push validates about twice as fast."""
    if not validator.is_type(instance, "object"):
        return
    passed: dict[tuple[int, type, Any], Any] = validator.PASSED
    for name, subschema in properties.items():
        if name not in instance:
            continue
        value = instance[name]
        # The type is part of the key, as True == 1 in Python but not in JSON Schema.
        key = (id(subschema), type(value), value) if isinstance(
            value, (int, float, bool)) or (
            isinstance(value, str) and len(value) <= SCALAR_CACHE_CHARS) else None
        if key is not None and key in passed:
            continue
        errors = list(validator.descend(value, subschema, path=name, schema_path=name))
        if errors:
            yield from errors
        elif key is not None:
            if len(passed) >= SCALAR_CACHE_SIZE:
                passed.clear()
            passed[key] = subschema  # held, so its id cannot be reused by another schema


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """A schema pattern with ECMA-262's meaning of a final `$`: the end of the text. Python's `$`
    also matches before a final newline, so "16693775446\n" would pass as a phone number."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def ecma_pattern(validator: Any, pattern: str, instance: Any,
                 schema: Mapping[str, Any]) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and _ecma_regex(pattern).search(instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _format_checker() -> jsonschema.FormatChecker:
    """Draft 2020-12's format checker, with the date formats of rules.json, which the phone's
    validators check alike (jsonschema's own date-time, rfc3339-validator's expression, ends in
    Python's `$` and so takes a trailing newline)."""
    checker = jsonschema.FormatChecker()
    checker.checkers = dict(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
    for name in ("date", "date-time"):
        checker.checkers[name] = (functools.partial(rules.conforms, name), ())
    return checker


RecordValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"properties": remembered_properties, "pattern": ecma_pattern})
RecordValidator.PASSED = {}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _title(schema: Any, name: str) -> tuple[str, str]:
    """(zh, en) label of one field from its schema's `title` and `x-title-en`, else its name."""
    schema = schema if isinstance(schema, Mapping) else {}
    return str(schema.get("title") or name), str(schema.get("x-title-en") or name)


def _labels(root: Mapping[str, Any], path: Iterable[Any],
            leaf: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """(zh, en) name of the field at `path` as a person reads it ("地址 · 幢", "Address ·
    Building"), never a JSON Pointer: the labels of the fields on the way, an array's element as
    "第 2 项" / "item 2". `leaf` is the field's own schema where the error names it (its title
    wins over the root's, which an if/then may not list). '' for the record itself."""
    steps = list(path)
    parts: list[tuple[str, str]] = []
    schema: Any = root
    for step in steps:
        node = schema if isinstance(schema, Mapping) else {}
        if isinstance(step, int):
            schema = node.get("items", {})
            parts.append(rules.fill_both(SCHEMA_MESSAGES["item"], {"n": step + 1}))
        else:
            properties = node.get("properties", {})
            schema = properties.get(step, {}) if isinstance(properties, Mapping) else {}
            parts.append(_title(schema, str(step)))
    if leaf is not None and leaf.get("title") and steps and not isinstance(steps[-1], int):
        parts[-1] = _title(leaf, str(steps[-1]))
    joiner = SCHEMA_MESSAGES["label_joiner"]
    return joiner.join(p[0] for p in parts), joiner.join(p[1] for p in parts)


SCHEMA_MESSAGES: Mapping[str, Any] = rules.SHARED["schema_messages"]


def schema_message(name: str, **values: Any) -> str:
    """A message of rules.json's `schema_messages`, which pwa/validate.js fills in alike."""
    return bilingual(*rules.fill_both(SCHEMA_MESSAGES[name], values))


def describe(error: jsonschema.ValidationError, root: Mapping[str, Any]) -> str:
    """One schema violation as 'field: what was expected', in zh-CN and English, the field named
    by its labels."""
    path = list(error.absolute_path)
    kind, expected = error.validator, error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        properties = schema.get("properties", {})
        label = _labels(root, [*path, missing], properties.get(missing) if isinstance(
            properties, Mapping) and isinstance(properties.get(missing), Mapping) else None)
        return schema_message("required", label=label)
    labels = _labels(root, path, schema)
    quoted = tuple(rules.fill(template, {"label": text}) if text else record
                   for template, text, record in zip(SCHEMA_MESSAGES["field"], labels,
                                                     SCHEMA_MESSAGES["record"], strict=True))
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(schema.get("properties", {})))
        return schema_message("additionalProperties", place=quoted, names=", ".join(extra))
    field = quoted
    wanted = expected if isinstance(expected, list) else [expected]
    names = SCHEMA_MESSAGES["type_names"]
    types = tuple(joiner.join(names[t][i] if t in names else str(t) for t in wanted)
                  for i, joiner in enumerate(SCHEMA_MESSAGES["type_joiners"]))
    name = SCHEMA_MESSAGES["same_as"].get(str(kind), str(kind))
    options = [expected] if kind == "const" else wanted
    return schema_message(name if name in SCHEMA_MESSAGES else "other", field=field,
                          value=_show(error.instance), expected=expected, types=types,
                          options=", ".join(_show(o) for o in options), reason=error.message)


Stamp = tuple[str, str, str]
"""One `edits[]` entry of a household or person (version 2): (field, at, by)."""


@dataclasses.dataclass(frozen=True)
class WriteContext:
    """Everything a write is checked against: who writes, to which grid, what is stored."""

    user: User
    db: str
    grid: str
    max_document_bytes: int
    max_attachment_bytes: int
    stored_authors: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    """created_by of the documents already stored, by id (None: stored but without one)."""
    deleted: frozenset[str] = frozenset()
    """Ids among them whose stored record is deleted (stored_authors has its last author)."""
    stored_stamps: Mapping[str, frozenset[Stamp]] = dataclasses.field(default_factory=dict)
    """The edit stamps (`edits[]`) the store holds for an id, in the revisions a write may
    start from; read only for the documents that carry another person's stamp."""
    buildings: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """The stored buildings the batch's households name, by id."""
    retired: frozenset[tuple[str, int]] = frozenset()
    """(type, version) of the forms an admin has retired: refused from now on."""
    max_document_attachments_bytes: int = SETTINGS_BY_NAME[
        "max_document_attachments_bytes"].default
    stored_attachments: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """The `_attachments` of the stored documents the batch's stubs name, by id."""
    purged: frozenset[str] = frozenset()
    """The campaigns purged from this grid: their records are refused (domain/campaigns.py)."""
    today: datetime.date | None = None
    """The day in China: a record past its retention on it is refused (domain/retention.py);
    None where no such check applies (the resolver's own writes)."""


class WriteLimits(Protocol):
    """The sizes a write may reach: the server's settings (server/config.py's Config)."""

    @property
    def max_document_bytes(self) -> int: ...
    @property
    def max_attachment_bytes(self) -> int: ...
    @property
    def max_document_attachments_bytes(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class Limits:
    """Sizes given outright, where no settings apply (the resolver, the demo's seed)."""

    max_document_bytes: int
    max_attachment_bytes: int
    max_document_attachments_bytes: int


DEFAULT_LIMITS = Limits(*(SETTINGS_BY_NAME[name].default for name in (
    "max_document_bytes", "max_attachment_bytes", "max_document_attachments_bytes")))


def write_context(user: User, grid: str, limits: WriteLimits,
                  retired: frozenset[tuple[str, int]] = frozenset(),
                  purged: frozenset[str] = frozenset(),
                  today: datetime.date | None = None) -> WriteContext:
    """The one way a write's context is made: who writes to which grid (its database follows
    from its code), within which sizes, refusing which retired forms. What the store holds is
    added by the caller that has read it (`dataclasses.replace`)."""
    return WriteContext(user=user, db=grid_db(grid), grid=grid,
                        max_document_bytes=limits.max_document_bytes,
                        max_attachment_bytes=limits.max_attachment_bytes,
                        max_document_attachments_bytes=limits.max_document_attachments_bytes,
                        retired=retired, purged=purged, today=today)


def check_id(doc_id: Any, ctx: WriteContext) -> Refusal | None:
    if not isinstance(doc_id, str) or not doc_id:
        return refuse("记录缺少编号 _id", "The document has no _id.", 400)
    if len(doc_id) > MAX_ID_LENGTH:
        return refuse(f"记录编号太长（最多 {MAX_ID_LENGTH} 个字符）",
                      f"The document id is too long (at most {MAX_ID_LENGTH} characters).", 400)
    if doc_id.startswith("_design/"):
        if not ctx.user.is_admin:
            return refuse("只有管理员可以修改设计文档", "Only admins may write design documents.")
        return None
    if doc_id.startswith("_"):
        return refuse("以下划线开头的编号是保留的", "Only reserved document ids may start with "
                      "an underscore.", 400)
    if RECORD_ID.match(doc_id) is None:
        return refuse(f"记录编号 {_show(doc_id)} 格式错误，应为“类型:编号”，"
                      "只用字母、数字和 _ . : -",
                      f"Document id {_show(doc_id)} must look like '<type>:<key>' using letters, "
                      "digits and _ . : - only.", 400)
    return None


def _name(name: Any) -> str:
    """An attachment name as a reason shows it: a lone surrogate escaped, so the reason stays
    valid UTF-8 for the phone that reads it."""
    if isinstance(name, str):
        name = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return _show(name)


def attachment_name_problem(name: Any) -> Refusal | None:
    """An attachment's name travels in a URL: a phone fetches each attachment by name
    (`GET /db/doc/name`), and PouchDB leaves `/` in it unencoded. A name with `/`, `\\`, `.` or
    `..` becomes a path that climbs out of its document, which the gateway (rightly) refuses,
    and every phone's pull of the grid then stops at that document; control characters, lone
    surrogates and bidirectional controls make names that break or disguise themselves, a
    leading `_` is reserved by CouchDB (the embedded store refuses the whole batch), and a name
    is at most 255 bytes, as a file name."""
    shown = _name(name)
    if not isinstance(name, str) or name in ("", ".", ".."):
        return refuse(f"附件名称 {shown} 无效", f"Attachment name {shown} is not valid.", 400)
    if "/" in name or "\\" in name:
        return refuse(f"附件名称 {shown} 不能含有 / 或 \\",
                      f"Attachment name {shown} cannot contain / or \\.", 400)
    if UNSAFE_NAME_CHAR.search(name):
        return refuse(f"附件名称 {shown} 含有控制字符或不完整的字符",
                      f"Attachment name {shown} holds a control or broken character.", 400)
    if name.startswith("_"):
        return refuse(f"附件名称 {shown} 不能以下划线开头",
                      f"Attachment name {shown} cannot start with an underscore.", 400)
    if len(name.encode()) > MAX_ATTACHMENT_NAME_BYTES:
        return refuse(f"附件名称太长（最多 {MAX_ATTACHMENT_NAME_BYTES} 字节）",
                      f"The attachment name is too long (at most {MAX_ATTACHMENT_NAME_BYTES} "
                      "bytes).", 400)
    return None


def allowed_attachment_types(doc: Mapping[str, Any],
                             registry: SchemaRegistry | None) -> frozenset[str] | None:
    """The content types a document may carry: its form's `x-attachments` (none when the form
    names none), every safe type on an admin's design document. None when the form is unknown
    (check_record refuses the document for that)."""
    if str(doc.get("_id", "")).startswith("_design/") or registry is None:
        return ATTACHMENT_TYPES
    doc_type, version = doc.get("type"), doc.get("schema_version")
    if not isinstance(doc_type, str) or not isinstance(version, int):
        return None
    return registry.attachment_types.get((doc_type, version))


def check_attachment_upload(name: str, content_type: str, size: int, ctx: WriteContext,
                            stored: Mapping[str, Any] | None = None,
                            registry: SchemaRegistry | None = None) -> Refusal | None:
    """An attachment sent on its own (`PUT /db/doc/name`, admins only): the same name, type and
    size rules as inline ones, against the stored document it is added to."""
    problem = attachment_name_problem(name)
    if problem is not None:
        return problem
    if stored is None:
        return refuse("附件只能加到已保存的记录上", "An attachment can only be added to a stored "
                      "document.", 400)
    allowed = allowed_attachment_types(stored, registry) or frozenset()
    if content_type not in allowed:
        return _refuse_type(name, content_type, allowed)
    if size > ctx.max_attachment_bytes:
        return _refuse_size(name, ctx)
    kept = stored.get("_attachments") or {}
    total = size + sum(_stored_length(att) for other, att in kept.items() if other != name)
    return _refuse_total(ctx) if total > ctx.max_document_attachments_bytes else None


def _refuse_type(name: str, content_type: Any, allowed: frozenset[str]) -> Refusal:
    if not allowed:
        return refuse(f"此类记录不能带附件（附件 {_name(name)}）",
                      f"This kind of record takes no attachments (attachment {_name(name)}).",
                      415)
    shown = ", ".join(sorted(allowed))
    return refuse(f"附件 {_name(name)} 的类型 {_show(content_type)} 不允许，只接受 {shown}",
                  f"Attachment {_name(name)} of type {_show(content_type)} is not accepted; "
                  f"allowed: {shown}.", 415)


def _refuse_size(name: str, ctx: WriteContext) -> Refusal:
    limit = ctx.max_attachment_bytes // 1024
    return refuse(f"附件 {_name(name)} 太大（最大 {limit} KB）",
                  f"Attachment {_name(name)} is too large (at most {limit} KB).", 413)


def _refuse_total(ctx: WriteContext) -> Refusal:
    limit = ctx.max_document_attachments_bytes // 1024
    return refuse(f"记录的附件合计太大（最大 {limit} KB）",
                  f"The document's attachments are too large together (at most {limit} KB).",
                  413)


def _malformed(name: str, zh: str, en: str) -> Refusal:
    return refuse(f"附件 {_name(name)} 格式错误：{zh}",
                  f"Attachment {_name(name)} is malformed: {en}", 400)


def _stored_length(att: Any) -> int:
    length = att.get("length") if isinstance(att, Mapping) else None
    return length if isinstance(length, int) and not isinstance(length, bool) else 0


def _decoded_size(data: str) -> int:
    return len(data) * 3 // 4 - data[-2:].count("=")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_attachments(doc: Mapping[str, Any], ctx: WriteContext,
                      registry: SchemaRegistry | None = None) -> Refusal | None:
    """Every attachment of a document, as far as the document alone can tell: a name a phone
    can fetch, a shape the store can take (the embedded store dies on `data` that is not a
    string, on `follows` without a multipart body, on an attachment with neither data nor
    stub), a content type the document's form allows, and sizes, lengths and digests that agree
    with the bytes. Stubs are checked against the stored document by `check_stubs`."""
    if "_attachments" not in doc:
        return None
    attachments = doc["_attachments"]
    if not isinstance(attachments, Mapping):
        return refuse("附件 _attachments 应为对象", "_attachments must be an object.", 400)
    allowed = allowed_attachment_types(doc, registry)
    total = 0
    for name, att in attachments.items():
        problem = attachment_name_problem(name)
        if problem is not None:
            return problem
        if not isinstance(att, Mapping):
            return _malformed(name, "应为对象", "it must be an object.")
        unknown = sorted(set(att) - ATTACHMENT_MEMBERS)
        if "follows" in att:
            return _malformed(name, "请以 base64 随记录发送（不支持 follows）",
                              "send it inline as base64 (follows is not supported).")
        if unknown:
            return _malformed(name, f"不允许的字段 {', '.join(unknown)}",
                              f"field(s) not allowed: {', '.join(unknown)}.")
        content_type = att.get("content_type")
        if not isinstance(content_type, str):
            return _malformed(name, "缺少类型 content_type（文字）",
                              "its content_type (text) is missing.")
        # Stubs too: a stub may change the content type of bytes already stored.
        if allowed is not None and content_type not in allowed:
            return _refuse_type(name, content_type, allowed)
        for member in ("length", "revpos", "encoded_length"):
            if member in att and not _is_count(att[member]):
                return _malformed(name, f"{member} 应为非负整数",
                                  f"{member} must be a non-negative whole number.")
        if "digest" in att and not isinstance(att["digest"], str):
            return _malformed(name, "digest 应为文字", "digest must be text.")
        if "stub" in att:
            if att["stub"] is not True or "data" in att:
                return _malformed(name, "stub 只能为 true，且存根不带 data",
                                  "stub must be true, and a stub carries no data.")
            if "digest" not in att:
                return _malformed(name, "存根（stub）须带 digest",
                                  "a stub needs its digest.")
            continue
        if "encoding" in att or "encoded_length" in att:
            return _malformed(name, "内容应为未压缩的 base64",
                              "send its data as plain base64 (no encoding).")
        data = att.get("data")
        if not isinstance(data, str):
            return _malformed(name, "缺少内容：data 应为 base64 文字，或 stub 为 true",
                              "its data must be base64 text, or stub true.")
        if _decoded_size(data) > ctx.max_attachment_bytes:
            return _refuse_size(name, ctx)
        try:
            content = base64.b64decode(data, validate=True)
        except ValueError:
            return _malformed(name, "内容不是有效的 base64",
                              "its data is not valid base64.")
        if "length" in att and att["length"] != len(content):
            return _malformed(name, f"length {att['length']} 与内容的 {len(content)} 字节不符",
                              f"length {att['length']} disagrees with its {len(content)} bytes.")
        if "digest" in att and att["digest"] != md5_digest(content):
            return _malformed(name, "digest 与内容不符",
                              "its digest disagrees with its data.")
        total += len(content)
    if total > ctx.max_document_attachments_bytes:
        return _refuse_total(ctx)
    return None


def md5_digest(content: bytes) -> str:
    """An attachment's digest as CouchDB and PouchDB write it."""
    return "md5-" + base64.b64encode(hashlib.md5(content, usedforsecurity=False).digest()).decode()


def stubbed_ids(docs: Iterable[Any]) -> list[str]:
    """Ids of the documents that keep stored attachments by stub: their stored versions are
    read so `check_stubs` can compare (a phone's push sends data, so usually none)."""
    return sorted({str(d["_id"]) for d in docs if isinstance(d, Mapping)
                   and isinstance(d.get("_id"), str) and isinstance(d.get("_attachments"), Mapping)
                   and any(isinstance(a, Mapping) and "stub" in a
                           for a in d["_attachments"].values())})


def check_stubs(doc: Any, ctx: WriteContext) -> Refusal | None:
    """A stub keeps an attachment the stored document has, under its name and digest. The
    store looks stubs up by digest anywhere in the database (a stub naming another record's
    photo copies it) and refuses the whole batch for an unknown one; checked here, only the
    document is refused. The document's attachments together, kept ones at their stored
    length, stay within the per-document limit."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("_attachments"), Mapping):
        return None
    attachments = doc["_attachments"]
    if doc.get("_deleted") is True:  # the store keeps no attachment of a deletion but its name
        names = (attachment_name_problem(name) for name in attachments)
        return next((problem for problem in names if problem is not None), None)
    if not any(isinstance(a, Mapping) and "stub" in a for a in attachments.values()):
        return None
    stored = ctx.stored_attachments.get(str(doc.get("_id")), {})
    total = 0
    for name, att in attachments.items():
        if not isinstance(att, Mapping) or "stub" not in att:
            data = att.get("data") if isinstance(att, Mapping) else None
            total += _decoded_size(data) if isinstance(data, str) else 0
            continue
        kept = stored.get(name)
        if not isinstance(kept, Mapping) or kept.get("digest") != att.get("digest"):
            return _malformed(name, "已保存的记录中没有这个存根（stub）所指的附件",
                              "the stored document has no attachment this stub names.")
        if att.get("content_type") != kept.get("content_type") or (
                "length" in att and att["length"] != kept.get("length")):
            return _malformed(name, "存根与已保存的附件不符",
                              "the stub disagrees with the stored attachment.")
        total += _stored_length(kept)
    if total > ctx.max_document_attachments_bytes:
        return _refuse_total(ctx)
    return None


def _revision_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= MAX_REVISIONS and all(
        isinstance(r, str) and REVISION.match(r) for r in value)


def _revs_info(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= MAX_REVISIONS and all(
        isinstance(i, Mapping) and set(i) <= {"rev", "status"}
        and isinstance(i.get("rev"), str) and REVISION.match(i["rev"])
        and isinstance(i.get("status"), str) and len(i["status"]) <= 16 for i in value)


# What a read answers with (`?conflicts=true`, `?local_seq=true`, `?revs_info=true`), so a
# client may send it back; the store ignores it for the document but keeps it in the
# document's hidden metadata, read with every access. Only its real shape is let through.
READ_ONLY_MEMBERS = {
    "_conflicts": _revision_list,
    "_deleted_conflicts": _revision_list,
    "_local_seq": lambda v: type(v) is int or (isinstance(v, str) and len(v) <= 64),
    "_revs_info": _revs_info,
}


def check_document(doc: Any, ctx: WriteContext, registry: SchemaRegistry,
                   encoded_size: int) -> Refusal | None:
    """None when `doc` may be written as it is, as far as the document alone can tell (its
    authorship is `check_authorship`'s, which needs what is stored); otherwise why not. Never
    changes the document: a revision replicated with new_edits=false must be stored exactly as
    the phone sent it."""
    if not isinstance(doc, Mapping):
        return refuse("每条记录必须是 JSON 对象", "Each document must be a JSON object.", 400)
    problem = check_id(doc.get("_id"), ctx)
    if problem is not None:
        return problem
    if encoded_size < 0:
        zh, en = broken_field(doc)
        return refuse(f"{zh}中有损坏的字符（不完整的表情符号？），请重新输入后保存",
                      f"{en} holds a broken character (half an emoji, a lone UTF-16 "
                      "surrogate?); type it again and save.", 400)
    if encoded_size > ctx.max_document_bytes:
        limit = ctx.max_document_bytes // 1024
        return refuse(f"记录太大（最大 {limit} KB）", f"The document is too large "
                      f"(at most {limit} KB).", 413)
    doc_id = str(doc["_id"])
    if not isinstance(doc.get("_deleted", False), bool):
        # The store takes any truthy value for a deletion: `"_deleted": 1` would delete a record
        # without passing check_deletion, so only JSON's true and false are accepted.
        return refuse("_deleted 只能为 true 或 false", "_deleted must be true or false.", 400)
    if doc.get("_deleted") is True:
        extra = sorted(str(k) for k in doc if k not in TOMBSTONE_MEMBERS)
        if extra:  # resolved_by among them: the conflict resolver's mark, never a phone's
            names = ", ".join(extra)
            return refuse(f"删除记录只能带 _id、_rev、_deleted 和 _revisions，不能带 {names}",
                          f"A deletion carries only _id, _rev, _deleted and _revisions, not "
                          f"{names}.", 400)
        return None  # who may delete is check_authorship's
    bad_members = [k for k in doc if (k.startswith("_") and k not in SPECIAL_MEMBERS)
                   or (k in READ_ONLY_MEMBERS and not READ_ONLY_MEMBERS[k](doc[k]))]
    if bad_members:
        names = ", ".join(sorted(bad_members))
        return refuse(f"不允许的特殊字段 {names}", f"Bad special document member(s): {names}",
                      400)
    problem = check_attachments(doc, ctx, registry)
    if problem is not None or doc_id.startswith("_design/"):
        return problem
    return check_record(doc, ctx, registry)


def check_record(doc: Mapping[str, Any], ctx: WriteContext,
                 registry: SchemaRegistry) -> Refusal | None:
    """The schema and the server-owned fields of a grid record (after `check_document`)."""
    retired = (doc.get("type"), doc.get("schema_version"))
    if all(isinstance(v, (str, int)) for v in retired) and retired in ctx.retired:  # hashable
        doc_type, version = retired
        current = ", ".join(f"v{v}" for v in registry.versions(str(doc_type))
                            if (doc_type, v) not in ctx.retired)
        return refuse(f"{doc_type} 表单第 {version} 版已停用，"
                      f"请更新应用后用新版（{current}）重新填写",
                      f"Version {version} of the {doc_type} form has been retired; update the "
                      f"app and fill it in again on the current form ({current}).")
    if doc.get("campaign") in ctx.purged and isinstance(doc.get("campaign"), str):
        return refuse("工作批次已结束，其个人信息已按期清除，不再接收",
                      "The campaign has ended and its personal data was purged; its records "
                      "are no longer taken.")
    if ctx.today is not None and retention.past(doc, ctx.today):
        return refuse("该记录已过保存期限，不再接收",
                      "The record is past its retention period; it is no longer taken.")
    problems = registry.problems(doc) or domain_problems(doc)
    if problems:
        more = len(problems) - MAX_REASONS
        tail = [bilingual(f"另有 {more} 处问题", f"and {more} more")] if more > 0 else []
        return Refusal("；".join(problems[:MAX_REASONS] + tail))
    doc_type = str(doc["type"])
    schema = registry.schemas[(doc_type, doc["schema_version"])]
    if schema.get("x-database") != "grid":
        return refuse(f"{doc_type} 不保存在网格数据库中", f"A {doc_type} is not kept in a grid "
                      "database.")
    writers = schema.get("x-writers")
    if writers is not None and ctx.user.role not in writers:
        return refuse(f"只有{'、'.join(writers)}可以保存 {doc_type}",
                      f"Only {', '.join(writers)} may write a {doc_type}.")
    id_type = RECORD_ID.match(str(doc["_id"]))
    if id_type is None or id_type["type"] != doc_type:
        return refuse(f"记录编号应以“{doc_type}:”开头", f"The id of a {doc_type} must start with "
                      f"'{doc_type}:'.", 400)
    if doc.get("grid") != ctx.grid:
        return refuse(f"字段 grid 应为本网格 {ctx.grid}，收到 {_show(doc.get('grid'))}",
                      f"grid must be this database's grid {ctx.grid!r}, got "
                      f"{_show(doc.get('grid'))}")
    return None


def domain_problems(doc: Mapping[str, Any]) -> list[str]:
    """What JSON Schema cannot say (server/domain/rules.py; the PWA runs the same rules from
    pwa/rules.js): the ID number's check character, its birth date and sex against the
    person's, a birth not in the future."""
    if doc.get("type") == "person":
        return [p.message for p in rules.person_problems(doc)]
    return []


def building_id(doc: Any) -> str | None:
    """The building a household's address names, if it is a household with an address."""
    if not isinstance(doc, Mapping) or doc.get("type") != "household":
        return None
    address = doc.get("address")
    if not isinstance(address, Mapping):
        return None
    return f"building:{address.get('compound')}-{address.get('building')}"


def check_room(doc: Mapping[str, Any], ctx: WriteContext) -> Refusal | None:
    """A household's room must exist in its building, where the building is recorded in the
    grid (buildings are often recorded after the households, so an unknown one is no error)."""
    building = ctx.buildings.get(building_id(doc) or "")
    if building is None or doc.get("_deleted"):
        return None
    problems = rules.room_problems(doc["address"], building)
    if not problems:
        return None
    return Refusal("；".join(p.message for p in problems))


def check_authorship(doc: Mapping[str, Any], ctx: WriteContext,
                     registry: SchemaRegistry | None = None) -> Refusal | None:
    """`created_by` of a new record is its writer; of a stored one, what is stored, whoever
    edits it. Each `edits[]` stamp is the writer's own or one the store already holds for the
    record. Deletions: see `check_deletion`. Needs `ctx.stored_authors` (and
    `ctx.stored_stamps` for another person's stamps) for the document."""
    doc_id = str(doc["_id"])
    if doc.get("_deleted") is True:
        return check_deletion(doc_id, ctx, registry or shared_registry())
    if doc_id.startswith("_design/"):
        return None
    return check_author(doc, ctx) or check_stamps(doc, ctx)


def check_author(doc: Mapping[str, Any], ctx: WriteContext) -> Refusal | None:
    doc_id = str(doc["_id"])
    author = doc.get("created_by")
    fresh = "_rev" not in doc or str(doc.get("_rev", "")).startswith("1-")
    if doc_id in ctx.deleted and fresh and author == ctx.user.name:
        return None  # a deleted record made again, from scratch, by its new author
    if doc_id in ctx.stored_authors:
        expected = ctx.stored_authors[doc_id]
        if expected is None and ctx.user.role not in ("admin", "supervisor"):
            return refuse("这条记录没有创建人，只有督导员可以修改",
                          "This record has no author; only a supervisor may change it.")
        if expected is not None and author != expected:
            return refuse(f"字段 created_by 不能修改，应为 {expected}",
                          f"created_by cannot be changed; it is {expected!r}")
    elif author != ctx.user.name:
        return refuse(f"字段 created_by 应为当前登录用户 {ctx.user.name}",
                      f"created_by must be the logged-in user {ctx.user.name!r}")
    return None


def foreign_stamps(doc: Any, user: str) -> list[Stamp]:
    """The `edits[]` entries of `doc` that name someone other than `user` (after the schema
    check, every entry is an object of three strings)."""
    edits = doc.get("edits") if isinstance(doc, Mapping) else None
    if not isinstance(edits, list):
        return []
    return [(str(e.get("field")), str(e.get("at")), str(e.get("by"))) for e in edits
            if isinstance(e, Mapping) and e.get("by") != user]


def check_stamps(doc: Mapping[str, Any], ctx: WriteContext) -> Refusal | None:
    """`edits[].by` says who changed a field; the conflict resolver trusts it. A writer stamps
    their own edits; anyone else's stamp must be carried over unchanged from a revision the
    store holds (the one the edit started from), so no phone can put an edit in another
    person's name or move another person's stamp."""
    known = ctx.stored_stamps.get(str(doc["_id"]), frozenset())
    unknown = [s for s in foreign_stamps(doc, ctx.user.name) if s not in known]
    if not unknown:
        return None
    field, _, by = unknown[0]
    return refuse(f"字段修改记录（edits）中“{field}”的修改人 by 为 {by}，但这条修改不是 {by} "
                  f"保存过的：新的修改只能记在当前登录用户 {ctx.user.name} 名下",
                  f"Field edits: the edit of {field!r} names {by!r} as its author (by), but "
                  f"the server holds no such edit of {by!r}; a new edit is stamped by the "
                  f"logged-in user {ctx.user.name!r}.")


def writers(doc_type: str, registry: SchemaRegistry) -> frozenset[str] | None:
    """The roles that may write a grid record of `doc_type` in any of its versions (None:
    every role); an empty set when no version of it is kept in a grid database."""
    roles: set[str] = set()
    for version in registry.versions(doc_type):
        schema = registry.schemas[(doc_type, version)]
        if schema.get("x-database") != "grid":
            continue
        listed = schema.get("x-writers")
        if listed is None:
            return None
        roles.update(listed)
    return frozenset(roles)


def check_deletion(doc_id: str, ctx: WriteContext,
                   registry: SchemaRegistry) -> Refusal | None:
    """A deletion needs the right to write the record: its type's writers (read from the id,
    as a tombstone has no body, also for an id the store has never seen), and for a worker,
    being its author. Supervisors and admins delete anything else in their scope. Needs
    `ctx.stored_authors` for `doc_id`."""
    if ctx.user.is_admin:
        return None
    if doc_id.startswith("_design/"):
        return refuse("只有管理员可以修改设计文档", "Only admins may write design documents.")
    match = RECORD_ID.match(doc_id)
    doc_type = match["type"] if match else ""
    roles = writers(doc_type, registry)
    if roles is not None and ctx.user.role not in roles:
        if not roles:
            return refuse(f"记录编号 {_show(doc_id)} 不是本网格的记录类型，不能删除",
                          f"{_show(doc_id)} names no record type kept in a grid database; it "
                          "cannot be deleted.")
        return refuse(f"只有{'、'.join(sorted(roles))}可以删除 {doc_type}",
                      f"Only {', '.join(sorted(roles))} may delete a {doc_type}.")
    if ctx.user.role == "supervisor" or doc_id not in ctx.stored_authors:
        return None  # a record made and deleted on a phone before it ever synced
    stored_author = ctx.stored_authors[doc_id]
    if stored_author is None:
        return refuse("这条记录没有创建人，只有督导员可以删除",
                      "This record has no author; only a supervisor may delete it.")
    if stored_author != ctx.user.name:
        return refuse(f"只能删除自己创建的记录（此记录由 {stored_author} 创建）",
                      f"You may only delete records you created (this one is {stored_author}'s).")
    return None


def broken_field(doc: Mapping[str, Any]) -> tuple[str, str]:
    """(zh, en) naming the first field of `doc` that holds a lone surrogate. The walk keeps its
    own stack: a document may nest as deep as JSON parsing allows (about a thousand levels),
    deeper than Python's recursion, and one such document must be refused alone, not fail its
    whole batch."""
    def broken(value: Any) -> bool:
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                try:
                    item.encode()
                except UnicodeEncodeError:
                    return True
            elif isinstance(item, Mapping):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return False

    for key, value in doc.items():
        if broken(key):
            return "字段名", "A field name"
        if broken(value):
            return f"字段 {key} ", f"Field {key}"
    return "记录", "The document"
