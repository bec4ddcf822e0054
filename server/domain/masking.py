"""Masking (遮盖) of personal data: what a supervisor sees of a record without the `unmask` right.

What is masked is what the schemas class `sensitive` (`x-sensitivity`, PIPL art. 28: ID numbers,
phones, special groups (特殊人群), ethnicity, health screening answers...), at any depth of a
record; no list of field names is kept here. How it is masked: ID numbers keep their first three
and last four characters (`330***********005X`), phones their first three and last four
(`139****1234`), and every other sensitive value is hidden altogether. One rule for every
place that shows records through `/api/`: the review screens, the conflicts queue and the
exports. Who may replicate a grid unmasked (a worker of the grid,
or a holder of the right) is decided here too; the audit of such reads is server/sync/personal.py.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from typing import Any

from server.domain.scope import User
from server.domain.validation import shared_registry

UNMASK = "unmask"  # the right (`linli user grant NAME unmask`) to see personal data unmasked
SENSITIVE = "sensitive"  # the class masked without the right (`x-sensitivity` in schemas/)
HIDDEN = "(已隐藏 hidden)"
# How the store carries revisions of a record: never shown as the record's content.
REVISION_MEMBERS = ("_revisions", "_revs_info")


def sees_grid_unmasked(user: User) -> bool:
    """Whether the user's replication of a grid in their scope may carry its records unmasked:
    a worker's (their work needs it, offline) or a holder of the `unmask` right."""
    return user.role == "worker" or user.may(UNMASK)


def mask_id_number(value: Any) -> str:
    """An ID number (身份证号) with only its first three and last four characters."""
    text = str(value or "")
    return text[:3] + "*" * (len(text) - 7) + text[-4:] if len(text) > 7 else "*" * len(text)


def mask_phone(value: Any) -> str:
    """A phone number with only its first three and last four digits."""
    text = str(value or "")
    return text[:3] + "****" + text[-4:] if len(text) >= 11 else "*" * len(text)


# How a sensitive value keeps a part a person can recognise it by; any other is HIDDEN.
PARTIAL: Mapping[str, Callable[[Any], str]] = types.MappingProxyType(
    {"id_number": mask_id_number, "phone": mask_phone})


def mask_value(field: str, value: Any, doc_type: str | None = None) -> Any:
    """A field's value as /api/ shows it to someone without the right: as it is unless the
    field is sensitive in records of `doc_type` (of any type when not given)."""
    where = sensitive_shape(doc_type).get(field)
    if where is None:
        return value
    return _hide(field, value) if where == SENSITIVE else _mask(value, where)


Shape = dict[str, Any]  # per field: SENSITIVE, or the shape of a nested object, or of its items


def shape_of(schema: Mapping[str, Any]) -> Shape:
    """Where a schema's sensitive fields are: a field classed sensitive maps to SENSITIVE, a
    field whose object (or array items) hold sensitive fields to their shape."""
    shape: Shape = {}
    for name, prop in schema.get("properties", {}).items():
        if prop.get("x-sensitivity") == SENSITIVE:
            shape[name] = SENSITIVE
            continue
        inner = shape_of(prop) or (shape_of(prop["items"])
                                   if isinstance(prop.get("items"), Mapping) else {})
        if inner:
            shape[name] = inner
    return shape


def _merge(a: Shape, b: Shape) -> Shape:
    merged = dict(a)
    for name, where in b.items():
        old = merged.get(name)
        merged[name] = (SENSITIVE if SENSITIVE in (old, where) else
                        _merge(old, where) if isinstance(old, dict) else where)
    return merged


@functools.cache
def declared_shape(doc_type: str | None) -> Shape:
    """The sensitive fields a record type's schemas declare, over all its versions (a phone
    weeks behind may still send an old one); of every type when `doc_type` is None."""
    shape: Shape = {}
    for (name, _), validator in shared_registry().validators.items():
        if doc_type is None or name == doc_type:
            shape = _merge(shape, shape_of(validator.schema))
    return shape


@functools.cache
def sensitive_shape(doc_type: str | None) -> Shape:
    """What is masked in a record of `doc_type`: the fields its schemas class sensitive, and
    any field they do not declare (a record written around the gateway, or of no known type)
    that some type classes sensitive, so nothing slips through."""
    declared = {field for (name, _), validator in shared_registry().validators.items()
                if name == doc_type for field in validator.schema.get("properties", {})}
    undeclared = {k: v for k, v in declared_shape(None).items() if k not in declared}
    return _merge(declared_shape(doc_type) if doc_type is not None else {}, undeclared)


def sensitive_fields(doc_type: str | None) -> frozenset[str]:
    """The top-level fields of a type classed sensitive or holding sensitive values."""
    return frozenset(sensitive_shape(doc_type))


def _hide(field: str, value: Any) -> Any:
    partial = PARTIAL.get(field)
    if partial is not None and not isinstance(value, (Mapping, list)):
        return partial(value)
    return HIDDEN


def _mask(value: Any, shape: Shape) -> Any:
    if isinstance(value, list):
        return [_mask(item, shape) for item in value]
    if not isinstance(value, Mapping):
        return value
    shown = dict(value)
    for name, where in shape.items():
        if name in shown:
            shown[name] = (_hide(name, shown[name]) if where == SENSITIVE
                           else _mask(shown[name], where))
    return shown


def masked(doc: Mapping[str, Any], unmasked: bool) -> dict[str, Any]:
    """A record as a supervisor may see it without asking: its sensitive fields masked, as
    exports show them, unless `unmasked`; never the store's revision bookkeeping."""
    shown = {k: v for k, v in doc.items() if k not in REVISION_MEMBERS}
    if unmasked:
        return shown
    return dict(_mask(shown, sensitive_shape(doc.get("type"))))


def masked_side(record_type: str | None, field: str, side: Mapping[str, Any]) -> dict[str, Any]:
    """One side of a conflict (chosen or alternative) with its value masked when the record's
    field is sensitive; the supervisor still chooses it, by its revision
    (`/api/conflicts/decide` takes `rev`)."""
    shown = dict(side)
    where = sensitive_shape(record_type).get(field)
    if where is not None and "value" in shown:
        shown["value"] = (_hide(field, shown["value"]) if where == SENSITIVE
                          else _mask(shown["value"], where))
        shown["masked"] = True
    return shown


def masked_conflict_fields(fields: list[Mapping[str, Any]],
                           record_type: str | None = None) -> list[dict[str, Any]]:
    """The undecided fields of a conflict as someone without the right may see them (those
    sensitive in any type when the record's type is not given)."""
    shown = []
    for field in fields:
        name = str(field.get("field"))
        entry = dict(field)
        if isinstance(entry.get("chosen"), Mapping):
            entry["chosen"] = masked_side(record_type, name, entry["chosen"])
        if isinstance(entry.get("alternatives"), list):
            entry["alternatives"] = [masked_side(record_type, name, s)
                                     if isinstance(s, Mapping) else s
                                     for s in entry["alternatives"]]
        shown.append(entry)
    return shown
