"""A supervisor settles a conflict (冲突裁决) the resolver left open (server/sync/conflicts.py).

Rules, in the order they are checked:
- only an open resolution takes decisions (409 once settled: two supervisors deciding at once);
- a decision names a field the resolver left undecided, with a value, with no value (`{field}`:
  the field is removed), or with the revision of one side (`{field, rev}`: that side's value,
  for a supervisor who sees the values masked and so cannot send them back);
- the record must still exist, and each decided field must still hold the value the resolver
  left standing: a change made since is seen by the supervisor before deciding over it (409);
- the record with the decided values must pass the checks of any write (400);
- a form that stamps its edits (`edits[]`) gets the supervisor's stamp on each decided field.
The resolution then records, for each decided field, the supervisor's choice (rule
`supervisor`) and stays open while any field is still undecided.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from server.domain import merging
from server.domain.masking import masked_conflict_fields
from server.domain.messages import Refused, refused
from server.domain.validation import SchemaRegistry, WriteContext, check_record


@dataclasses.dataclass(frozen=True)
class Settlement:
    """What a settlement writes: the resolution first (its revision is the lock two supervisors
    deciding at once meet), then the record."""

    resolution: dict[str, Any]
    record: dict[str, Any]
    fields: tuple[str, ...]  # the fields decided, sorted

    @property
    def status(self) -> str:
        return str(self.resolution["status"])


def open_conflict(grid: str, resolution: Mapping[str, Any], unmasked: bool) -> dict[str, Any]:
    """An open conflict as the supervisors' queue lists it: the fields still to decide, their
    values masked unless `unmasked` (a side is then chosen by its revision)."""
    undecided = [f for f in resolution.get("fields", []) if f.get("undecided")]
    return {"grid": grid, "id": resolution["_id"], "record": resolution["record"],
            "record_type": resolution["record_type"], "resolved_at": resolution["resolved_at"],
            "fields": undecided if unmasked else masked_conflict_fields(
                undecided, resolution.get("record_type"))}


def edit_stamp(moment: datetime.datetime) -> str:
    """The stamp a supervisor's edit carries, in the phones' edit-clock format (milliseconds,
    13 digits, then a 4-digit counter), from the server's clock at `moment`."""
    return f"{int(moment.timestamp() * 1000):013d}-0000"


def chosen_side(decision: Mapping[str, Any], field: Mapping[str, Any]) -> dict[str, Any]:
    """A decision as `{field, value}` (or `{field}` for "no value"). One that names a side by
    its revision (`{field, rev}`) takes that side's value."""
    if "value" in decision or "rev" not in decision:
        return {k: v for k, v in decision.items() if k != "rev"}
    sides = [field.get("chosen"), *(field.get("alternatives") or [])]
    for side in sides:
        if isinstance(side, Mapping) and side.get("rev") == decision["rev"]:
            if side.get("missing") or "value" not in side:
                return {"field": decision["field"]}
            return {"field": decision["field"], "value": side["value"]}
    raise refused(400, "bad_request",
                  f"字段 {decision['field']} 没有版本为 {decision['rev']} 的值",
                  f"No side of {decision['field']} has revision {decision['rev']}.")


def provisional(field: Mapping[str, Any]) -> Any:
    """The value the resolver left standing for a field of a resolution."""
    chosen = field.get("chosen") or {}
    return merging.MISSING if chosen.get("missing") else chosen.get("value")


def settle(resolution: Mapping[str, Any], record: Mapping[str, Any] | None,
           decisions: Sequence[Mapping[str, Any]], ctx: WriteContext, registry: SchemaRegistry,
           *, at: str, stamp: str) -> Settlement:
    """The resolution and the record after `ctx.user`'s decisions (each `{field, value}`,
    `{field}` or `{field, rev}`), at the server's time `at` (ISO) and edit stamp `stamp`;
    `record` None when it no longer exists. Raises Refused when a rule above says no."""
    if resolution.get("status") != "open":
        raise refused(409, "conflict", "这个冲突已经处理过了",
                      "This conflict has already been settled.")
    undecided = {f["field"]: f for f in resolution.get("fields", []) if f.get("undecided")}
    unknown = [d["field"] for d in decisions if d["field"] not in undecided]
    if unknown:
        raise refused(400, "bad_request", f"这些字段不在待决定之列：{', '.join(unknown)}",
                      f"Not undecided in this conflict: {', '.join(unknown)}")
    chosen = {d["field"]: chosen_side(d, undecided[d["field"]]) for d in decisions}
    if record is None:
        raise refused(404, "not_found", "记录已不存在", "The record no longer exists.")
    changed = [name for name in chosen
               if record.get(name, merging.MISSING) != provisional(undecided[name])]
    if changed:
        raise refused(409, "conflict",
                      f"这些字段在冲突处理后又被修改过，请刷新后再决定：{', '.join(changed)}",
                      f"Changed since the conflict was recorded; reload and decide again: "
                      f"{', '.join(changed)}")
    decided = decided_record(record, list(chosen.values()), ctx.user.name, registry, stamp)
    refusal = check_record(decided, ctx, registry)
    if refusal is not None:
        raise Refused(400, "bad_request", refusal.reason)
    base = {"rev": str(record["_rev"]), "by": ctx.user.name, "received_at": at}
    fields = []
    for field in resolution["fields"]:
        decision = chosen.get(field["field"])
        if decision is not None:
            field = {**field, "undecided": False, "rule": "supervisor",
                     "chosen": {**base, "value": decision["value"]} if "value" in decision
                     else {**base, "missing": True}}
        fields.append(field)
    still_open = any(f.get("undecided") for f in fields)
    return Settlement(
        resolution={**resolution, "fields": fields, "decided_by": ctx.user.name,
                    "decided_at": at, "status": "open" if still_open else "decided"},
        record=decided, fields=tuple(sorted(chosen)))


def decided_record(record: Mapping[str, Any], decisions: Sequence[Mapping[str, Any]], by: str,
                   registry: SchemaRegistry, stamp: str) -> dict[str, Any]:
    """The record with the decided values (a decision without one removes the field), and the
    supervisor's stamp on each decided field when its form stamps edits, like a phone's."""
    out = dict(record)
    for decision in decisions:
        if "value" in decision:
            out[decision["field"]] = decision["value"]
        else:
            out.pop(decision["field"], None)
    schema = registry.schemas.get((str(out.get("type")), out.get("schema_version")), {})
    if "edits" in schema.get("properties", {}):
        fields = {str(d["field"]) for d in decisions}
        out["edits"] = sorted(
            [e for e in out.get("edits", []) if e.get("field") not in fields]
            + [{"field": f, "at": stamp, "by": by} for f in sorted(fields)],
            key=lambda e: str(e.get("field")))
    return out
