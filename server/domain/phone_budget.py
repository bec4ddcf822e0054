"""A phone's budget (手机容量): how much of one grid a phone may be asked to carry.

Rules:
1. A grid's first download to a device (its changes from the beginning) is refused (413) when
   the grid database holds more documents than `phone_grid_max_documents` or, where the store
   reports it, more bytes than `phone_grid_max_bytes` (server/config.py): a phone would fill,
   or carry far more personal data than one worker's round needs. The admin splits the grid.
2. A phone that already holds the grid goes on syncing (it reads from its checkpoint): the
   budget is checked where a device starts to carry a grid, not on every change.
3. Records a worker no longer needs leave the phone at its next start (pwa/sync.js
   `dropUnneeded`, `forgetOtherGrids`, `purgeCampaigns`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.domain.messages import Refused, refused


def grid_size(info: Mapping[str, Any]) -> tuple[int, int | None]:
    """Documents and bytes of a database's info (bytes: CouchDB's `sizes.external`, None
    where the store does not report it, as the embedded PouchDB Server)."""
    docs = info.get("doc_count")
    sizes = info.get("sizes")
    external = sizes.get("external") if isinstance(sizes, Mapping) else None
    return (docs if isinstance(docs, int) else 0,
            external if isinstance(external, int) and not isinstance(external, bool) else None)


def over_budget(info: Mapping[str, Any], max_documents: int, max_bytes: int) -> Refused | None:
    """Rule 1: the refusal of a first download of a grid over the budget, else None."""
    docs, size = grid_size(info)
    if docs > max_documents or (size is not None and size > max_bytes):
        shown = f"{docs} 条记录" + (f"、{size} 字节" if size is not None else "")
        en = f"{docs} documents" + (f", {size} bytes" if size is not None else "")
        return refused(413, "too_large",
                       f"该网格数据量（{shown}）超过一部手机的容量（最多 {max_documents} 条记录、"
                       f"{max_bytes} 字节），请管理员拆分网格",
                       f"This grid ({en}) is more than a phone may carry (at most "
                       f"{max_documents} documents, {max_bytes} bytes); ask an admin to split "
                       "the grid.")
    return None
