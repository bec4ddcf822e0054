"""Open311 GeoReport v2 (the civic-reporting convention of FixMyStreet and many cities), JSON
only, over the same reports and rules as /api/reports: `services` are the report categories,
a service request is a report, its `status` is `open` or `closed` (closed once 已关闭) with the
workflow's own state beside it (`detailed_status`, and `status_notes` in words). A client logs
in as any Linli client does (cookie or Basic): a resident files and follows their own
reports, staff read what they see. Coordinates are not kept (a report's place is its
household's, or `address_string` as typed); `media_url` is never fetched (a server that
fetches URLs for its clients is a proxy into its own network): photos go through
/api/reports. Errors are GeoReport's: `[{"code", "description"}]`, description zh-CN first."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from server.domain import reports as rules
from server.domain.messages import Refused
from server.errors import json_response
from server.sync.residents import utc_now
from server.web.guard import require_user
from server.web.keys import REPORTS
from server.web.parsing import read_json, whole_number
from server.web.resident_sync import index_of

PREFIX = "/api/open311/v2"
JURISDICTION = "linli"
STATUSES = ("open", "closed")
PAGE, PAGE_MOST, PAGES = 100, 1000, 10_000  # requests a page by default, at most; pages
IDS_MOST = 100  # service_request_id values at once
POST_FIELDS = frozenset({"service_code", "description", "address_string", "attribute[spot]",
                         "attribute[anonymous]", "jurisdiction_id", "device_id", "account_id",
                         "first_name", "last_name", "email", "phone", "lat", "long",
                         "media_url", "address_id"})


def georeport_error(status: int, description: str) -> web.Response:
    return json_response([{"code": status, "description": description}], status=status)


def refusals(handler: Any) -> Any:
    """The route's refusals in GeoReport's error shape."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except Refused as exc:
            if exc.status == 401:
                raise
            return georeport_error(exc.status, exc.reason)
    return wrapped


def service(category: rules.Category) -> dict[str, Any]:
    return {"service_code": category.code, "service_name": f"{category.zh} / {category.en}",
            "description": f"{category.zh} / {category.en}", "metadata": True,
            "type": "realtime", "keywords": category.code, "group": "linli"}


async def services(request: web.Request) -> web.Response:
    require_user(request)
    return json_response([service(c) for c in request.app[REPORTS].categories])


async def definition(request: web.Request) -> web.Response:
    require_user(request)
    category = rules.category_of(request.match_info["service_code"],
                                 request.app[REPORTS].categories)
    if category is None:
        return georeport_error(404, "没有这个服务 / No such service.")
    attributes = [
        {"variable": True, "code": "spot", "datatype": "string", "required": False,
         "datatype_description": "位置 / Place (at most 60 characters)", "order": 1,
         "description": "位置 / Place"}]
    if category.anonymous_allowed:
        attributes.append({
            "variable": True, "code": "anonymous", "datatype": "singlevaluelist",
            "required": False, "datatype_description": "对工作人员匿名 / Anonymous to staff",
            "order": 2, "description": "对工作人员匿名 / Anonymous to staff",
            "values": [{"key": "true", "name": "是 / Yes"}, {"key": "false", "name": "否 / No"}]})
    return json_response({"service_code": category.code, "attributes": attributes})


def as_request(doc: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """A report as a GeoReport service request."""
    state = str(status.get("state", "submitted"))
    zh, en = rules.STATE_LABELS.get(state, (state, state))
    return {"service_request_id": doc.get("_id"), "status": rules.open311_status(state),
            "detailed_status": state, "status_notes": f"{zh} / {en}",
            "service_name": doc.get("category"), "service_code": doc.get("category"),
            "description": doc.get("description"),
            "agency_responsible": status.get("assignee") or doc.get("assignee"),
            "service_notice": "", "requested_datetime": doc.get("submitted_at"),
            "updated_datetime": status.get("updated_at") or doc.get("submitted_at"),
            "expected_datetime": None, "address": doc.get("spot", ""), "address_id": "",
            "zipcode": "", "lat": None, "long": None, "media_url": ""}


async def create(request: web.Request) -> web.Response:
    """A service request from `application/x-www-form-urlencoded` (GeoReport's) or JSON."""
    user = require_user(request)
    if request.content_type == "application/json":
        sent: Mapping[str, Any] = await read_json(request)
        if not isinstance(sent, Mapping):
            return georeport_error(400, "请求内容应为对象 / The body must be an object.")
    else:
        sent = await request.post()
    unknown = sorted(str(k)[:40] for k in sent if k not in POST_FIELDS)
    if unknown:
        return georeport_error(400, f"不允许的字段 {', '.join(unknown)} / field(s) not "
                               f"allowed: {', '.join(unknown)}")
    if sent.get("media_url"):
        return georeport_error(400, "照片请通过 /api/reports 上传 / Send photos through "
                               "/api/reports; media_url is not fetched.")
    body: dict[str, Any] = {"category": sent.get("service_code"),
                            "description": sent.get("description"),
                            "request": f"o311{secrets.token_hex(8)}"}
    spot = sent.get("attribute[spot]") or sent.get("address_string")
    if spot:
        body["spot"] = spot
    if sent.get("attribute[anonymous]") in ("true", True):
        body["anonymous"] = True
    doc, _ = await request.app[REPORTS].submit(user, body, await index_of(request), utc_now())
    return json_response([{"service_request_id": doc["_id"], "service_notice": "",
                           "account_id": None}], status=201)


async def listing(request: web.Request) -> web.Response:
    """The requests the user sees, newest first; `service_request_id` (comma-separated, at
    most IDS_MOST), `service_code`, `status` filter them; `page_size` (1–PAGE_MOST, 100)
    and `page` (1–PAGES) page them (GeoReport's convention; its limit is 1000)."""
    user = require_user(request)
    query = request.query
    wanted_ids = {i for i in query.get("service_request_id", "").split(",") if i}
    code, status = query.get("service_code"), query.get("status")
    if status not in (None, *STATUSES):
        return georeport_error(400, "status 应为 open 或 closed / status must be open or closed")
    if len(wanted_ids) > IDS_MOST:
        return georeport_error(400, f"service_request_id 最多 {IDS_MOST} 个 / at most "
                               f"{IDS_MOST} service_request_id")
    size = whole_number(query, "page_size", "每页条数 page_size", PAGE, PAGE_MOST)
    number = whole_number(query, "page", "页码 page", 1, PAGES)

    def wanted(row: rules.Kept) -> bool:
        return (not wanted_ids or row.id in wanted_ids) and (
            not code or row.figure.category == code) and (
            not status or rules.open311_status(row.figure.state) == status)

    await index_of(request)  # the kept rows are whole once the index has read the database
    found, _ = await request.app[REPORTS].queue(user, utc_now(), size,
                                                offset=(number - 1) * size, wanted=wanted)
    return json_response([as_request(item, item.get("status", {})) for item in found])


async def one(request: web.Request) -> web.Response:
    user = require_user(request)
    store = request.app[REPORTS]
    doc = await store.report(user, request.match_info["request"])
    shown = doc if doc.get("reporter") == user.name else rules.staff_view(doc)
    return json_response([as_request(shown, await store.statuses_of(str(doc["_id"])))])


def setup(app: web.Application) -> None:
    for method, path, handler in (
            ("GET", PREFIX + "/services.json", services),
            ("GET", PREFIX + "/services/{service_code:[^/]+}.json", definition),
            ("GET", PREFIX + "/requests.json", listing),
            ("POST", PREFIX + "/requests.json", create),
            ("GET", PREFIX + "/requests/{request:[^/]+}.json", one)):
        app.router.add_route(method, path, refusals(handler))
