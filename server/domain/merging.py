"""The domain's rules for merging the concurrent revisions of a record (冲突合并规则): one pure
function per document type, declared in `RULES`. No I/O here: the resolver (sync/conflicts.py)
gathers the revisions, their common ancestor and the server's receipts, and writes what these
functions decide.

The principle is a three-way merge against the common ancestor, field by field:
- a field changed on one side only takes that side's value, whatever the clocks say;
- a field changed on several sides to the same value takes it;
- a set-like field (a list of codes such as special groups) takes every addition and every
  removal, so a removal made on one phone is not undone by an older copy on another;
- a field changed on several sides to different values is undecidable: a deterministic
  provisional value (the revision the server received last) and every other value are kept, and
  the record waits for a supervisor.

When the ancestor's body is gone (a compacted CouchDB), which side changed a field cannot be
known: every field the sides disagree on is undecidable and waits for a supervisor. The fields'
edit stamps (a hybrid logical clock written by the phone, `edits`) are kept in the trail, never
used to decide: they are a phone's word.

Device clocks are never trusted: ordering uses the server's receipt time, then the generation
and the revision id, so a phone set to 1970 or 2099 neither wins nor loses because of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

MISSING: Any = object()
"""A field a revision does not have (distinct from JSON null)."""

# Fields that are the record's identity or metadata, never merged field by field: the merged
# record takes them from the revision received last (`device_time` says when a phone saved,
# and two phones always disagree on it).
IDENTITY = frozenset({"type", "grid", "created_by", "device_time"})
SET_FIELDS = {"household": frozenset({"special_groups"}),
              "screening": frozenset({"symptoms", "measures"})}


@dataclasses.dataclass(frozen=True)
class Revision:
    """One live leaf revision of a conflicted record, with what the server knows of it."""

    rev: str
    body: Mapping[str, Any]  # without CouchDB's `_` members
    by: str | None = None  # who sent it, from the server's receipts
    received_at: str | None = None  # the server's clock (ISO 8601 UTC); None: no receipt

    @property
    def order(self) -> tuple[str, int, str]:
        """Later is greater: server receipt time, then generation, then revision id."""
        generation = int(self.rev.split("-", 1)[0])
        return (self.received_at or "", generation, self.rev)

    def stamp(self, field: str) -> str | None:
        for edit in self.body.get("edits") or ():
            if isinstance(edit, Mapping) and edit.get("field") == field:
                return str(edit.get("at"))
        return None


@dataclasses.dataclass(frozen=True)
class FieldDecision:
    field: str
    rule: str  # one of the resolution schema's rules
    chosen: Revision
    value: Any  # MISSING: the field is left out
    alternatives: tuple[tuple[Revision, Any], ...] = ()
    undecided: bool = False


@dataclasses.dataclass(frozen=True)
class Merge:
    body: dict[str, Any]
    fields: tuple[FieldDecision, ...]

    @property
    def undecided(self) -> bool:
        return any(f.undecided for f in self.fields)


def latest(revisions: Sequence[Revision]) -> Revision:
    return max(revisions, key=lambda r: r.order)


def _value(body: Mapping[str, Any], field: str) -> Any:
    return body.get(field, MISSING)


def _merge_set(field: str, ancestor: Mapping[str, Any] | None,
               revisions: Sequence[Revision]) -> FieldDecision:
    """Every addition and every removal since the ancestor; with no ancestor, the union."""
    values = [_value(r.body, field) for r in revisions]
    lists = [v if isinstance(v, list) else [] for v in values]
    base = ancestor.get(field) if ancestor is not None else None
    base_list = base if isinstance(base, list) else []
    if ancestor is not None:
        added = [x for items in lists for x in items if x not in base_list]
        removed = [x for x in base_list if any(x not in items for items in lists)]
        merged = [x for x in base_list if x not in removed]
    else:
        added, merged = [x for items in lists for x in items], []
    for item in added:
        if item not in merged:
            merged.append(item)
    value: Any = MISSING if all(v is MISSING for v in values) else merged
    changed = [r for r, v in zip(revisions, values, strict=True)
               if ancestor is None or v != _value(ancestor, field)]
    chosen = latest(changed or list(revisions))  # whose edit it is: a side that changed it
    # With no ancestor a removal cannot be told from an older copy: the union stands until a
    # supervisor confirms it.
    undecided = ancestor is None and any(v != values[0] for v in values)
    return FieldDecision(field, "concurrent_edits" if undecided else "set_union", chosen,
                         value, tuple((r, v) for r, v in zip(revisions, values, strict=True)
                                      if r is not chosen), undecided=undecided)


def _merge_field(field: str, ancestor: Mapping[str, Any] | None,
                 revisions: Sequence[Revision]) -> FieldDecision:
    values = [_value(r.body, field) for r in revisions]
    pairs = list(zip(revisions, values, strict=True))
    if all(v == values[0] for v in values):
        return FieldDecision(field, "same_value", latest(revisions), values[0])
    if ancestor is not None:
        base = _value(ancestor, field)
        changed = [(r, v) for r, v in pairs if v != base]
        if all(v == changed[0][1] for _, v in changed):
            chosen = latest([r for r, _ in changed])
            return FieldDecision(field, "one_side_changed", chosen, changed[0][1],
                                 tuple((r, v) for r, v in pairs if v != changed[0][1]))
        candidates = changed
    else:
        # No ancestor (compacted away, or created apart): which side changed the field cannot
        # be known for sure, and a phone's stamp is its own word. A supervisor decides; the
        # stamps are kept in the trail through each side's `edits`.
        candidates = pairs
    chosen = latest([r for r, _ in candidates])
    value = next(v for r, v in candidates if r is chosen)
    return FieldDecision(field, "concurrent_edits", chosen, value,
                         tuple((r, v) for r, v in pairs if r is not chosen), undecided=True)


def merge_fields(doc_type: str) -> Callable[[Mapping[str, Any] | None, Sequence[Revision]],
                                            Merge]:
    """Profile documents (household, person) and forms (census, visit, screening, building):
    field-level three-way merge; set-like fields merged as sets."""
    set_fields = SET_FIELDS.get(doc_type, frozenset())

    def merge(ancestor: Mapping[str, Any] | None, revisions: Sequence[Revision]) -> Merge:
        base = latest(revisions)
        names: list[str] = []
        for body in [*(r.body for r in revisions), *([ancestor] if ancestor else [])]:
            names.extend(n for n in body if n not in names)
        body: dict[str, Any] = {}
        decisions: list[FieldDecision] = []
        for name in names:
            if name in IDENTITY or name == "edits":
                continue
            if name == "schema_version":
                body[name] = max(int(r.body.get(name, 1)) for r in revisions)
                continue
            decision = (_merge_set if name in set_fields else _merge_field)(
                name, ancestor, revisions)
            if decision.value is not MISSING:
                body[name] = decision.value
            if decision.rule != "same_value":
                decisions.append(decision)
        for name in IDENTITY:
            if name in base.body:
                body[name] = base.body[name]
        edits = _merge_edits(revisions, decisions)
        if edits:
            body["edits"] = edits
        return Merge(_ordered(body, names), tuple(decisions))

    return merge


def _merge_edits(revisions: Sequence[Revision],
                 decisions: Sequence[FieldDecision]) -> list[dict[str, Any]]:
    """Each field's stamp: from the revision whose value was taken, else the newest."""
    chosen = {d.field: d.chosen for d in decisions}
    entries: dict[str, list[tuple[Revision, dict[str, Any]]]] = {}
    for revision in revisions:
        for edit in revision.body.get("edits") or ():
            if isinstance(edit, Mapping):
                entries.setdefault(str(edit.get("field")), []).append((revision, dict(edit)))
    merged = []
    for name in sorted(entries):
        own = [e for r, e in entries[name] if r is chosen.get(name)]
        merged.append(own[0] if own else max((e for _, e in entries[name]),
                                             key=lambda e: str(e.get("at"))))
    return merged


def _ordered(body: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    order = {name: i for i, name in enumerate(names)}
    return dict(sorted(body.items(), key=lambda kv: order.get(kv[0], len(order))))


def _whole(rule: str, chosen: Revision, revisions: Sequence[Revision]) -> Merge:
    """One revision stands, whole; the fields the others held differently are kept in the
    trail under `rule`."""
    others = [r for r in revisions if r is not chosen]
    names: list[str] = []
    for revision in revisions:
        names.extend(n for n in revision.body if n not in names)
    decisions = tuple(
        FieldDecision(name, rule, chosen, _value(chosen.body, name),
                      tuple((r, _value(r.body, name)) for r in others))
        for name in names
        if name not in IDENTITY and name not in ("edits", "schema_version")
        and any(_value(r.body, name) != _value(chosen.body, name) for r in others))
    return Merge(dict(chosen.body), decisions)


def last_received(ancestor: Mapping[str, Any] | None, revisions: Sequence[Revision]) -> Merge:
    """A verdict is a supervisor's decision at a moment: the one the server received last
    stands, whole; the others are kept in the trail."""
    return _whole("last_received", latest(revisions), revisions)


def first_received(ancestor: Mapping[str, Any] | None, revisions: Sequence[Revision]) -> Merge:
    """A decision on something limited (a sign-up confirmed at the door, a code spent, a
    resident removed, a correction answered) is taken once: the revision the server received
    first stands, whole, and the later ones are kept in the trail, so two phones that decided
    offline end with the decision that reached the server first
    (server/domain/resident_queue.py)."""
    return _whole("first_received", min(revisions, key=lambda r: r.order), revisions)


RULES: dict[str, Callable[[Mapping[str, Any] | None, Sequence[Revision]], Merge]] = {
    "household": merge_fields("household"),
    "person": merge_fields("person"),
    "census_household": merge_fields("census_household"),
    "household_visit": merge_fields("household_visit"),
    "screening": merge_fields("screening"),
    "building": merge_fields("building"),
    "verdict": last_received,
    "resolution": last_received,
    "signup": first_received,
    "resident": first_received,
    "activation_code": first_received,
    "correction_request": first_received,
}
"""The rule of each record type. A type not listed is merged field by field."""


def merge(doc_type: str, ancestor: Mapping[str, Any] | None,
          revisions: Sequence[Revision]) -> Merge:
    if len(revisions) < 2:
        raise ValueError("a merge needs at least two revisions")
    ordered = sorted(revisions, key=lambda r: r.rev)  # the same input order in every process
    rule = RULES.get(doc_type) or merge_fields(doc_type)
    return rule(ancestor, ordered)
