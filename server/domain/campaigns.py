"""Campaigns (工作批次: a screening, a census pilot) end, and their personal records go.

Rules:
1. A campaign is `campaign:<key>` in the directory: its end (`ends_on`, a date) and how long
   its records are kept after it (`retention_days`). Its records are those of the types whose
   schema files them under a campaign (a `campaign` field: screening, census_household).
2. Once the campaign has ended, a supervisor or admin given the `purge` right purges its
   records from the grids in their scope: every revision of every such record leaves the
   store, and the conflicts' resolutions naming them too. Only the figures, counted before,
   stay (`figures`: per grid, per type, per day).
3. A grid purged of a campaign takes none of its records again: a phone that still holds them
   is refused them (`forbidden`, which replication counts as denied and goes on), and at its
   next sync wipes its copy of the grid and downloads it again (pwa/sync.js).
4. Purge is due `retention_days` after the end; it is listed as due, and never automatic.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.domain.messages import refused
from server.domain.validation import shared_registry

PURGE = "purge"  # the right (`linli user grant NAME purge`) to purge a campaign's records
CAMPAIGN_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")  # as schemas/common.v1 says
MAX_RETENTION_DAYS = 3660


@functools.cache
def campaign_types() -> frozenset[str]:
    """The record types filed under a campaign (rule 1), read from the schemas."""
    return frozenset(t for (t, _), v in shared_registry().validators.items()
                     if "campaign" in v.schema.get("properties", {}))


def campaign_doc(key: Any, ends_on: Any, retention_days: Any,
                 stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A campaign's directory document, from what an admin gives; refused (400) when a value
    is not one. A purged campaign keeps its purges and figures."""
    if not isinstance(key, str) or not CAMPAIGN_KEY.match(key):
        raise refused(400, "bad_request", "工作批次代码应为小写字母、数字、-、_",
                      "A campaign key is lower-case letters, digits, - and _.")
    try:
        ends = datetime.date.fromisoformat(str(ends_on))
    except ValueError:
        raise refused(400, "bad_request", "结束日期应为 YYYY-MM-DD",
                      "The end date must be YYYY-MM-DD.") from None
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) \
            or not 0 <= retention_days <= MAX_RETENTION_DAYS:
        raise refused(400, "bad_request", f"保存天数应为 0 到 {MAX_RETENTION_DAYS} 的整数",
                      f"Retention days must be a whole number from 0 to {MAX_RETENTION_DAYS}.")
    doc = dict(stored or {})
    doc.update({"_id": f"campaign:{key}", "type": "campaign", "key": key,
                "ends_on": ends.isoformat(), "retention_days": retention_days})
    doc.setdefault("purged", {})
    doc.setdefault("figures", {})
    return doc


def due_on(campaign: Mapping[str, Any]) -> str:
    """The day purging is due (rule 4)."""
    ends = datetime.date.fromisoformat(str(campaign["ends_on"]))
    return (ends + datetime.timedelta(days=int(campaign.get("retention_days", 0)))).isoformat()


def check_may_purge(campaign: Mapping[str, Any] | None, today: datetime.date) -> None:
    """Refused unless the campaign exists and has ended (rule 2)."""
    if campaign is None:
        raise refused(404, "not_found", "没有这个工作批次", "No such campaign.")
    if today.isoformat() <= str(campaign["ends_on"]):
        key, ends = campaign["key"], campaign["ends_on"]
        raise refused(409, "conflict", f"工作批次 {key} 尚未结束（{ends}），不能清除",
                      f"Campaign {key} has not ended ({ends}); it cannot be purged yet.")


def filed_under(doc: Mapping[str, Any], key: str) -> bool:
    """Whether a record belongs to the campaign (rule 1)."""
    return doc.get("type") in campaign_types() and doc.get("campaign") == key


def figures_of(docs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """What stays of a grid's records of a campaign: counts per type and per day (rule 2)."""
    counts: dict[str, dict[str, int]] = {}
    for doc in docs:
        day = str(doc.get("screened_on") or doc.get("enumerated_on") or "")
        by_day = counts.setdefault(str(doc.get("type")), {})
        by_day[day] = by_day.get(day, 0) + 1
    return counts


def dropped(leaves: Mapping[str, list[Mapping[str, Any]]], key: str) -> set[str]:
    """The ids to purge, given every leaf revision's body by id: a record any of whose leaves
    is filed under the campaign, and a resolution naming such a record."""
    records = {doc_id for doc_id, bodies in leaves.items()
               if any(filed_under(b, key) for b in bodies)}
    return records | {doc_id for doc_id, bodies in leaves.items()
                      if any(b.get("type") == "resolution" and b.get("record") in records
                             for b in bodies)}
