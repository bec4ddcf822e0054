"""The two actors of SECURITY.md's threat model that the other files do not hold: an anonymous
client on the open internet and a resident (居民) with an account. Residents are many and
untrusted; until their slice of a grid exists they reach no grid and no supervisor route, and
nothing they can ask tells a grid with households apart from one that does not exist, nor an
address with residents apart from an empty one."""

from __future__ import annotations

import json
from typing import Any

from conftest import City, basic, visit, wait_for_user
from test_scope import MISSING, endpoints

from server.store.embedded import PROJECT_ROOT

OPENAPI = json.loads((PROJECT_ROOT / "server" / "web" / "openapi.json").read_text(encoding="utf-8"))
# The routes anyone may read: who am I, the API's own description and the server's health.
OPEN_ROUTES = {"/api/me", "/api/openapi.json", "/api/health", "/api/residents/communities"}
# Open to anyone too, for a resident who has no account yet: a probe is no sign-up (400).
SIGNUP_ROUTES = {"/api/residents/signup", "/api/residents/verify"}
# Mutual aid (邻里互助): a resident's listings, claims, deals and messages; the supervisors'
# routes (reported, hide, suppliers) are not theirs.
MUTUAL_AID_ROUTES = {"/api/mutual-aid/listings", "/api/mutual-aid/listings/{listing}",
                     "/api/mutual-aid/listings/{listing}/photos/{name}",
                     *(f"/api/mutual-aid/listings/{{listing}}/{act}" for act in (
                         "claim", "cancel", "close", "claims", "decide", "deal", "pickups",
                         "messages", "report")), "/api/mutual-aid/mine"}
# The neighbourhood centre (server/web/centre.py): a resident's providers, slots, bookings.
CENTRE_ROUTES = {"GET /api/centre/providers", "/api/centre/providers/{provider}/slots",
                 "/api/centre/slots/{key}/book", "/api/centre/slots/{key}/cancel",
                 "GET /api/centre/activities", "/api/centre/activities/{key}/claim",
                 "/api/centre/activities/{key}/cancel", "/api/centre/mine"}
# Mediation (老娘舅调解): a resident party reads their cases and signs; opening and the figures
# are staff's.
MEDIATION_ROUTES = {"GET /api/mediation/cases", "/api/mediation/cases/{case}",
                    "/api/mediation/cases/{case}/acts", "/api/mediation/cases/{case}/photos/{name}",
                    # Liaison (执法进小区): a resident's compound's officers and their messages.
                    "GET /api/liaison/officers", "/api/liaison/messages",
                    "/api/liaison/messages/{thread}"}
# A resident's own data (server/web/mydata.py): open to a resident, about themself only.
RESIDENT_ROUTES = {"/api/residents/my-data", "/api/residents/my-data/export",
                   "/api/residents/data-requests", "/api/volunteer/ledger",
                   "/api/volunteer/ranking", "/api/volunteer/ranking/choice",
                   "GET /api/votes", "GET /api/votes/{vote}", "GET /api/votes/{vote}/result",
                   "POST /api/votes/{vote}/ballot", "/api/deliberation/topics",
                   "/api/fees/bills", "/api/fees/bills/{bill}/pay", "/api/fees/receipts/{bill}",
                   "/api/fees/bills/{bill}/rating", "/api/fees/ratings",
                   "/api/fees/ratings/board",
                   "/api/deliberation/topics/{topic}", "/api/deliberation/topics/{topic}/support",
                   "/api/deliberation/topics/{topic}/comments",
                   "/api/party/branches", "/api/party/me", "/api/party/declare",
                   "/api/party/public", "/api/party/report",
                   "/api/reports", "/api/reports/categories", "/api/reports/{report}",
                   "/api/reports/{report}/steps", "/api/reports/{report}/photos/{holder}/{name}",
                   "GET /api/questionnaires", "POST /api/questionnaires/{key}/answers",
                   "/api/open311/v2/services.json", "/api/open311/v2/services/{service_code}.json",
                   "/api/open311/v2/requests.json", "/api/open311/v2/requests/{request}.json",
                   *MUTUAL_AID_ROUTES, *CENTRE_ROUTES,
                   *MEDIATION_ROUTES}  # a path: all methods; "METHOD path": one
# Queries an attacker would try on each route: another grid, another household, unmasking.
PROBES = ("", "?grid={grid}", "?grid={grid}&unmask=1", "?id=household:{grid}-0001",
          "?what=households&grid={grid}&format=csv", "?level=grid&code={grid}")


def api_requests(grid: str) -> list[tuple[str, str, Any]]:
    """Every route and method of the OpenAPI description, each with every probe."""
    out: list[tuple[str, str, Any]] = []
    for path, methods in OPENAPI["paths"].items():
        for method in methods:
            if method.upper() not in {"GET", "POST", "PUT", "DELETE", "PATCH"}:
                continue
            body = {"grid": grid, "ids": [f"household:{grid}-0001"], "verdict": "approved"}
            for probe in PROBES:
                out.append((method.upper(), path + probe.format(grid=grid),
                            body if method != "get" else None))
    return out


async def answer(client: Any, method: str, path: str, body: Any,
                 headers: dict[str, str]) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body, headers=headers)
    text = await resp.text()
    try:
        return resp.status, json.loads(text) if text else None
    except ValueError:
        return resp.status, text


async def test_anonymous_reaches_only_the_login_the_api_description_health_and_sign_up(
        client: Any, city: City) -> None:
    grid = await city.grid()
    for method, path, body in api_requests(grid):
        status, reply = await answer(client, method, path, body, {})
        if path.split("?")[0] == "/api/openapi.json":
            assert status == 200, (method, path, status)
        elif path.split("?")[0] == "/api/health":  # the status words, and nothing else
            assert status == 200, (method, path, status)
            assert set(reply) == {"status", "tasks"}, reply
            assert all(item.keys() == {"status"} for item in reply["tasks"].values()), reply
        elif path.split("?")[0] == "/api/residents/communities":  # names, no grid, no one
            assert status == 200 and grid not in json.dumps(reply), (method, path, reply)
        elif path.split("?")[0] in SIGNUP_ROUTES:
            assert status == 400 and set(reply) == {"error", "reason"}, (method, path, reply)
            assert grid not in json.dumps(reply), reply
        else:
            assert status == 401, (method, path, status)
    for method, path, body in endpoints(grid, "nobody"):
        status, _ = await answer(client, method, path, body, {})
        assert status == 401, (method, path, status)


async def test_a_resident_reaches_no_grid_and_cannot_tell_one_that_exists(client: Any,
                                                                          city: City) -> None:
    """The resident's own grid, a grid full of records and a grid that was never made answer
    the same, byte for byte: a resident learns nothing about who lives where."""
    lived_in, busy = await city.grid(), await city.grid()
    worker = await city.user(grids=[busy])
    for n in range(3):
        await city.save(busy, visit(busy, worker, f"r{n}", notes="邻居的记录"))
    resident = await city.user("resident", grids=[lived_in])
    await wait_for_user(client, resident)
    headers = basic(resident)

    status, dbs = await answer(client, "GET", "/couch/_all_dbs", None, headers)
    assert (status, dbs) == (200, [])
    before = {g: await city.records(g) for g in (lived_in, busy)}
    for grid in (lived_in, busy, "never0made"):
        for method, path, body in endpoints(grid, resident):
            status, reply = await answer(client, method, path, body, headers)
            assert status == 404, (method, path, status)
            if method != "HEAD":
                assert reply == MISSING, (method, path, reply)
    assert {g: await city.records(g) for g in (lived_in, busy)} == before


async def test_a_resident_gets_no_supervisor_route_whatever_it_asks(client: Any,
                                                                    city: City) -> None:
    """Every route of the API description but the open ones is refused alike for a resident,
    whatever grid or household the query names, so the refusal itself says nothing."""
    busy = await city.grid()
    worker = await city.user(grids=[busy])
    await city.save(busy, visit(busy, worker, "r0", notes="邻居的记录"))
    resident = await city.user("resident")
    await wait_for_user(client, resident)
    headers = basic(resident)

    status, me = await answer(client, "GET", "/api/me", None, headers)
    assert status == 200 and me["name"] == resident and me["role"] == "resident"
    assert not me.get("grids")
    refusals: dict[tuple[str, str], set[str]] = {}
    for grid in (busy, "never0made"):
        for method, path, body in api_requests(grid):
            route = path.split("?")[0]
            if route in OPEN_ROUTES:
                continue
            status, reply = await answer(client, method, path, body, headers)
            if {route, f"{method} {route}"} & RESIDENT_ROUTES:  # their own (an account alone)
                assert status in (200, 400, 404), (method, path, status, reply)  # 404: not theirs
                assert "邻居" not in json.dumps(reply, ensure_ascii=False)
                assert busy not in json.dumps(reply), (method, path, reply)
                continue
            assert status in (400, 403), (method, path, status, reply)
            assert isinstance(reply, dict) and set(reply) == {"error", "reason"}, reply
            assert "邻居" not in json.dumps(reply, ensure_ascii=False)
            key = (method, path.replace(busy, "G").replace("never0made", "G"))
            refusals.setdefault(key, set()).add(json.dumps(reply, sort_keys=True))
    # The same question about a grid that exists and one that does not gets the same answer.
    assert all(len(replies) == 1 for replies in refusals.values()), refusals
