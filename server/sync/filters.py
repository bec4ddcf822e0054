"""`_changes` filters, passed to the store only when it can run them without dying.

PouchDB Server 4.2.0 ends its whole process on any error in a filter: a missing design document,
filter or view, a filter or map function that throws, a selector it cannot read (PROTOCOL.md).
So before a filter is forwarded:

- `_doc_ids`: a list of ids (checked by the caller);
- `_selector`: the selector is checked and rewritten by params.selector into the operators the
  store runs safely;
- `ddoc/name` and `_view` (`view=ddoc/name`): the design document and its filter or view must
  exist (a 404 as CouchDB answers otherwise), and the function must be one Linli ships
  (store/designs/), stored unchanged. Only admins write design documents, but a filter an admin
  wrote may still throw on a document it did not expect (`doc.a.b` on a record without `a`), and
  any worker could then take every grid down with it; Linli's own functions are tested on every
  kind of record. Parameters a filter reads (`req.query`) are forwarded only when declared here.

A selector names fields of the records, so it can tell what a field holds without showing it;
users whose personal data is masked (a supervisor or admin without the `unmask` right) may not
use one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server import errors
from server.domain.masking import sees_grid_unmasked
from server.domain.scope import User
from server.store import designs
from server.store.couch import CouchClient, NotFound, db_path
from server.sync import params

MAX_FILTER_PARAM_CHARS = 200
# Query parameters Linli's own filters read, by (design document, filter): forwarded with them.
FILTER_QUERY_PARAMS: dict[tuple[str, str], frozenset[str]] = {
    ("_design/linli", "by_type"): frozenset({"record_type"}),
}


# Linli's own design documents, read once: a filtered longpoll asks for them on every read.
SHIPPED: dict[str, dict[str, Any]] = {str(doc["_id"]): doc for doc in designs.design_docs()}


def shipped(ddoc_id: str, section: str, name: str) -> Any:
    """The function Linli ships under `section` ("filters" or "views") of `ddoc_id`, or None."""
    return (SHIPPED.get(ddoc_id, {}).get(section) or {}).get(name)


def may_select(user: User) -> bool:
    """Those who see a grid's records unmasked anyway (server/sync/personal.py); an admin without
    the `unmask` right is masked too."""
    return sees_grid_unmasked(user)


async def _stored_function(couch: CouchClient, db: str, ddoc_id: str, section: str,
                           name: str) -> Any:
    try:
        ddoc = await couch.get(db_path(db, ddoc_id))
    except NotFound:
        raise errors.doc_not_found("missing") from None
    function = (ddoc.get(section) or {}).get(name) if isinstance(ddoc, dict) else None
    if function is None:
        raise errors.doc_not_found(f"missing json key: {name}" if ddoc.get(section) else
                                   f"missing json key: {section}")
    return function


def _not_vetted(what: str) -> errors.CouchError:
    return errors.bad_request(
        f"{what} 不是 Linli 自带的函数，内置数据库不能安全地运行它",
        f"{what} is not one of Linli's own functions (server/store/designs/); the embedded store "
        "cannot run other design documents' functions safely.")


async def upstream(couch: CouchClient, db: str, user: User, name: str,
                   query: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, str]:
    """The parameters that make the store run filter `name` (other than `_doc_ids`), once it is
    known to be safe there; a CouchDB-shaped error otherwise."""
    if name == "_selector":
        if not may_select(user):
            raise errors.forbidden(
                "您的个人信息是脱敏显示的，不能按内容筛选记录；请用 doc_ids 或 linli/by_type",
                "Your view of personal data is masked, so you may not filter records by their "
                "content; use doc_ids or the filter linli/by_type.")
        if "selector" not in body:
            raise errors.bad_request("filter=_selector 需要用 POST 发送 {\"selector\": ...}",
                                     'filter=_selector needs a POST body {"selector": ...}.')
        return {"filter": "_selector", "selector": params.selector(body["selector"])}
    if name == "_view":
        if "view" not in query:
            raise errors.bad_request("filter=_view 需要参数 view=设计文档/视图",
                                     "filter=_view needs the parameter view=ddoc/view.")
        view = params.KINDS["view"]("view", query["view"])
        ddoc, view_name = view.split("/")
        stored = await _stored_function(couch, db, f"_design/{ddoc}", "views", view_name)
        ours = shipped(f"_design/{ddoc}", "views", view_name)
        if ours is None or not isinstance(stored, dict) or stored.get("map") != ours.get("map"):
            raise _not_vetted(f"视图 {view} / view")
        return {"filter": "_view", "view": view}
    if name.startswith("_"):
        raise errors.bad_request(f"未知的过滤器 {name}",
                                 f"Unknown filter {name}; use _doc_ids, _selector, _view or "
                                 "ddoc/name.")
    function = params.KINDS["view"]("filter", name)
    ddoc, filter_name = function.split("/")
    ddoc_id = f"_design/{ddoc}"
    stored = await _stored_function(couch, db, ddoc_id, "filters", filter_name)
    if stored != shipped(ddoc_id, "filters", filter_name):
        raise _not_vetted(f"过滤器 {function} / filter")
    forwarded = {"filter": function}
    for param in FILTER_QUERY_PARAMS.get((ddoc_id, filter_name), frozenset()):
        if param in query:
            if len(query[param]) > MAX_FILTER_PARAM_CHARS:
                raise errors.bad_request(
                    f"参数 {param} 最长 {MAX_FILTER_PARAM_CHARS} 个字符",
                    f"Query parameter {param} is longer than {MAX_FILTER_PARAM_CHARS} characters.")
            forwarded[param] = query[param]
    return forwarded
