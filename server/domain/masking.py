"""Masking (遮盖) of personal data: what a supervisor sees of a record without the `unmask` right.

ID numbers keep their first three and last four characters (`330***********005X`), phones
their first three and last four (`139****1234`), and special groups (特殊人群) are hidden
altogether. One rule for every place that shows records through `/api/`: the review screens,
the conflicts queue and the exports. Who may replicate a grid unmasked (a worker of the grid,
or a holder of the right) is decided here too; the audit of such reads is server/sync/personal.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.domain.scope import User

UNMASK = "unmask"  # the right (`linli user grant NAME unmask`) to see personal data unmasked
# The fields masked without the right: what "personal data unmasked" means in Linli.
MASKED_FIELDS = ("id_number", "phone", "special_groups")
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


def mask_value(field: str, value: Any) -> Any:
    """A field's value as /api/ shows it to someone without the right."""
    if field == "id_number":
        return mask_id_number(value)
    if field == "phone":
        return mask_phone(value)
    if field == "special_groups":
        return HIDDEN
    return value


def masked(doc: Mapping[str, Any], unmasked: bool) -> dict[str, Any]:
    """A record as a supervisor may see it without asking: its personal fields masked, as
    exports show them, unless `unmasked`; never the store's revision bookkeeping."""
    shown = {k: v for k, v in doc.items() if k not in REVISION_MEMBERS}
    if unmasked:
        return shown
    for field in MASKED_FIELDS:
        if field in shown:
            shown[field] = mask_value(field, shown[field])
    return shown


def masked_side(field: str, side: Mapping[str, Any]) -> dict[str, Any]:
    """One side of a conflict (chosen or alternative) with its value masked when personal; the
    supervisor still chooses it, by its revision (`/api/conflicts/decide` takes `rev`)."""
    shown = dict(side)
    if field in MASKED_FIELDS and "value" in shown:
        shown["value"] = mask_value(field, shown["value"])
        shown["masked"] = True
    return shown


def masked_conflict_fields(fields: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The undecided fields of a conflict as someone without the right may see them."""
    shown = []
    for field in fields:
        name = str(field.get("field"))
        entry = dict(field)
        if isinstance(entry.get("chosen"), Mapping):
            entry["chosen"] = masked_side(name, entry["chosen"])
        if isinstance(entry.get("alternatives"), list):
            entry["alternatives"] = [masked_side(name, s) if isinstance(s, Mapping) else s
                                     for s in entry["alternatives"]]
        shown.append(entry)
    return shown
