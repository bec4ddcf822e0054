"""Writing many documents at once through couchdb-python, with each answer matched to its own
document.

Rule: a `_bulk_docs` answer is matched to the document it answers by `id`, never by position,
and the caller's documents are never changed.

Why: PouchDB Server 4.2.0 answers `_bulk_docs` out of input order (its validation wrapper
collects the documents in the order their checks finish: measured, a few to a few hundred of
1,007 answers out of place, with or without a `validate_doc_update`). couchdb-python's
`Database.update` matches answers by position and writes each answer's `_id` and `_rev` into
the document at that position, so after it a caller's document can carry another record's id:
written again, or compared with an export, it mixes two records (issue 13, item 7).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import Any

import couchdb

Result = tuple[bool, str, Any]  # (written, id, rev or the error), as `Database.update` gives


def match_results(docs: list[Mapping[str, Any]],
                  answers: Iterable[Mapping[str, Any]]) -> list[Result]:
    """Each document's answer, in the documents' order, found by id (answers to the same id,
    which a batch may hold twice, are taken in the order given). A document left without an
    answer is reported not written."""
    by_id: dict[str, deque[Mapping[str, Any]]] = defaultdict(deque)
    for answer in answers:
        by_id[str(answer.get("id"))].append(answer)
    out: list[Result] = []
    for doc in docs:
        doc_id = str(doc.get("_id"))
        queue = by_id.get(doc_id)
        if not queue:
            out.append((False, doc_id, couchdb.ServerError("no answer for this document")))
            continue
        answer = queue.popleft()
        if "error" in answer:
            kind = couchdb.ResourceConflict if answer["error"] == "conflict" \
                else couchdb.ServerError
            out.append((False, doc_id, kind(answer.get("reason", answer["error"]))))
        else:
            out.append((True, doc_id, answer["rev"]))
    return out


def save_many(db: couchdb.Database, docs: Iterable[Mapping[str, Any]],
              **options: Any) -> list[Result]:
    """Store `docs` with one `_bulk_docs` (options such as `new_edits=False` go with it):
    `Database.update` without its mix-up. Every document must carry its `_id`."""
    batch = [dict(doc) for doc in docs]
    if any(not isinstance(doc.get("_id"), str) for doc in batch):
        raise ValueError("save_many needs every document's _id")
    _, _, answers = db.resource.post_json("_bulk_docs", body={**options, "docs": batch})
    return match_results(batch, answers)
