"""Issue 13, item 3: no unmasked personal data without the right, on any path.

A supervisor or admin without the `unmask` right reads a grid's records only through `/api/`,
which masks ID numbers and phones and hides special groups; `/couch/` refuses them a grid's
records (server/sync/personal.py says why it refuses rather than serving masked copies). The test
walks every route of the OpenAPI description (a route without a recipe here fails the test)
and every `/couch/` read endpoint as such a supervisor and such an admin, over records that
carry full ID numbers, phones, special groups, a conflict between two phones and a photo, and
finds none of them in any answer. Whoever may read them (a worker in their grid, a holder of
the right) still does, and each such read leaves an audit line with who, what and why."""

from __future__ import annotations

import base64
import io
import json
import logging
import struct
import uuid
import zipfile
import zlib
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from conftest import City, basic, visit, wait_for_user

from server.domain.scope import grid_db
from server.web.api import OPENAPI

SPECIAL_TAGS = ("elderly_alone", "hardship", "disability", "health_needs",
                "独居老人", "困难家庭", "残疾人", "健康需求")
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def id_number(n: int) -> str:
    """A valid ID number (GB 11643-1999 check character) born in 1951-06."""
    body = f"33060219510604{2 * n + 1:03d}"  # odd: a man, as the records say
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]
    return body + check


def png_with_text(text: str) -> bytes:
    """A real PNG whose tEXt chunk carries `text`, as a photo of an ID card would."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"tEXt", b"Comment\x00" + text.encode())
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


class Scene:
    """A grid with households, persons, a visit with a photo and an open conflict on a phone;
    a worker, supervisors with and without the right, an admin without it."""

    def __init__(self, client: Any, city: City) -> None:
        self.client, self.city = client, city
        self.community = f"maskville{uuid.uuid4().hex[:6]}"
        self.grid = city.blocking.grid(community=self.community)
        self.db = f"/couch/{grid_db(self.grid)}"
        self.worker = city.blocking.user("worker", grids=[self.grid])
        self.masked = city.blocking.user("supervisor", communities=[self.community])
        self.trusted = city.blocking.user("supervisor", communities=[self.community],
                                          rights=["unmask"])
        self.admin = city.blocking.user("admin")
        self.secrets: list[str] = []
        self.ids: list[str] = []
        self.revs: dict[str, str] = {}

    async def seed(self) -> Scene:
        for name in (self.worker, self.masked, self.trusted, self.admin):
            await wait_for_user(self.client, name)
        g = self.grid
        docs: list[dict[str, Any]] = []
        for n in range(3):
            phone, person_phone, number = f"1390570{n:02d}11", f"1380571{n:02d}22", id_number(n)
            docs.append({
                "_id": f"household:{g}-{n}", "type": "household", "schema_version": 2,
                "grid": g, "created_by": self.worker, "registry": {"source": "grid_survey"},
                "address": {"compound": "fangmen", "compound_name": "坊门街公寓",
                            "building": "1", "unit": "1", "room": f"10{n}"},
                "head_name": f"严福{n}", "phone": phone, "household_type": "family",
                "tenure": "rented", "special_groups": [SPECIAL_TAGS[n], "health_needs"],
                "status": "active"})
            docs.append({
                "_id": f"person:{g}-{n}-1", "type": "person", "schema_version": 1, "grid": g,
                "created_by": self.worker, "household": f"household:{g}-{n}", "name": f"严{n}",
                "relationship": "0", "sex": "1", "birth_year": 1951, "birth_month": 6,
                "id_number": number, "phone": person_phone, "status": "present"})
            self.secrets += [phone, person_phone, number]
        card = id_number(7)
        self.secrets.append(card)
        docs.append({**visit(g, self.worker, 1, household=f"household:{g}-0"),
                     "_attachments": {"card.png": {
                         "content_type": "image/png",
                         "data": base64.b64encode(png_with_text(card)).decode()}}})
        resp = await self.client.post(f"{self.db}/_bulk_docs", json={"docs": docs},
                                      headers=basic(self.worker))
        results = await resp.json()
        assert resp.status == 201 and all("error" not in r for r in results), results
        self.revs = {r["id"]: r["rev"] for r in results}
        self.ids = list(self.revs)
        # An open conflict on a phone, as the server's resolver leaves it in the database.
        other = "13905779999"
        self.secrets.append(other)
        household = docs[0]
        self.resolution = {
            "_id": f"resolution:{household['_id']}:{uuid.uuid4().hex[:16]}",
            "type": "resolution", "schema_version": 1, "grid": g,
            "created_by": "linli-resolver", "record": household["_id"],
            "record_type": "household", "resolved_at": "2026-11-26T10:00:00+00:00",
            "ancestor_rev": "2-" + "0" * 32, "result_rev": self.revs[household["_id"]],
            "revisions": [{"rev": "3-" + "1" * 32, "deleted": False, "by": self.worker,
                           "received_at": "2026-11-26T10:00:00+00:00", "device_time": None,
                           "outcome": "merged"}],
            "fields": [{"field": "phone", "rule": "concurrent_edits", "undecided": True,
                        "chosen": {"rev": self.revs[household["_id"]], "by": self.worker,
                                   "received_at": "2026-11-26T10:00:01+00:00",
                                   "value": household["phone"]},
                        "alternatives": [{"rev": "3-" + "9" * 32, "by": "someone",
                                          "received_at": "2026-11-26T10:00:02+00:00",
                                          "value": other}]}],
            "status": "open"}
        await self.city.save(g, dict(self.resolution))
        self.ids.append(self.resolution["_id"])
        return self


@pytest.fixture
async def scene(client: Any, city: City) -> Scene:
    return await (await city.run(Scene, client, city)).seed()


def readable(body: bytes) -> str:
    """An answer as text, an XLSX unpacked (its cells are in the zip's XML)."""
    if body.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return "".join(archive.read(n).decode("utf-8", "replace")
                           for n in archive.namelist())
    return body.decode("utf-8", "replace")


def leaks(text: str, scene: Scene) -> list[str]:
    found = [s for s in scene.secrets if s in text]
    return found + [t for t in SPECIAL_TAGS if t in text]


def api_recipes(scene: Scene) -> dict[tuple[str, str], list[tuple[dict[str, str], Any]]]:
    """For every route of the OpenAPI description, the requests a curious user would try."""
    g = scene.grid
    visit_id = f"household_visit:{g}-1"
    exports = [{"what": w, "format": f, "grid": g} for w in
               ("households", "persons", "review") for f in ("csv", "xlsx")]
    exports += [{"what": "aggregates", "format": f, "level": "grid", "code": g}
                for f in ("csv", "xlsx")]
    exports += [{"what": w, "community": scene.community} for w in ("households", "persons")]
    return {
        ("get", "/api/me"): [({}, None)],
        ("get", "/api/openapi.json"): [({}, None)],
        ("get", "/api/users"): [({}, None)],
        ("post", "/api/users/{name}/{action}"): [({}, None)],
        ("get", "/api/users/{name}/devices"): [({}, None)],
        ("post", "/api/users/{name}/devices/{device}/revoke"): [({}, None)],
        ("get", "/api/health"): [({}, None)],
        ("get", "/api/conflicts"): [({}, None), ({"grid": g}, None)],
        ("get", "/api/aggregates"): [({"level": "city"}, None),
                                     ({"level": "grid", "code": g}, None)],
        ("post", "/api/aggregates/rebuild"): [({}, None)],
        ("get", "/api/review"): [({"grid": g}, None), ({}, None),
                                 ({"grid": g, "type": "household_visit"}, None)],
        ("get", "/api/review/record"): [({"grid": g, "id": i}, None) for i in scene.ids
                                        if not i.startswith("resolution:")],
        ("get", "/api/export"): [(q, None) for q in exports],
        ("get", "/api/audit"): [({}, None), ({"record": scene.ids[1]}, None)],
        ("get", "/api/audit/export"): [({}, None)],
        ("get", "/api/campaigns"): [({}, None)],
        ("put", "/api/campaigns/{key}"): [({}, {"ends_on": "2026-01-01", "retention_days": 1})],
        ("post", "/api/campaigns/{key}/purge"): [({}, None)],
        ("get", "/api/retention"): [({}, None)],
        ("post", "/api/retention/{list}/approve"): [({}, None)],
        ("post", "/api/review/verdicts"): [({}, {"grid": g, "verdicts": [
            {"record": visit_id, "record_rev": scene.revs[visit_id], "decision": "approved"}]})],
        ("post", "/api/conflicts/decide"): [({}, {"grid": g, "id": scene.resolution["_id"],
                                                  "decisions": [{"field": "phone"}]})],
        ("get", "/api/residents/communities"): [({}, None)],
        ("post", "/api/residents/signup"): [({}, {"phone": "13905779999", "name": "王伟",
                                                  "community": scene.community,
                                                  "address": "3幢2单元301"})],
        ("post", "/api/residents/verify"): [({}, {"phone": "13905779999", "code": "000000",
                                                  "password": "long-enough-1"})],
        ("post", "/api/residents/activate"): [({}, {"code": "ABCDEFGH"})],
        ("get", "/api/residents/my-data"): [({}, None)],
        ("get", "/api/residents/my-data/export"): [({}, None), ({"format": "csv"}, None)],
        ("get", "/api/residents/data-requests"): [({}, None)],
        ("post", "/api/residents/data-requests"): [({}, {"kind": "access"})],
        ("get", "/api/data-requests"): [({"status": "all"}, None),
                                        ({"community": scene.community}, None)],
        ("post", "/api/data-requests/answer"): [({}, {
            "id": f"data_request:{scene.community}:r0:20261203:1", "rev": "1-x",
            "status": "done", "answer": "ok"})],
        ("post", "/api/residents/corrections"): [({}, {"changes": [
            {"record": f"household:{g}-0001", "field": "/phone", "proposed": "1"}]})],
        ("post", "/api/residents/id-number"): [({}, {"password": "long-enough-1"})],
        ("get", "/api/notices"): [({}, None)],
        ("post", "/api/notices"): [({}, {"title": "通知", "body": "正文", "audience": {
            "level": "grid", "codes": [g]}, "needs_confirmation": True})],
        ("get", "/api/notices/areas"): [({}, None), ({"grid": g}, None)],
        ("get", "/api/notices/to-visit"): [({}, None)],
        ("get", "/api/notices/{notice}"): [({}, None)],
        ("get", "/api/notices/{notice}/follow-up"): [({}, None)],
        ("post", "/api/notices/{notice}/withdraw"): [({}, None)],
        ("post", "/api/notices/{notice}/receipt"): [({}, {})],
        ("post", "/api/residents/purge"): [({}, {"held": scene.ids})],
        ("get", "/api/volunteer/tasks"): [({}, None)],
        ("post", "/api/volunteer/tasks"): [({}, {
            "title": "清扫", "description": "打扫", "place": "3幢", "community": scene.community,
            "starts_at": "2030-01-01T09:00:00+08:00", "ends_at": "2030-01-01T10:00:00+08:00",
            "places": 2})],
        ("get", "/api/volunteer/tasks/{task}/allocation"): [({}, None)],
        ("post", "/api/volunteer/tasks/{task}/claim"): [({}, {"claim_id": "abcdefgh"})],
        ("post", "/api/volunteer/tasks/{task}/cancel"): [({}, {"claim_id": "abcdefgh"})],
        ("get", "/api/volunteer/tasks/{task}/checkin-key"): [({}, None)],
        ("post", "/api/volunteer/tasks/{task}/check"): [({}, {"direction": "in",
                                                              "code": "123456"})],
        ("post", "/api/volunteer/tasks/{task}/hours"): [({}, {"volunteer": "r0"})],
        ("post", "/api/volunteer/ledger/corrections"): [({}, {"entry": "x", "amount": 1,
                                                               "reason": "x"})],
        ("get", "/api/volunteer/ledger"): [({}, None)],
        ("post", "/api/volunteer/register"): [({}, {})],
        ("get", "/api/volunteer/ranking"): [({}, None), ({"kind": "points"}, None)],
        ("post", "/api/volunteer/ranking/choice"): [({}, {"show": False})],
        ("get", "/api/volunteer/summary"): [({}, None)],
        ("post", "/api/volunteer/tasks/{task}/decide"): [({}, {"claimant": "r0", "approve": True,
                                                               "claim_id": "abcdefgh"})],
        ("get", "/api/party/branches"): [({}, None)],
        ("get", "/api/stars/sheet"): [({}, None)],
        ("get", "/api/stars/sheets"): [({}, None)],
        ("post", "/api/stars/sheets"): [({}, {"compound": "x", "round": "2026"})],
        ("get", "/api/stars/sheets/{compound}/{round}"): [({}, None)],
        ("put", "/api/stars/sheets/{compound}/{round}/evidence"): [
            ({}, {"indicator": "party-01", "text": "x"})],
        ("put", "/api/stars/sheets/{compound}/{round}/scores"): [
            ({}, {"indicator": "party-01", "points": 1, "comment": "x"})],
        ("post", "/api/stars/sheets/{compound}/{round}/acts"): [
            ({}, {"act": "approve", "state": "review"})],
        ("get", "/api/stars/sheets/{compound}/{round}/photos/{name}"): [({}, None)],
        ("get", "/api/party/branches/{branch}"): [({}, None)],
        ("get", "/api/party/me"): [({}, None)],
        ("post", "/api/party/declare"): [({}, {"branch": "x"})],
        ("post", "/api/party/public"): [({}, {"public": True})],
        ("post", "/api/party/report"): [({}, {})],
        ("post", "/api/party/decide"): [({}, {"member": "r0", "confirm": True})],
        ("get", "/api/party/letters"): [({}, None), ({"member": "r0"}, None)],
        ("post", "/api/party/letters"): [({}, {"member": "r0", "workplace": "w",
                                               "conduct": "c", "key": "abcdefgh"})],
        ("get", "/api/questionnaires"): [({}, None)],
        ("post", "/api/questionnaires"): [({}, {"title": "t", "per": "household",
                                                "anonymous": False, "questions": [],
                                                "audience": {"level": "city"}})],
        ("post", "/api/questionnaires/xlsform"): [({}, {"xlsx": "UEsDBA=="})],
        ("post", "/api/questionnaires/{key}/versions"): [({}, {"title": "t"})],
        ("post", "/api/questionnaires/{key}/close"): [({}, None)],
        ("post", "/api/questionnaires/{key}/answers"): [({}, {"request": "abcdefgh",
                                                              "version": 1, "answers": {}})],
        ("get", "/api/questionnaires/{key}/results"): [({}, None), ({"level": "grid"}, None)],
        ("get", "/api/questionnaires/{key}/export"): [({}, None)],
        ("get", "/api/votes"): [({}, None)],
        ("post", "/api/votes"): [({}, {"compound": "x", "matter": "other", "title": "t",
                                       "closes_at": "2099-01-01T00:00:00+08:00"})],
        ("get", "/api/votes/{vote}"): [({}, None)],
        ("get", "/api/votes/{vote}/result"): [({}, None)],
        ("post", "/api/votes/{vote}/ballot"): [({}, {"request": "abcdefgh", "choice": "yes"})],
        ("post", "/api/votes/{vote}/paper"): [({}, {"request": "abcdefgh", "choice": "yes"})],
        ("get", "/api/deliberation/topics"): [({}, None)],
        ("get", "/api/reports/categories"): [({}, None)],
        ("get", "/api/reports"): [({}, None)],
        ("post", "/api/reports"): [({}, {"category": "other", "description": "d",
                                         "request": "abcdefgh"})],
        ("get", "/api/reports/{report}"): [({}, None)],
        ("post", "/api/reports/{report}/steps"): [({}, {"from": "submitted", "to": "accepted",
                                                        "request": "abcdefgh"})],
        ("get", "/api/reports/{report}/photos/{holder}/{name}"): [({}, None)],
        ("get", "/api/reports/dashboard"): [({"level": "grid"}, None)],
        ("get", "/api/reports/dashboard.xlsx"): [({"level": "grid"}, None)],
        ("get", "/api/open311/v2/services.json"): [({}, None)],
        ("get", "/api/open311/v2/services/{service_code}.json"): [({}, None)],
        ("get", "/api/open311/v2/requests.json"): [({}, None)],
        ("post", "/api/open311/v2/requests.json"): [({}, {"service_code": "other",
                                                           "description": "d"})],
        ("get", "/api/open311/v2/requests/{request}.json"): [({}, None)],
        ("post", "/api/deliberation/topics"): [({}, {"request": "abcdefgh", "title": "t",
                                                     "body": "b"})],
        ("get", "/api/deliberation/topics/{topic}"): [({}, None)],
        ("post", "/api/deliberation/topics/{topic}/support"): [({}, {})],
        ("post", "/api/deliberation/topics/{topic}/comments"): [({}, {"request": "abcdefgh",
                                                                      "body": "b"})],
        ("post", "/api/deliberation/topics/{topic}/comments/{comment}/hide"): [
            ({}, {"reason": "r"})],
        ("post", "/api/deliberation/topics/{topic}/council"): [({}, {"minutes": "m",
                                                                     "outcome": "adopted"})],
        ("put", "/api/deliberation/threshold/{community}/{compound}"): [({}, {"support": 5})],
        ("get", "/api/fees/bills"): [({}, None)],
        ("post", "/api/fees/bills/{bill}/pay"): [({}, {"request": "abcdefgh"})],
        ("get", "/api/fees/receipts/{bill}"): [({}, None)],
        ("post", "/api/fees/notify"): [({}, {})],
        ("post", "/api/fees/rolls"): [({}, {"compound": "x", "period": "2026", "rate_fen": 1,
                                            "due_date": "2026-12-31"})],
        ("post", "/api/fees/rolls/import"): [({}, {"compound": "x", "due_date": "2026-12-31",
                                                   "name": "a.csv", "file": ""})],
        ("get", "/api/fees/compounds"): [({}, None)],
        ("post", "/api/fees/reconcile"): [({}, {"day": "2026-12-03", "statement": ""})],
        ("post", "/api/fees/bills/{bill}/rating"): [({}, {"request": "abcdefgh", "scores": {
            "cleaning": 5, "security": 5, "repairs": 5, "attitude": 5}})],
        ("get", "/api/fees/ratings"): [({}, None)],
        ("get", "/api/fees/ratings/board"): [({"period": "2026-Q4"}, None)],
        ("post", "/api/fees/ratings/answers"): [({}, {"period": "2026-Q4", "text": "t"})],
        **mutual_aid_recipes(scene), **centre_recipes(scene),
        **mediation_recipes(scene),
    }


def mediation_recipes(scene: Scene) -> dict[tuple[str, str], list[tuple[dict[str, str], Any]]]:
    """Mediation's routes (老娘舅调解): a made-up case on each, and opening one."""
    one = "/api/mediation/cases/{case}"
    return {
        ("get", "/api/mediation/cases"): [({}, None)],
        ("post", "/api/mediation/cases"): [({}, {"kind": "other", "matter": "噪音",
                                                 "community": scene.community, "parties": [],
                                                 "mediator": "x", "request": "abcdefgh"})],
        ("get", "/api/mediation/figures"): [({}, None)],
        ("get", one): [({}, None)], ("get", one + "/photos/{name}"): [({}, None)],
        ("post", one + "/acts"): [({}, {"act": "session", "note": "记录", "request": "abcdefgh"})],
        ("get", "/api/liaison/officers"): [({}, None)],
        ("post", "/api/liaison/officers"): [({}, {"compound": "x", "department": "police",
                                                  "officer": "x"})],
        ("post", "/api/liaison/messages"): [({}, {"thread": "0123456789abcdef", "text": "你好",
                                                  "key": "abcdefgh"})],
        ("get", "/api/liaison/messages/{thread}"): [({}, None)],
        ("get", "/api/liaison/threads"): [({}, None)],
        ("get", "/api/patrols/routes"): [({}, None)],
        ("post", "/api/patrols/routes"): [({}, {"compound": "x", "grid": scene.grid,
                                                "department": "fire", "name": "巡查",
                                                "checkpoints": ["南门"], "per_week": 1,
                                                "request": "abcdefgh"})],
        ("post", "/api/patrols/checks"): [({}, {"route": "patrol_route:0123456789abcdef",
                                                "patrol": "abcdefgh", "checkpoint": 0,
                                                "at": "2026-12-03T10:00:00+08:00", "ok": True})],
        ("get", "/api/patrols/figures"): [({}, None)],
    }


def mutual_aid_recipes(scene: Scene) -> dict[tuple[str, str], list[tuple[dict[str, str], Any]]]:
    """Mutual aid's routes (邻里互助): the listings page and every act on a listing."""
    one = "/api/mutual-aid/listings/{listing}"
    claim = {"claim_id": "abcdefgh", "item": 0}
    return {
        ("get", "/api/mutual-aid/listings"): [({}, None), ({"kind": "carpool"}, None)],
        ("post", "/api/mutual-aid/listings"): [({}, {"kind": "book", "title": "书",
                                                     "loan_days": 7})],
        ("get", one): [({}, None)], ("get", one + "/photos/{name}"): [({}, None)],
        ("post", one + "/claim"): [({}, claim)], ("post", one + "/cancel"): [({}, claim)],
        ("post", one + "/close"): [({}, {})], ("get", one + "/claims"): [({}, None)],
        ("post", one + "/decide"): [({}, {"with": "0123456789abcdef", "approve": True,
                                          "claim_id": "abcdefgh"})],
        ("post", one + "/deal"): [({}, {"act": "return"})],
        ("get", one + "/pickups"): [({}, None)], ("get", one + "/messages"): [({}, None)],
        ("post", one + "/messages"): [({}, {"text": "你好", "key": "abcdefgh"})],
        ("post", one + "/report"): [({}, {"reason": "广告"})],
        ("post", one + "/hide"): [({}, {"reason": "广告"})],
        ("get", "/api/mutual-aid/mine"): [({}, None)],
        ("get", "/api/mutual-aid/reported"): [({}, None)],
        ("post", "/api/mutual-aid/suppliers"): [({}, {"phone": "13905779999", "shop": "菜场",
                                                      "community": scene.community})],
    }


def centre_recipes(scene: Scene) -> dict[tuple[str, str], list[tuple[dict[str, str], Any]]]:
    """The neighbourhood centre's routes (邻里中心): providers, slots, bookings, activities."""
    claim = {"claim_id": "abcdefgh"}
    slot, activity = "/api/centre/slots/{key}", "/api/centre/activities/{key}"
    return {
        ("get", "/api/centre/providers"): [({}, None)],
        ("post", "/api/centre/providers"): [({}, {"code": "bank1", "kind": "bank"})],
        ("get", "/api/centre/providers/{provider}/slots"): [({}, None)],
        ("post", "/api/centre/slots"): [({}, {"service": "advice", "places": 1})],
        ("post", slot + "/book"): [({}, {**claim, "matter": "漏水"})],
        ("post", slot + "/cancel"): [({}, claim)],
        ("post", slot + "/decide"): [({}, {"booking": "0123456789abcdef", "approve": True,
                                          **claim})],
        ("get", "/api/centre/day"): [({}, None), ({"date": "2026-12-31"}, None)],
        ("get", "/api/centre/activities"): [({}, None)],
        ("post", "/api/centre/activities"): [({}, {"title": "插花", "places": 1})],
        ("post", activity + "/claim"): [({}, claim)],
        ("post", activity + "/cancel"): [({}, claim)],
        ("get", "/api/centre/mine"): [({}, None)],
        ("get", "/api/centre/overview"): [({}, None)],
    }


def couch_reads(scene: Scene) -> list[tuple[str, str, Any]]:
    """Every `/couch/` endpoint that can return a record, in the forms PouchDB and CouchDB
    tools use."""
    db, reads = scene.db, []
    ids = json.dumps(scene.ids)
    for i in scene.ids:
        q = quote(i, safe="")
        reads += [("GET", f"{db}/{q}", None), ("GET", f"{db}/{q}?revs=true&conflicts=true", None),
                  ("GET", f"{db}/{q}?open_revs=all", None),
                  ("GET", f"{db}/{q}?open_revs={quote(json.dumps([scene.revs.get(i, '')]))}"
                          "&revs=true&latest=true", None),
                  ("GET", f"{db}/{q}?attachments=true", None)]
    photo = quote(f"household_visit:{scene.grid}-1", safe="")
    reads += [
        ("GET", f"{db}/{photo}/card.png", None),
        ("GET", f"{db}/_all_docs?include_docs=true", None),
        ("GET", f"{db}/_all_docs?include_docs=true&keys={quote(ids)}", None),
        ("POST", f"{db}/_all_docs?include_docs=true", {"keys": scene.ids}),
        ("GET", f"{db}/_changes?include_docs=true", None),
        ("GET", f"{db}/_changes?include_docs=true&style=all_docs&conflicts=true"
                "&attachments=true", None),
        ("GET", f"{db}/_changes?feed=longpoll&include_docs=true&since=0&timeout=1000", None),
        ("POST", f"{db}/_changes?filter=_doc_ids&include_docs=true", {"doc_ids": scene.ids}),
        ("POST", f"{db}/_changes?feed=longpoll&filter=_doc_ids&include_docs=true&since=0",
         {"doc_ids": scene.ids}),
        ("POST", f"{db}/_bulk_get?revs=true&attachments=true",
         {"docs": [{"id": i} for i in scene.ids]}),
        ("POST", f"{db}/_find", {"selector": {"type": {"$gt": None}}}),
        ("GET", f"{db}/_design_docs?include_docs=true", None),
        ("POST", f"{db}/_revs_diff", {i: ["1-x"] for i in scene.ids}),
    ]
    # A parameter given twice: a check reading the first value must not let the store act on
    # the last (found in review: include_docs=false&include_docs=true read every record).
    for endpoint in ("_all_docs", "_changes", "_changes?feed=longpoll&since=0&timeout=1000",
                     "_design_docs"):
        sep = "&" if "?" in endpoint else "?"
        reads.append(("GET", f"{db}/{endpoint}{sep}include_docs=false&include_docs=true", None))
    reads.append(("POST", f"{db}/_bulk_get?attachments=false&attachments=true",
                  {"docs": [{"id": i} for i in scene.ids]}))
    for view in ("by_address", "persons_by_household", "open_conflicts", "conflicts_by_state",
                 "verdicts_by_record", "reviewable_by_day", "by_type"):
        reads += [("GET", f"{db}/_design/linli/_view/{view}?include_docs=true&reduce=false",
                   None),
                  ("GET", f"{db}/_design/linli/_view/{view}?reduce=false", None)]
    return reads


async def fetch(scene: Scene, user: str, method: str, url: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
    resp = await scene.client.request(method, url, json=body,
                                      headers={**basic(user), **(headers or {})})
    return resp.status, readable(await resp.read())


@pytest.mark.slow  # every route and read form walked
async def test_no_path_shows_personal_data_without_the_right(scene: Scene) -> None:
    with open(OPENAPI, encoding="utf-8") as handle:
        described = {(m, p) for p, item in json.load(handle)["paths"].items() for m in item}
    recipes = api_recipes(scene)
    assert set(recipes) == described, "give every route of openapi.json a recipe here"

    found: dict[str, list[str]] = {}
    answered: dict[str, int] = {}
    for user in (scene.masked, scene.admin):
        for (method, path), tries in sorted(recipes.items()):
            for query, body in tries:
                url = f"{path}?{urlencode(query)}" if query else path
                status, text = await fetch(scene, user, method.upper(), url, body)
                answered[f"{user} {method} {url}"] = status
                assert status < 500, (url, text)
                if leaks(text, scene):
                    found[f"{user} {method} {url} {status}"] = leaks(text, scene)
        for method, url, body in couch_reads(scene):
            status, text = await fetch(scene, user, method, url, body)
            answered[f"{user} {method} {url}"] = status
            assert status < 500, (url, text)
            if leaks(text, scene):
                found[f"{user} {method} {url} {status}"] = leaks(text, scene)
    assert found == {}
    # Not vacuous: the masked views did answer, with the records masked.
    assert answered[f"{scene.masked} get /api/review/record?grid={scene.grid}&id="
                    f"{quote(scene.ids[1], safe='')}"] == 200
    assert answered[f"{scene.masked} post /api/conflicts/decide"] == 200


async def test_unmasked_reads_are_only_for_the_right_and_all_audited(
        scene: Scene, caplog: pytest.LogCaptureFixture) -> None:
    db, person = scene.db, quote(scene.ids[1], safe="")
    # The grid's own worker reads it unmasked (door-to-door work), audited with why.
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        status, text = await fetch(scene, scene.worker, "POST", f"{db}/_bulk_get",
                                   {"docs": [{"id": i} for i in scene.ids]})
    assert status == 200 and scene.secrets[2] in text
    lines = [r.getMessage() for r in caplog.records]
    assert any(scene.worker in line and "UNMASKED" in line and "_bulk_get" in line
               and "why: worker of the grid" in line for line in lines), lines

    # A holder of the right too, through /couch/ and /api/, with the purpose they give.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        status, text = await fetch(scene, scene.trusted, "GET", f"{db}/{person}",
                                   headers={"X-Linli-Purpose": "welfare check\tforged"})
        assert status == 200 and scene.secrets[2] in text
        status, text = await fetch(
            scene, scene.trusted, "GET",
            f"/api/review/record?grid={scene.grid}&id={person}&unmask=1&purpose=入户核查")
        assert status == 200 and scene.secrets[2] in text
        status, text = await fetch(scene, scene.trusted, "GET", "/api/conflicts")
        assert status == 200 and "13905779999" in text
        status, _ = await fetch(scene, scene.worker, "GET", f"{db}/_changes?since=0")
        assert status == 200
    lines = [r.getMessage() for r in caplog.records]
    assert any(scene.trusted in line and "UNMASKED" in line and scene.ids[1] in line
               and "unmask right" in line and "welfare check forged" in line
               and "\t" not in line for line in lines), lines
    assert any(scene.trusted in line and "UNMASKED" in line and "入户核查" in line
               for line in lines), lines
    assert any(scene.trusted in line and "UNMASKED" in line and "conflicts" in line
               for line in lines), lines
    # A feed of ids and revisions carries no record: no audit line for it.
    assert not any(scene.worker in line for line in lines), lines

    # Without the right: the app knows not to replicate, refusals are audited, /api/ masks.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="linli.audit"):
        status, text = await fetch(scene, scene.masked, "GET", "/api/me")
        assert status == 200 and json.loads(text)["replicates"] is False
        status, text = await fetch(scene, scene.masked, "GET", f"{db}/{person}")
        assert status == 403 and json.loads(text)["error"] == "forbidden"
        status, _ = await fetch(scene, scene.masked, "GET", f"{db}")
        assert status == 200  # the database's info holds no record, nor ids and revisions:
        status, text = await fetch(scene, scene.masked, "GET", f"{db}/_changes?style=all_docs")
        assert status == 200 and not leaks(text, scene)
        for user in (scene.masked, scene.admin):  # a selector would tell a phone by probing
            status, _ = await fetch(scene, user, "POST", f"{db}/_changes?filter=_selector",
                                    {"selector": {"phone": {"$gt": "1390570"}}})
            assert status == 403, user
        status, text = await fetch(
            scene, scene.masked, "GET", f"/api/review/record?grid={scene.grid}&id={person}")
        assert status == 200 and "330***********" in text  # masked, not absent
        assert json.loads(text)["record"]["phone"] == "138****0022"
    lines = [r.getMessage() for r in caplog.records]
    assert any(scene.masked in line and "refused" in line for line in lines), lines
    assert not any("UNMASKED" in line for line in lines), lines
    for user, expected in ((scene.worker, True), (scene.trusted, True), (scene.admin, False)):
        status, text = await fetch(scene, user, "GET", "/api/me")
        assert json.loads(text)["replicates"] is expected


async def test_a_supervisor_without_the_right_decides_by_revision(scene: Scene) -> None:
    status, text = await fetch(scene, scene.masked, "GET", f"/api/conflicts?grid={scene.grid}")
    assert status == 200, text
    [conflict] = json.loads(text)["conflicts"]
    [field] = conflict["fields"]
    assert field["chosen"]["value"] == "139****0011" and field["chosen"]["masked"] is True
    [other] = field["alternatives"]
    assert other["value"] == "139****9999"
    status, text = await fetch(scene, scene.masked, "POST", "/api/conflicts/decide", {
        "grid": scene.grid, "id": conflict["id"],
        "decisions": [{"field": "phone", "rev": other["rev"]}]})
    assert status == 200, text
    assert scene.secrets[-1] not in text
    stored = await scene.city.get(scene.grid, f"household:{scene.grid}-0")
    assert stored["phone"] == "13905779999"
    status, text = await fetch(scene, scene.masked, "POST", "/api/conflicts/decide", {
        "grid": scene.grid, "id": conflict["id"],
        "decisions": [{"field": "phone", "rev": "3-" + "7" * 32}]})
    assert status in (400, 409) and json.loads(text)["error"] in ("bad_request", "conflict")
