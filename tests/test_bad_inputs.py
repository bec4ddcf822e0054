"""Bad inputs, case by case (issue 7, "Bad inputs tried"), beyond what test_hardening.py,
test_auth.py and test_validation.py already hold: each gets the right status, a reason a person
can act on (zh-CN first, then English, naming the field where there is one), and writes nothing
but what it should. Text the worker typed is stored exactly as typed, whatever its characters."""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from typing import Any

import pytest
import yarl
from conftest import PASSWORD, TEST_LIMITS, City, a_later_millisecond, basic, visit, wait_for_user

from server.domain.scope import RECEIPTS_DB

CJK = re.compile(r"[\u3400-\u9fff]")
PWA_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "pwa"


def actionable(reason: str, *words: str) -> None:
    """A reason in both languages, zh-CN first, with the given words in it."""
    assert " / " in reason, reason
    first_cjk = CJK.search(reason)
    assert first_cjk is not None and first_cjk.start() < reason.index(" / "), reason
    assert re.search(r"[A-Za-z]{3,}", reason[reason.index(" / "):]), reason
    for word in words:
        assert word in reason, (word, reason)


async def expect_error(resp: Any, status: int, *words: str) -> str:
    text = await resp.text()
    assert resp.status == status, (resp.status, text)
    body = json.loads(text)
    assert set(body) == {"error", "reason"}, body
    actionable(body["reason"], *words)
    return str(body["reason"])


def refused(result: dict[str, Any], *words: str) -> None:
    """A document refused inside a batch: `forbidden` (PouchDB counts it denied and goes on)."""
    assert result.get("error") == "forbidden", result
    actionable(result["reason"], *words)


class Scene:
    """A grid with two workers, its supervisor, a supervisor elsewhere and an admin."""

    def __init__(self, client: Any, city: City) -> None:
        self.client, self.city = client, city
        self.community = f"bad{next(_serial)}"
        self.grid = city.blocking.grid(community=self.community)
        self.other_grid = city.blocking.grid(community=self.community + "x")
        self.w = city.blocking.user(grids=[self.grid])
        self.w2 = city.blocking.user(grids=[self.grid])
        self.boss = city.blocking.user("supervisor", communities=[self.community])
        self.outsider = city.blocking.user("supervisor", communities=[self.community + "x"])
        self.admin = city.blocking.user("admin")
        self.base = f"/couch/grid-{self.grid}"

    async def ready(self) -> Scene:
        for name in (self.w, self.w2, self.boss, self.outsider, self.admin):
            await wait_for_user(self.client, name)
        return self

    async def ids(self) -> set[str]:
        return await self.city.run(lambda: {row.id for row in self.city.db(self.grid).view(
            "_all_docs") if not row.id.startswith("_design/")})

    async def bulk(self, who: str, docs: list[Any], **extra: Any) -> list[dict[str, Any]]:
        resp = await self.client.post(f"{self.base}/_bulk_docs", json={"docs": docs, **extra},
                                      headers=basic(who))
        assert resp.status == 201, await resp.text()
        results: list[dict[str, Any]] = await resp.json()
        if extra.get("new_edits", True):  # replicated: only the refused are answered
            assert len(results) == len(docs), results
        return results

    async def raw(self, method: str, path: str, body: bytes, who: str | None = None,
                  content_type: str = "application/json") -> Any:
        return await self.client.request(method, path, data=body, headers={
            **basic(who or self.w), "Content-Type": content_type})


_serial = iter(range(1, 1_000_000))


@pytest.fixture
async def scene(client: Any, city: City) -> Scene:
    return await (await city.run(Scene, client, city)).ready()


def person(grid: str, author: str, n: int | str, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"person:{grid}-0001-{n}", "type": "person", "schema_version": 1,
           "grid": grid, "created_by": author, "household": f"household:{grid}-0001",
           "name": "王芳", "relationship": "0", "sex": "2", "birth_year": 1949,
           "birth_month": 12, "status": "present", "id_number": "11010519491231002X"}
    doc.update(fields)
    return doc


def household(grid: str, author: str, n: int | str, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"household:{grid}-{n}", "type": "household", "schema_version": 1,
           "grid": grid, "created_by": author, "registry": {"source": "grid_survey"},
           "address": {"compound": "yuan", "building": "3", "unit": "1", "room": "301"},
           "status": "active"}
    doc.update(fields)
    return doc


# -- malformed bodies on every write endpoint ------------------------------------------------

BAD_BODIES = {
    "truncated": b'{"docs": [',
    "nested 10,000 deep": b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "NaN": b'{"a": NaN}',
    "invalid UTF-8": b'{"a": "\xff\xfe"}',
    "trailing garbage": b'{"a": 1} {"b": 2}',
}


WRITE_ENDPOINTS = [
    ("PUT", "{db}/household_visit:{grid}-m"), ("POST", "{db}"), ("POST", "{db}/_revs_diff"),
    ("POST", "{db}/_bulk_get"), ("POST", "{db}/_all_docs"), ("PUT", "{db}/_local/ck"),
    ("POST", "{db}/_changes?filter=_doc_ids"), ("POST", "/couch/_session"),
]


async def test_malformed_json_on_every_endpoint(scene: Scene) -> None:
    for method, template in WRITE_ENDPOINTS:
        path = template.format(db=scene.base, grid=scene.grid)
        for body in BAD_BODIES.values():
            await expect_error(await scene.raw(method, path, body), 400, "JSON")
        resp = await scene.raw(method, path, b'{"a": 1}', content_type="text/plain")
        await expect_error(resp, 415, "application/json")
    assert await scene.ids() == set()
    assert (await scene.client.get("/couch/_up")).status == 200


# -- sizes ------------------------------------------------------------------------------------

async def test_a_document_over_the_limit_is_refused_alone(scene: Scene) -> None:
    limit_kb = TEST_LIMITS["max_document_bytes"] // 1024
    big = visit(scene.grid, scene.w, "big", notes="大" * 10)
    big["padding"] = "x" * (TEST_LIMITS["max_document_bytes"] + 1)
    docs = [visit(scene.grid, scene.w, "before"), big, visit(scene.grid, scene.w, "after")]
    results = await scene.bulk(scene.w, docs)
    assert results[0].get("ok") and results[2].get("ok"), results
    refused(results[1], "记录太大", "too large", f"{limit_kb} KB")
    assert await scene.ids() == {docs[0]["_id"], docs[2]["_id"]}
    # Alone, the same document is a 413 with the same words.
    resp = await scene.client.put(f"{scene.base}/{big['_id']}", json=big, headers=basic(scene.w))
    await expect_error(resp, 413, "记录太大", f"{limit_kb} KB")
    assert big["_id"] not in await scene.ids()


def with_attachment(doc: dict[str, Any], content_type: str, content: bytes | str,
                    name: str = "photo") -> dict[str, Any]:
    data = content if isinstance(content, str) else base64.b64encode(content).decode()
    return {**doc, "_attachments": {name: {"content_type": content_type, "data": data}}}


async def test_attachments_too_large_or_of_a_refused_type(scene: Scene) -> None:
    grid, w = scene.grid, scene.w
    too_big = b"\xff\xd8\xff" + b"\0" * (TEST_LIMITS["max_attachment_bytes"] + 10)
    assert len(base64.b64encode(too_big)) < TEST_LIMITS["max_document_bytes"]
    docs = [
        visit(grid, w, "ok1"),
        with_attachment(visit(grid, w, "big"), "image/jpeg", too_big),
        with_attachment(visit(grid, w, "html"), "text/html", b"<script>alert(1)</script>"),
        with_attachment(visit(grid, w, "svg"), "image/svg+xml", b"<svg onload=alert(1)/>"),
        with_attachment(visit(grid, w, "exe"), "application/x-msdownload", b"MZ\x90\x00"),
        with_attachment(visit(grid, w, "none"), "", b"abc"),
        with_attachment(visit(grid, w, "b64"), "image/png", "not base64 at all!"),
        {**visit(grid, w, "shape"), "_attachments": {"p": "a string"}},
        with_attachment(visit(grid, w, "ok2"), "image/png", b"\x89PNG\r\n\x1a\n"),
    ]
    results = await scene.bulk(w, docs)
    assert results[0].get("ok") and results[-1].get("ok"), results
    limit_kb = TEST_LIMITS["max_attachment_bytes"] // 1024
    refused(results[1], "附件", "太大", "too large", f"{limit_kb} KB")
    for result, kind in zip(results[2:6], ("text/html", "image/svg+xml",
                                           "application/x-msdownload", '""'), strict=True):
        refused(result, "不允许", "not accepted", kind, "image/jpeg")
    refused(results[6], "base64")
    refused(results[7], "附件", "malformed")
    assert await scene.ids() == {docs[0]["_id"], docs[-1]["_id"]}
    # A single PUT answers with the status of the problem.
    resp = await scene.client.put(f"{scene.base}/{docs[1]['_id']}", json=docs[1],
                                  headers=basic(w))
    await expect_error(resp, 413, "附件", f"{limit_kb} KB")
    resp = await scene.client.put(f"{scene.base}/{docs[2]['_id']}", json=docs[2],
                                  headers=basic(w))
    await expect_error(resp, 415, "text/html")
    assert await scene.ids() == {docs[0]["_id"], docs[-1]["_id"]}


# -- schema and domain rules ------------------------------------------------------------------

async def test_schema_violations_name_the_field_by_its_label(scene: Scene) -> None:
    grid, w = scene.grid, scene.w
    no_unit_room = household(grid, w, "a1")
    del no_unit_room["address"]["room"]
    cases = [
        (person(grid, w, 1, birth_year="1949"), ["Year of birth", "出生年", "whole number"]),
        (person(grid, w, 2, sex="F"), ["Sex", "性别", '"F"']),
        (no_unit_room, ["Address · Room", "缺少必填项", "required"]),
        (household(grid, w, "a2", address={**household(grid, w, 0)["address"],
                                           "building": ""}), ["Address · Building", "太短"]),
        (household(grid, w, "a3", special_groups=["elderly_alone", "vip"]),
         ["Special groups · item 2", '"vip"']),
        (visit(grid, w, "v1", persons_present=-1), ["Persons present", "at least 0"]),
        (visit(grid, w, "v2", visited_on="2026-02-30"), ["Visit date", "date"]),
        (visit(grid, w, "v3", notes="很" * 2001), ["Notes", "太长", "2000"]),
        (visit(grid, w, "v4", type=["household_visit"]), ["type", "未知的记录类型"]),  # was a 500
        (visit(grid, w, "v5", schema_version={"v": 1}), ["schema_version", "known versions"]),
    ]
    results = await scene.bulk(w, [doc for doc, _ in cases])
    for result, (_, words) in zip(results, cases, strict=True):
        refused(result, *words)
    assert await scene.ids() == set()


ID_CASES = [
    ("110105194912310021", {}, ["ID number", "X"]),  # the check character is X
    ("110105194902300016", {"birth_month": 2}, ["ID number"]),  # 30 February
    ("110105189912310010", {}, ["ID number"]),  # born before 1900
    ("11010519491231002Y", {}, ["ID number", "身份证号"]),  # not the form at all
    ("110105194912310\u200b02X", {}, ["ID number"]),  # a zero-width space pasted in
    ("11010519491231002X", {"sex": "1"}, ["Sex"]),  # the ID says female
    ("11010519491231002X", {"birth_year": 1950}, ["Birth year"]),  # the ID says 1949
]


async def test_id_numbers_that_cannot_be_right(scene: Scene) -> None:
    for id_number, fields, words in ID_CASES:
        doc = person(scene.grid, scene.w, "id", id_number=id_number, **fields)
        [result] = await scene.bulk(scene.w, [doc])
        refused(result, *words)
        # The domain rules never repeat an ID number. (A value that fails the schema's pattern
        # is still echoed by the schema's message, as for any field.)
        if re.fullmatch(r"[0-9]{17}[0-9X]", id_number):
            assert id_number not in result["reason"], result["reason"]
        resp = await scene.client.put(f"{scene.base}/{doc['_id']}", json=doc,
                                      headers=basic(scene.w))
        await expect_error(resp, 403, *words)
    assert await scene.ids() == set()


async def test_a_future_birth_is_refused(scene: Scene) -> None:
    [result] = await scene.bulk(scene.w, [person(scene.grid, scene.w, "f", birth_year=2999,
                                                 id_number="")])
    assert result.get("error") == "forbidden" and "/" in result["reason"]
    actionable(result["reason"])
    assert await scene.ids() == set()


# -- forged ownership and receipts ------------------------------------------------------------

async def test_receipt_times_cannot_be_forged(scene: Scene) -> None:
    grid, w = scene.grid, scene.w
    forged = [
        visit(grid, w, "r1", received_at="2020-01-01T00:00:00Z"),
        {**visit(grid, w, "r2"), "_received_at": "2020-01-01T00:00:00Z"},
        visit(grid, w, "r3", receipt={"received_at": "2020-01-01T00:00:00Z"}),
        {"_id": f"resolution:household_visit:{grid}-r4:1", "type": "resolution",
         "schema_version": 1, "grid": grid, "created_by": w,
         "record": f"household_visit:{grid}-r4", "record_type": "household_visit",
         "resolved_at": "2020-01-01T00:00:00Z", "revisions": [], "fields": [],
         "status": "resolved"},
    ]
    results = await scene.bulk(w, forged)
    refused(results[0], "received_at", "not allowed")
    assert results[1]["error"] == "forbidden" and "_received_at" in results[1]["reason"]
    actionable(results[1]["reason"])
    refused(results[2], "receipt", "not allowed")
    refused(results[3])  # a resolution is the server's alone
    # Replicated (new_edits=false), the same field is refused the same way.
    replicated = {**forged[0], "_rev": "1-" + "a" * 32}
    [result] = await scene.bulk(w, [replicated], new_edits=False)
    refused(result, "received_at")
    assert await scene.ids() == set()
    # The receipt database is the server's alone, for every role.
    for who in (w, scene.boss, scene.admin):
        resp = await scene.client.post(f"/couch/{RECEIPTS_DB}/_bulk_docs", headers=basic(who),
                                       json={"docs": [{"type": "receipt", "user": who}]})
        assert resp.status == 404, (who, await resp.text())
    # A phone whose clock says 1970 is received now, by the server's clock.
    ok = visit(grid, w, "r5", device_time="1970-01-01T08:00:00+08:00")
    [result] = await scene.bulk(w, [ok])
    assert result.get("ok"), result


async def test_security_objects_are_for_admins(scene: Scene) -> None:
    path = f"{scene.base}/_security"
    before = json.loads(await (await scene.client.get(path, headers=basic(scene.admin))).text())
    evil = {"admins": {"names": [scene.w], "roles": []}, "members": {"names": [], "roles": []}}
    for who in (scene.w, scene.boss):
        for method in ("PUT", "GET", "DELETE"):
            resp = await scene.client.request(method, path, headers=basic(who),
                                              json=evil if method == "PUT" else None)
            await expect_error(resp, 403, "_security")
    resp = await scene.client.put(path, json=evil, headers=basic(scene.outsider))
    assert resp.status == 404  # outside their scope: as if missing
    [result] = await scene.bulk(scene.w, [{"_id": "_security", **evil}])
    refused_reason = result["reason"]
    assert result["error"] == "forbidden"
    actionable(refused_reason, "underscore")
    after = json.loads(await (await scene.client.get(path, headers=basic(scene.admin))).text())
    assert after == before
    assert await scene.ids() == set()


# -- document ids -----------------------------------------------------------------------------

BAD_IDS = [
    ("household_visit:a/b", "<type>:<key>"),
    ("household_visit:a%2Fb", "<type>:<key>"),
    ("..", "<type>:<key>"),
    ("household_visit:../../linli-directory", "<type>:<key>"),
    ("household_visit:a b", "<type>:<key>"),
    ("household_visit:\u3000b", "<type>:<key>"),
    ("household_visit:😀", "<type>:<key>"),
    ("household_visit:a\u202eb", "<type>:<key>"),
    ("_x", "underscore"),
    ("_local/x", "underscore"),
    ("household_visit:" + "x" * 201, "<type>:<key>"),
    ("household_visit:" + "x" * 241, "too long"),
    ("", "_id"),
]


async def test_bad_ids_in_a_batch_are_refused_one_by_one(scene: Scene) -> None:
    grid, w = scene.grid, scene.w
    docs = [visit(grid, w, "good1")]
    for n, (doc_id, _word) in enumerate(BAD_IDS):
        docs.append({**visit(grid, w, f"bad{n}"), "_id": doc_id})
    docs.append({**visit(grid, w, "noid")})
    del docs[-1]["_id"]
    docs.append(visit(grid, w, "good2"))
    results = await scene.bulk(w, docs)
    assert results[0].get("ok") and results[-1].get("ok"), results
    for result, (doc_id, word) in zip(results[1:-2], BAD_IDS, strict=True):
        refused(result, word)
        assert doc_id not in await scene.ids()
    # No id at all: the store would make one up, and the record would escape its naming.
    refused(results[-2], "_id")
    assert await scene.ids() == {docs[0]["_id"], docs[-1]["_id"]}


PATH_IDS = [
    ("household_visit:a%20b", 400, "<type>:<key>"),
    ("household_visit:%F0%9F%98%80", 400, "<type>:<key>"),
    ("household_visit:%E2%80%AEb", 400, "<type>:<key>"),
    ("%5Fx", 400, "underscore"),
    ("household_visit:" + "x" * 241, 400, "too long"),
]


async def test_bad_ids_in_the_path(scene: Scene) -> None:
    doc = visit(scene.grid, scene.w, "p")
    del doc["_id"]
    for raw_id, status, word in PATH_IDS:
        url = yarl.URL(f"{scene.base}/{raw_id}", encoded=True)
        resp = await scene.client.put(url, json=doc, headers=basic(scene.w))
        await expect_error(resp, status, word)
    assert await scene.ids() == set()


# -- text: every character kept as typed; broken ones refused ---------------------------------

async def test_text_is_stored_exactly_as_typed(scene: Scene) -> None:
    grid, w = scene.grid, scene.w
    nfc, nfd = "李佳琪 José", unicodedata.normalize("NFD", "李佳琪 José")
    assert nfc != nfd and unicodedata.normalize("NFC", nfd) == nfc
    texts = {
        "beyond the BMP": "𠮷野家 𡈽 👨‍👩‍👧",
        "NFC": nfc,
        "NFD": nfd,
        "zero-width": "王\u200b芳\u200c\u200d\u2060\ufeff",
        "right-to-left override": "备注\u202etxt.exe\u202c",
        "bidi isolates": "\u2066A\u2069\u2067B\u2069",
        "script": '<script>alert(1)</script>"><img src=x onerror=alert(1)>',
        "template": "{{constructor.constructor('alert(1)')()}} ${alert(1)}",
        "controls": "tab\tnewline\ncarriage\r",
    }
    docs = [visit(grid, w, f"t{n}", notes=text) for n, text in enumerate(texts.values())]
    docs.append(person(grid, w, "jia", name="𠮷" * 50))  # 50 characters: the limit
    results = await scene.bulk(w, docs)
    assert all(r.get("ok") for r in results), results
    for doc in docs:
        resp = await scene.client.get(f"{scene.base}/{doc['_id']}", headers=basic(w))
        assert resp.headers["Content-Type"].startswith("application/json")
        stored = json.loads(await resp.read())
        field = "notes" if "notes" in doc else "name"
        assert stored[field] == doc[field], (doc[field], stored[field])
    # 51 characters of 𠮷 are 51 (not 102, as UTF-16 would count them): too long.
    [result] = await scene.bulk(w, [person(grid, w, "jia2", name="𠮷" * 51)])
    refused(result, "Name", "50")
    # The escaped pair of 𠮷 is the same character, stored as such.
    raw = json.dumps({"docs": [visit(grid, w, "esc", notes="PAIR")]}).replace(
        "PAIR", "\\ud842\\udfb7")
    resp = await scene.raw("POST", f"{scene.base}/_bulk_docs", raw.encode())
    assert resp.status == 201 and (await resp.json())[0].get("ok")
    assert (await scene.city.get(grid, f"household_visit:{grid}-esc"))["notes"] == "𠮷"


LONE = {"high": "\\ud842", "low": "\\udfb7", "reversed pair": "\\udfb7\\ud842",
        "cut at the end": "abc\\ud83d"}


async def test_lone_surrogates_are_refused_everywhere(scene: Scene) -> None:
    for lone in LONE.values():
        await lone_surrogate_everywhere(scene, lone)
    assert await scene.ids() == set()


async def lone_surrogate_everywhere(scene: Scene, lone: str) -> None:
    grid, w = scene.grid, scene.w
    doc = json.dumps(visit(grid, w, "s", notes="LONE")).replace("LONE", lone)
    resp = await scene.raw("PUT", f"{scene.base}/household_visit:{grid}-s", doc.encode())
    await expect_error(resp, 400, "损坏的字符", "broken character")
    key = json.dumps({**visit(grid, w, "k"), "LONE": 1}).replace("LONE", lone)
    resp = await scene.raw("PUT", f"{scene.base}/household_visit:{grid}-k", key.encode())
    await expect_error(resp, 400)
    # In the bodies the gateway hands to the store, the same answer (these were 500s).
    for path, body in [
        (f"{scene.base}/_revs_diff", '{"household_visit:LONE": ["1-a"]}'),
        (f"{scene.base}/_bulk_get", '{"docs": [{"id": "LONE"}]}'),
        (f"{scene.base}/_all_docs", '{"keys": ["LONE"]}'),
        (f"{scene.base}/_changes?filter=_doc_ids", '{"doc_ids": ["LONE"]}'),
        (f"{scene.base}/_local/ck", '{"last_seq": "LONE"}'),
    ]:
        method = "PUT" if "_local" in path else "POST"
        resp = await scene.raw(method, path, body.replace("LONE", lone).encode())
        await expect_error(resp, 400, "broken character")


async def test_the_app_inserts_text_never_html() -> None:
    """The PWA shows what a record holds as text: no HTML sinks anywhere in its code (the CSP,
    `script-src 'self'`, is checked in test_auth.py)."""
    sinks = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|"
                       r"\beval\(|new Function\(|setTimeout\(\s*['\"`]")
    offenders = [f"{path.name}:{n}" for path in sorted(PWA_DIR.rglob("*.js"))
                 if "vendor" not in path.parts
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if sinks.search(line)]
    assert offenders == []


async def test_an_html_attachment_is_never_a_page(scene: Scene) -> None:
    """Bytes that claim to be a PNG but hold a page are served as data: sandboxed, unsniffed."""
    doc = with_attachment(visit(scene.grid, scene.w, "page"), "image/png",
                          b"<html><script>alert(document.cookie)</script></html>", "p.png")
    [result] = await scene.bulk(scene.w, [doc])
    assert result.get("ok"), result
    resp = await scene.client.get(f"{scene.base}/{doc['_id']}/p.png", headers=basic(scene.w))
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


# -- mass assignment --------------------------------------------------------------------------

async def test_smuggled_privileges_are_refused(scene: Scene) -> None:
    grid, w = scene.grid, scene.w
    results = await scene.bulk(w, [
        visit(grid, w, "m1", role="admin"),
        visit(grid, w, "m2", verified=True),
        visit(grid, w, "m3", roles=["_admin"]),
        visit(grid, w, "m4", resolved_by="linli-resolver"),
        {"_id": f"user:{w}", "type": "user", "schema_version": 1, "name": w, "role": "admin",
         "grid": grid, "created_by": w},
        {**visit(grid, w, "m5"), "_admin": True},
    ])
    refused(results[0], "role", "not allowed")
    refused(results[1], "verified", "not allowed")
    refused(results[2], "roles", "not allowed")
    refused(results[3], "resolved_by", "not allowed")
    refused(results[4], "type", "user")
    refused(results[5], "_admin")
    assert await scene.ids() == set()
    # The directory and CouchDB's users database are out of reach, for admins too.
    for path in ("/couch/linli-directory/user:x", "/couch/_users/org.couchdb.user:x"):
        for who in (w, scene.admin):
            resp = await scene.client.put(path, headers=basic(who), json={
                "name": "x", "roles": ["_admin"], "password": "x", "type": "user"})
            assert resp.status == 404, (path, who, await resp.text())
    # Logging in with roles in the body gives only one's own.
    resp = await scene.client.post("/couch/_session", json={
        "name": w, "password": PASSWORD, "roles": ["_admin"], "role": "admin"})
    assert (await resp.json())["roles"] == ["worker"]


async def test_deleted_must_be_a_boolean(scene: Scene) -> None:
    """The store deletes on any truthy `_deleted`: `1` once deleted another worker's record
    without the deletion rule being asked."""
    for n, flag in enumerate([1, "true", "yes", [True], {"a": 1}, None]):
        await smuggle_deleted(scene, flag, f"theirs{n}")


async def smuggle_deleted(scene: Scene, flag: Any, key: str) -> None:
    theirs = visit(scene.grid, scene.w2, key)
    [created] = await scene.bulk(scene.w2, [theirs])
    smuggled = {**theirs, "_rev": created["rev"], "_deleted": flag}
    [result] = await scene.bulk(scene.w, [smuggled])
    refused(result, "_deleted", "true or false")
    resp = await scene.client.put(f"{scene.base}/{theirs['_id']}", json=smuggled,
                                  headers=basic(scene.w))
    await expect_error(resp, 400, "_deleted")
    stored = await scene.city.get(scene.grid, theirs["_id"])
    assert stored["_rev"] == created["rev"] and stored["created_by"] == scene.w2
    # A real deletion (a bare tombstone) of someone else's record is refused by the deletion
    # rule, with its author.
    [result] = await scene.bulk(scene.w, [{"_id": theirs["_id"], "_rev": created["rev"],
                                           "_deleted": True}])
    refused(result, scene.w2)
    assert theirs["_id"] in await scene.ids()


# -- /api/ ------------------------------------------------------------------------------------

async def post_api(scene: Scene, path: str, who: str, body: Any = None,
                   raw: bytes | None = None) -> Any:
    if raw is None:
        return await scene.client.post(path, json=body, headers=basic(who))
    return await scene.client.post(path, data=raw, headers={
        **basic(who), "Content-Type": "application/json"})


async def test_api_posts_refuse_malformed_bodies(scene: Scene) -> None:
    big = b'{"grid": "' + b"x" * TEST_LIMITS["max_request_bytes"] + b'"}'
    for path in ("/api/conflicts/decide", "/api/review/verdicts"):
        for body in BAD_BODIES.values():
            await expect_error(await post_api(scene, path, scene.boss, raw=body), 400, "JSON")
        await expect_error(await post_api(scene, path, scene.boss, raw=big), 413)
        for raw in (b"[1, 2]", b'"grid"', b"5", b"null", b"true"):
            await expect_error(await post_api(scene, path, scene.boss, raw=raw), 400, "JSON 对象")
        await expect_error(await post_api(scene, path, scene.boss, raw=b""), 400, "JSON")
        resp = await scene.client.post(path, data=b"grid=x", headers={
            **basic(scene.boss), "Content-Type": "application/x-www-form-urlencoded"})
        await expect_error(resp, 415, "application/json")
        resp = await scene.client.post(path, json={"grid": scene.grid})
        await expect_error(resp, 401)
        await expect_error(await post_api(scene, path, scene.w, {"grid": scene.grid}), 403)
        for grid in (scene.other_grid, 5, None, ["x"], "../" + scene.grid):
            resp = await post_api(scene, path, scene.boss, {"grid": grid})
            await expect_error(resp, 404, "网格")
    assert await scene.ids() == set()


async def reviewable(scene: Scene) -> tuple[str, str]:
    record = visit(scene.grid, scene.w, "rev")
    [result] = await scene.bulk(scene.w, [record])
    return record["_id"], result["rev"]


async def test_verdicts_refuse_wrong_shapes_and_write_nothing(scene: Scene) -> None:
    record, rev = await reviewable(scene)
    other = visit(scene.other_grid, scene.w, "x")["_id"]
    path = "/api/review/verdicts"

    def one(**item: Any) -> dict[str, Any]:
        return {"grid": scene.grid, "verdicts": [{"record": record, "record_rev": rev,
                                                  "decision": "approved", **item}]}

    cases: list[tuple[Any, list[str]]] = [
        ({"grid": scene.grid}, ["verdicts"]),
        ({"grid": scene.grid, "verdicts": []}, ["verdicts"]),
        ({"grid": scene.grid, "verdicts": "approve all"}, ["verdicts"]),
        ({"grid": scene.grid, "verdicts": [record]}, ["verdicts"]),
        ({"grid": scene.grid, "verdicts": [{"record": record}]}, ["verdicts"]),
        ({"grid": scene.grid, "verdicts": [{"record": 5, "record_rev": rev}]}, ["verdicts"]),
        ({"grid": scene.grid, "verdicts": [{"record": record, "record_rev": rev,
                                            "decision": "approved"}] * 501}, ["500"]),
        (one(decision="approve"), ["Decision", '"approve"']),
        (one(decision=None), ["Decision"]),
        (one(decision=["approved"]), ["Decision"]),
        (one(decision="has_issues"), ["Comment", "required"]),
        (one(decision="has_issues", comment=5), ["Comment", "文字"]),
        (one(decision="has_issues", comment="很" * 1001), ["Comment", "1000"]),
        (one(record_rev=""), ["Record revision"]),
        (one(record=other), ["没有这条可审核的记录"]),
        (one(record=f"person:{scene.grid}-1"), ["没有这条可审核的记录"]),
        (one(record="_design/linli"), ["没有这条可审核的记录"]),
        (one(record=f"_local/{scene.w}~ck"), ["没有这条可审核的记录"]),
    ]
    for body, words in cases:
        await expect_error(await post_api(scene, path, scene.boss, body), 400, *words)
    missing = one()
    del missing["verdicts"][0]["decision"]
    await expect_error(await post_api(scene, path, scene.boss, missing), 400, "Decision")
    # Every verdict is checked first: one bad one and nothing is written.
    mixed = one()
    mixed["verdicts"].append({"record": record, "record_rev": rev, "decision": "nope"})
    await expect_error(await post_api(scene, path, scene.boss, mixed), 400, "#2", "Decision")
    # A lone surrogate in a comment (was a 500).
    raw = json.dumps(one(decision="has_issues", comment="LONE")).replace("LONE", "\\ud83d")
    await expect_error(await post_api(scene, path, scene.boss, raw=raw.encode()), 400,
                       "broken character")
    assert await scene.ids() == {record}
    # Fields smuggled into an item are not the writer's to set: the verdict is the boss's.
    smuggled = one(created_by=scene.w, grid=scene.other_grid, _id="verdict:mine",
                   by=scene.w, device_time="1970-01-01T00:00:00Z", _deleted=True)
    resp = await post_api(scene, path, scene.boss, smuggled)
    assert resp.status == 200, await resp.text()
    [written] = (await resp.json())["written"]
    stored = await scene.city.get(scene.grid, written)
    assert written.startswith(f"verdict:{record}:") and not stored.get("_deleted")
    assert stored["created_by"] == scene.boss and stored["grid"] == scene.grid
    assert stored["device_time"] > "2000"
    assert await scene.ids() == {record, written}


async def test_get_endpoints_refuse_bad_queries(scene: Scene) -> None:
    client, boss = scene.client, basic(scene.boss)
    for path, status, words in [
        ("/api/export?what=users", 400, ["households"]),
        ("/api/export?format=pdf", 400, ["csv"]),
        (f"/api/export?grid={scene.other_grid}", 404, ["网格"]),
        ("/api/export?grid=%ED%A0%80", 404, ["网格"]),
        ("/api/aggregates?level=planet", 400, ["level"]),
        ("/api/aggregates?level=grid", 400, ["code"]),
        ("/api/aggregates?level=grid&code=nope", 404, ["地区"]),
        ("/api/review?type=notice", 400, ["记录类型", "Record type"]),
        ("/api/review?state=lost", 400, ["审核状态", "State"]),
        ("/api/review?from=2026-02-30", 400, ["起始日期", "YYYY-MM-DD"]),
        ("/api/review?from=2026-11-02&to=2026-11-01", 400, ["起始日期"]),
        ("/api/review?to=tomorrow", 400, ["截止日期"]),
        ("/api/review?from=%ED%A0%80", 400, ["起始日期"]),
        ("/api/review?worker=" + "w" * 65, 400, ["网格员"]),
        ("/api/review?worker=a%00b", 400, ["网格员"]),
        ("/api/review?sort=random", 400, ["排序", "newest"]),
        ("/api/review?state=approved&state=rejected", 400, ["重复"]),
        ("/api/review?type=person,person,person,person,person,person", 400, ["记录类型"]),
        (f"/api/review?grid={scene.other_grid}", 404, ["网格"]),
        (f"/api/conflicts?grid={scene.other_grid}", 404, ["网格"]),
    ]:
        resp = await client.get(yarl.URL(path, encoded=True), headers=boss)
        await expect_error(resp, status, *words)
    for path in ("/api/export", "/api/export?unmask=1", "/api/aggregates", "/api/review",
                 "/api/conflicts"):
        await expect_error(await client.get(path, headers=basic(scene.w)), 403)
        await expect_error(await client.get(path), 401)
    # Another community's grid: its small counts are withheld, never its records.
    resp = await client.get(f"/api/aggregates?level=grid&code={scene.other_grid}", headers=boss)
    assert resp.status in (200, 404), await resp.text()
    resp = await client.get(f"/api/export?community={scene.community}x", headers=boss)
    assert resp.status == 200
    lines = (await resp.read()).decode("utf-8-sig").strip().splitlines()
    assert len(lines) == 1  # the header only: that community is not the boss's


async def test_decide_refuses_bad_decisions_and_writes_nothing(scene: Scene) -> None:
    """A real open conflict on `phone` and `remarks`; every bad decision leaves the record and
    its resolution as they were."""

    from server.web.keys import RECEIPTS, RESOLVER

    grid, db = scene.grid, scene.city.db(scene.grid)
    base = household(grid, scene.w, "c", remarks="旧")
    r1, ra, rb = "1-" + "1" * 32, "2-" + "a" * 32, "2-" + "b" * 32

    def branch(doc: dict[str, Any], rev: str, *parents: str) -> dict[str, Any]:
        ids = [r.split("-", 1)[1] for r in (rev, *parents)]
        return {**doc, "_rev": rev, "_revisions": {"start": int(rev[0]), "ids": ids}}

    await scene.bulk(scene.w, [branch(base, r1)], new_edits=False)
    await scene.bulk(scene.w, [branch({**base, "phone": "13905700001", "remarks": "甲"}, ra,
                                      r1)], new_edits=False)
    await a_later_millisecond()
    await scene.bulk(scene.w2, [branch({**base, "phone": "13905700002", "remarks": "乙"}, rb,
                                       r1)], new_edits=False)
    await scene.client.app[RECEIPTS].flush()
    await scene.client.app[RESOLVER].process_grid(grid)
    [conflict] = await scene.city.run(lambda: [row.id for row in db.view(
        "_all_docs", startkey=f"resolution:{base['_id']}:",
        endkey=f"resolution:{base['_id']}:\ufff0")])
    async def stored() -> tuple[dict[str, Any], dict[str, Any]]:
        """The record and its resolution as the store holds them."""
        return await scene.city.get(grid, base["_id"]), await scene.city.get(grid, conflict)

    record, resolution = await stored()
    assert resolution["status"] == "open"
    before_record, before_conflict = record["_rev"], resolution["_rev"]
    path = "/api/conflicts/decide"

    def body(*decisions: Any, **extra: Any) -> dict[str, Any]:
        return {"grid": grid, "id": conflict, "decisions": list(decisions), **extra}

    cases: list[tuple[Any, int, list[str]]] = [
        ({"grid": grid, "decisions": [{"field": "phone", "value": "1"}]}, 400, ["id"]),
        (body({"field": "phone"}, id=base["_id"]), 400, ["resolution"]),
        (body(id=["resolution:x"]), 400, ["id"]),
        (body(), 400, ["decisions"]),
        ({**body(), "decisions": "phone"}, 400, ["decisions"]),
        (body("phone"), 400, ["decisions"]),
        (body({"value": "13905700003"}), 400, ["decisions"]),
        (body({"field": 7, "value": "x"}), 400, ["decisions"]),
        (body({"field": "phone", "value": "x"}, id=f"resolution:{grid}:none"), 404, ["冲突"]),
        (body({"field": "created_by", "value": scene.w}), 400, ["created_by"]),
        (body({"field": "_deleted", "value": True}), 400, ["_deleted"]),
        (body({"field": "grid", "value": scene.other_grid}), 400, ["grid"]),
        (body({"field": "role", "value": "admin"}), 400, ["role"]),
        (body({"field": "phone", "value": 13905700003}), 400, ["Phone", "文字"]),
        (body({"field": "phone", "value": "139 0570 0003"}), 400, ["Phone"]),
        (body({"field": "remarks", "value": {"$gt": ""}}), 400, ["Notes"]),
        (body({"field": "remarks", "value": "很" * 5000}), 400, ["Notes"]),
        (body({"field": "phone", "value": "13905700003"}, {"field": "remarks", "value": 5}),
         400, ["Notes"]),
    ]
    for payload, status, words in cases:
        await expect_error(await post_api(scene, path, scene.boss, payload), status, *words)
    raw = json.dumps(body({"field": "remarks", "value": "LONE"})).replace("LONE", "\\udfff")
    await expect_error(await post_api(scene, path, scene.boss, raw=raw.encode()), 400,
                       "broken character")
    await expect_error(await post_api(scene, path, scene.w, body(
        {"field": "phone", "value": "13905700003"})), 403)
    await expect_error(await post_api(scene, path, scene.outsider, body(
        {"field": "phone", "value": "13905700003"})), 404)
    record, resolution = await stored()
    assert record["_rev"] == before_record
    assert resolution["_rev"] == before_conflict and resolution["status"] == "open"
    # A good decision still goes through afterwards.
    resp = await post_api(scene, path, scene.boss, body(
        {"field": "phone", "value": "13905700003"}, {"field": "remarks", "value": "𠮷 <b>丙</b>"}))
    assert resp.status == 200, await resp.text()
    record, resolution = await stored()
    assert record["remarks"] == "𠮷 <b>丙</b>" and resolution["status"] == "decided"


async def test_an_empty_bulk_get_is_answered_at_once(scene: Scene) -> None:
    """PouchDB Server never answers `{"docs": []}`: the request held a store connection for the
    read timeout (90 s) and then failed with 503, which a worker could repeat to use them up."""
    import asyncio

    resp = await asyncio.wait_for(scene.client.post(
        f"{scene.base}/_bulk_get", json={"docs": []}, headers=basic(scene.w)), 5)
    assert resp.status == 200 and await resp.json() == {"results": []}
