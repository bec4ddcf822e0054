"""Open311 GeoReport v2 over problem reports (issue 16): every field the spec's JSON answers
require, on the real app and store: the service list, a service definition, a request filed
form-encoded as GeoReport clients do and read back, its status open then closed with the
workflow's own state beside it; a resident reads only their own; errors in GeoReport's shape."""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, basic
from test_reports import ready, step

PREFIX = "/api/open311/v2"
SERVICE = {"service_code", "service_name", "description", "metadata", "type", "keywords",
           "group"}
ATTRIBUTE = {"variable", "code", "datatype", "required", "datatype_description", "order",
             "description"}
REQUEST = {"service_request_id", "status", "status_notes", "service_name", "service_code",
           "description", "agency_responsible", "service_notice", "requested_datetime",
           "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
           "long", "media_url"}
CREATED = {"service_request_id", "service_notice", "account_id"}


def zoned(value: str) -> bool:
    return datetime.datetime.fromisoformat(value).tzinfo is not None


async def get(client: TestClient, user: str, path: str) -> tuple[int, Any]:
    resp = await client.get(PREFIX + path, headers=basic(user))
    return resp.status, await resp.json()


async def test_every_required_field_of_georeport_v2(client: TestClient, city: City) -> None:
    town = await ready(client, city)
    got, services = await get(client, town.ra, "/services.json")
    assert got == 200 and len(services) == 10
    for item in services:
        assert set(item) >= SERVICE and item["type"] in ("realtime", "batch", "blackbox")
        assert isinstance(item["metadata"], bool)
    assert {s["service_code"] for s in services} >= {"sanitation", "noise", "other"}
    got, definition = await get(client, town.ra, "/services/noise.json")
    assert got == 200 and definition["service_code"] == "noise"
    for attribute in definition["attributes"]:
        assert set(attribute) >= ATTRIBUTE
        if attribute["datatype"] in ("singlevaluelist", "multivaluelist"):
            assert all({"key", "name"} <= set(v) for v in attribute["values"])
    got, missing = await get(client, town.ra, "/services/ufo.json")
    assert got == 404 and set(missing[0]) == {"code", "description"}

    resp = await client.post(PREFIX + "/requests.json", headers=basic(town.ra), data={
        "service_code": "noise", "description": "楼上深夜施工", "address_string": "3幢2单元",
        "attribute[anonymous]": "true"})
    created = await resp.json()
    assert resp.status == 201 and set(created[0]) >= CREATED, created
    rid = created[0]["service_request_id"]
    got, (one,) = await get(client, town.ra, f"/requests/{rid}.json")
    assert got == 200 and set(one) >= REQUEST
    assert (one["status"], one["detailed_status"], one["address"]) == ("open", "submitted",
                                                                       "3幢2单元")
    assert zoned(one["requested_datetime"]) and zoned(one["updated_datetime"])
    got, listed = await get(client, town.ra, "/requests.json?status=open&service_code=noise")
    assert [r["service_request_id"] for r in listed] == [rid]
    assert all(set(r) >= REQUEST for r in listed)
    # Staff read it without the reporter; nobody else reads it at all.
    got, (seen,) = await get(client, town.worker1, f"/requests/{rid}.json")
    assert got == 200 and town.ra not in str(seen)
    got, other = await get(client, town.rb, f"/requests/{rid}.json")
    assert got == 404 and set(other[0]) == {"code", "description"}
    got, none = await get(client, town.rb, f"/requests.json?service_request_id={rid}")
    assert (got, none) == (200, [])
    # Through the workflow to closed: status closed, the detailed state beside it.
    for n, (user, base, to, more) in enumerate((
            (town.worker1, "submitted", "accepted", {}),
            (town.worker1, "accepted", "dispatched", {"assignee": "grid"}),
            (town.worker1, "dispatched", "in_progress", {}),
            (town.worker1, "in_progress", "done", {}),
            (town.ra, "done", "closed", {"rating": 4}))):
        assert (await step(client, user, rid, base, to, 80 + n, **more))[0] == 201
    got, (closed,) = await get(client, town.ra, f"/requests/{rid}.json")
    assert (closed["status"], closed["detailed_status"]) == ("closed", "closed")
    got, listed = await get(client, town.ra, "/requests.json?status=closed")
    assert rid in [r["service_request_id"] for r in listed]


async def test_bad_georeport_requests_store_nothing(client: TestClient, city: City) -> None:
    town = await ready(client, city)
    before = await get(client, town.ra, "/requests.json")
    for data in ({"service_code": "ufo", "description": "x"},
                 {"service_code": "noise"},
                 {"service_code": "noise", "description": "x", "media_url": "http://10.0.0.1/"},
                 {"service_code": "noise", "description": "x", "reporter": town.rb},
                 {"service_code": "sanitation", "description": "x",
                  "attribute[anonymous]": "true"}):
        resp = await client.post(PREFIX + "/requests.json", headers=basic(town.ra), data=data)
        answer = await resp.json()
        assert resp.status == 400 and set(answer[0]) == {"code", "description"}, answer
        assert " / " in answer[0]["description"]
    got, answer = await get(client, town.ra, "/requests.json?status=maybe")
    assert got == 400
    assert await get(client, town.ra, "/requests.json") == before
    resp = await client.get(PREFIX + "/services.json")
    assert resp.status == 401
