"""A property-based fuzzer (Hypothesis) over `/couch/` and `/api/`: generated documents,
batches, ids, paths and query strings, sent by an authenticated worker and supervisor. Whatever
arrives, the server never answers 5xx, every error keeps CouchDB's `{"error", "reason"}` shape,
and every document the grid database holds afterwards passes its schema and the domain rules
(domain/validation.py), revisions in conflict included, with attachment names a phone can fetch
and content types its form allows. Attachments are drawn on purpose (test_attachments_as_a_worker):
mostly a valid photo with a member or two changed or dropped (data that is not base64 text,
`follows`, stubs with and without a stored match, lengths and digests that lie) under names good
and poisoned, because the shapes that killed the store (issue 13) were one member off a valid one.
Deletions, histories and checkpoints too (test_deletions_histories_and_checkpoints): tombstones
bare or with bodies of megabytes or hundreds of levels, of others' records and of ids never seen;
`_revisions` with one flaw of each kind; lone surrogates as raw bytes; `_local` reads, writes and
deletions. Every test also checks each leaf changed since the last look, tombstones included: no
U+FFFD (a surrogate the store replaced), and a deleted leaf holds nothing but a tombstone's members.

How the async tests meet Hypothesis: pytest-asyncio (under pytest-aiohttp, `asyncio_mode =
auto`) runs an `async def` test decorated with `@given` one example at a time on the session's
event loop, so each example awaits the real aiohttp test client against the real store, and a
failure shrinks like any Hypothesis failure. The scene (a grid, its users, a record and an open
conflict) is a function-scoped fixture made once for all the examples of a test, so the
`function_scoped_fixture` health check is suppressed on purpose: the examples share one
database, which is what lets a later example meet what an earlier one wrote.

Bounded and reproducible: `derandomize=True` (examples derive from the test itself, the same in
every run), no example database, no deadline (a busy CI machine is slow, not wrong), and
`max_examples` sized so the file runs in about a minute on two busy cores. To fuzz longer
locally: LINLI_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yarl
from conftest import City, a_later_millisecond, basic, visit, wait_for_user
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from server.domain.validation import (
    RECORD_ID,
    TOMBSTONE_MEMBERS,
    SchemaRegistry,
    attachment_name_problem,
    domain_problems,
    md5_digest,
)
from server.store.embedded import EmbeddedStore
from server.sync import params as qparams
from server.sync.conflicts import RESOLVER as RESOLVER_NAME
from server.web.keys import RECEIPTS, RESOLVER

pytestmark = pytest.mark.slow  # generated inputs, thousands per property

REGISTRY = SchemaRegistry()
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, *(
    [] if os.environ.get("LINLI_FUZZ_NO_SHRINK") else [Phase.shrink])]
SCALE = int(os.environ.get("LINLI_FUZZ_EXAMPLES", "0")) or None
MAX_REQUEST_LINE = 8190  # aiohttp's max_line_size: longer request lines never reach the app


def fuzz(examples: int) -> Any:
    return settings(max_examples=SCALE or examples, deadline=None, derandomize=True,
                    database=None, print_blob=True, report_multiple_bugs=True,
                    phases=PHASES,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the scene --------------------------------------------------------------------------------

class Scene:
    def __init__(self, client: Any, city: City) -> None:
        self.client, self.city = client, city
        self.community = f"fz{os.getpid()}{id(self) % 100000}"
        self.grid = city.blocking.grid(community=self.community)
        self.other_grid = city.blocking.grid(community=self.community + "x")
        self.worker = city.blocking.user(grids=[self.grid])
        self.boss = city.blocking.user("supervisor", communities=[self.community])
        self.record = self.record_rev = self.conflict = ""
        self.since: Any = 0  # how far check_leaves has read the grid's changes

    async def ready(self) -> Scene:
        for name in (self.worker, self.boss):
            await wait_for_user(self.client, name)
        record = visit(self.grid, self.worker, "seed", _attachments={
            "door.png": {"content_type": "image/png", "data": PNG64}})
        resp = await self.client.put(f"/couch/grid-{self.grid}/{record['_id']}", json=record,
                                     headers=basic(self.worker))
        self.record, self.record_rev = record["_id"], (await resp.json())["rev"]
        await self.open_conflict()
        return self

    async def open_conflict(self) -> None:
        """Two workers' concurrent edits of a household's phone and remarks, resolved by the
        app's resolver into an open conflict for the supervisor."""
        other = await self.city.user(grids=[self.grid])
        await wait_for_user(self.client, other)
        base = household(self.grid, self.worker, "conflict")
        revs = {"1": "1-" + "1" * 32, "a": "2-" + "a" * 32, "b": "2-" + "b" * 32}

        def branch(doc: dict[str, Any], rev: str, *parents: str) -> dict[str, Any]:
            ids = [r.split("-", 1)[1] for r in (rev, *parents)]
            return {**doc, "_rev": rev, "_revisions": {"start": int(rev[0]), "ids": ids}}

        for who, doc in [(self.worker, branch(base, revs["1"])),
                         (self.worker, branch({**base, "phone": "13905700001", "remarks": "甲"},
                                              revs["a"], revs["1"])),
                         (other, branch({**base, "phone": "13905700002", "remarks": "乙"},
                                        revs["b"], revs["1"]))]:
            resp = await self.client.post(f"/couch/grid-{self.grid}/_bulk_docs", headers=basic(
                who), json={"docs": [doc], "new_edits": False})
            assert resp.status == 201 and await resp.json() == []
            await a_later_millisecond()
        await self.client.app[RECEIPTS].flush()
        await self.client.app[RESOLVER].process_grid(self.grid)
        [self.conflict] = await self.city.run(lambda: [row.id for row in self.city.db(
            self.grid).view("_all_docs", startkey=f"resolution:{base['_id']}:",
                            endkey=f"resolution:{base['_id']}:\ufff0")])

    def check_grid(self) -> int:
        """Every live document and every revision in conflict of the grid passes its schema
        and the domain rules, belongs to this grid, and is named by its type."""
        db = self.city.db(self.grid)
        checked = 0
        for row in db.view("_all_docs", include_docs=True, conflicts=True):
            if row.id.startswith("_design/"):
                continue
            revisions = [row.doc] + [db.get(row.id, rev=r) for r in row.doc.get("_conflicts", [])]
            for doc in revisions:
                problems = REGISTRY.problems(doc) or domain_problems(doc)
                assert problems == [], (row.id, doc.get("_rev"), problems)
                assert doc["grid"] == self.grid, doc
                match = RECORD_ID.match(doc["_id"])
                assert match is not None and match["type"] == doc["type"], doc["_id"]
                allowed = REGISTRY.attachment_types[(doc["type"], doc["schema_version"])]
                attachments = doc.get("_attachments", {})
                assert isinstance(attachments, dict), (doc["_id"], attachments)
                for name, att in attachments.items():
                    assert attachment_name_problem(name) is None, (doc["_id"], name)
                    assert att["content_type"] in allowed, (doc["_id"], name, att)
                checked += 1
        return checked + self.check_leaves()

    def check_leaves(self) -> int:
        """Every leaf of every id changed since the last look, deleted ones included: a
        tombstone holds nothing but what TOMBSTONE_MEMBERS allows, and no stored text holds
        U+FFFD (a lone surrogate the store replaced)."""
        db = self.city.db(self.grid)
        changes = db.changes(since=self.since, style="all_docs")
        self.since = changes["last_seq"]
        checked = 0
        for change in changes["results"]:
            if change["id"].startswith("_design/"):
                continue
            _, _, leaves = db.resource(change["id"]).get_json(open_revs="all")
            for item in leaves:
                leaf = item.get("ok")
                if leaf is None:
                    continue
                assert "\ufffd" not in json.dumps(leaf, ensure_ascii=False), leaf
                if leaf.get("_deleted"):  # the resolver's own mark aside (written by the server)
                    assert set(leaf) <= TOMBSTONE_MEMBERS | {"resolved_by"}, leaf
                    assert leaf.get("resolved_by", RESOLVER_NAME) == RESOLVER_NAME, leaf
                else:
                    assert REGISTRY.problems(leaf) == [], leaf
                checked += 1
        return checked


@pytest.fixture
async def scene(client: Any, city: City) -> Scene:
    return await (await city.run(Scene, client, city)).ready()


def household(grid: str, author: str, key: str, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"household:{grid}-{key}", "type": "household", "schema_version": 1,
           "grid": grid, "created_by": author, "registry": {"source": "grid_survey"},
           "address": {"compound": "yuan", "building": "3", "unit": "1", "room": "301"},
           "status": "active"}
    doc.update(fields)
    return doc


def person(grid: str, author: str, key: str) -> dict[str, Any]:
    return {"_id": f"person:{grid}-{key}", "type": "person", "schema_version": 1, "grid": grid,
            "created_by": author, "household": f"household:{grid}-0001", "name": "王芳",
            "relationship": "0", "sex": "2", "birth_year": 1949, "birth_month": 12,
            "status": "present", "id_number": "11010519491231002X", "phone": "13905700001"}


def screening(grid: str, author: str, key: str) -> dict[str, Any]:
    return {"_id": f"screening:{grid}-{key}", "type": "screening", "schema_version": 1,
            "grid": grid, "created_by": author, "person": f"person:{grid}-0001-1",
            "household": f"household:{grid}-0001", "campaign": "2026-screening",
            "screened_on": "2026-11-20", "temperature": 36.6, "health_code": "green"}


def verdict(grid: str, author: str, key: str) -> dict[str, Any]:
    return {"_id": f"verdict:household_visit:{grid}-seed:{key}", "type": "verdict",
            "schema_version": 1, "grid": grid, "created_by": author,
            "record": f"household_visit:{grid}-seed", "record_rev": "1-abc",
            "decision": "has_issues", "comment": "身份证号有误"}


TEMPLATES = {"household_visit": lambda g, a, k: visit(g, a, k), "household": household,
             "person": person, "screening": screening, "verdict": verdict}


# -- strategies -------------------------------------------------------------------------------

NASTY = ["", " ", "𠮷", "é", "é", "\u200b", "\u202e", "\ufeff", "\x00", "\n", "<script>",
         "../", "%2F", "_design/x", "_local/x", "_security", "1-abc", "now", "9" * 30, "-1",
         "null", "true", "{}", "[]", "\\", '"', "'", "\u3000", "😀", "０１２"]
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)
# U+FFFD is never generated: in the store it can only be a lone surrogate that was let through
# (the store turns raw surrogate bytes into it), which check_grid looks for.
CHARS = st.characters(exclude_characters="\ufffd")
TEXT = st.one_of(st.text(CHARS, max_size=12), st.sampled_from(NASTY), SURROGATES,
                 st.text(CHARS, max_size=3).map(lambda t: t * 700))  # sometimes long
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT)
QTEXT = st.one_of(st.text(max_size=12), st.sampled_from(NASTY)).map(  # for URLs: short
    lambda v: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)


def field_values(doc_type: str, field: str) -> st.SearchStrategy[Any]:
    """What a field may hold: mostly what its schema allows (enums, consts), or anything."""
    schema = REGISTRY.validators[(doc_type, 1)].schema["properties"].get(field, {})
    options = list(schema.get("enum", [])) + ([schema["const"]] if "const" in schema else [])
    items = schema.get("items", {}) if isinstance(schema.get("items"), dict) else {}
    if items.get("enum"):
        options.append(list(items["enum"][:2]))
    return st.one_of(st.sampled_from(options), JSON) if options else JSON


SPECIALS = ["_deleted", "_rev", "_revisions", "_attachments", "_conflicts", "_local_seq",
            "_deleted_conflicts", "_revs_info", "_admin", "_x"]
SPECIAL_VALUES = st.one_of(
    JSON, st.just(True), st.just("1-" + "a" * 32),
    st.fixed_dictionaries({"start": st.integers(-1, 3), "ids": st.lists(TEXT, max_size=2)}),
    st.dictionaries(TEXT, st.fixed_dictionaries(
        {"content_type": st.sampled_from(["image/png", "text/html", "image/jpeg", 5]),
         "data": st.sampled_from(["iVBORw0KGgo=", "not base64", "", 7])},
        optional={"stub": st.booleans(), "length": st.integers()}), max_size=2))


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PNG64 = base64.b64encode(PNG).decode()
# Names a phone must be able to fetch by URL, and the ones that would poison it (issue 13, 2).
GOOD_NAMES = ["door.png", "照片.jpg", "a.b.png", "a" * 255, "door photo (1).jpg", "x_.png"]
BAD_NAMES = ["../../x.png", "./x.png", "..", ".", "", "a/b.png", "/x", "a\\b", "x\x00", "x\n",
             "x\x7f", "x\x85", "_x.png", "_", "é" * 128, "p\u202egnp.exe", "%2F..", "x?y#z"]


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each as often as its weight says."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(pool) - 1).flatmap(lambda i: pool[i])


ATTACHMENT_NAMES = weighted((3, st.sampled_from(GOOD_NAMES)), (1, st.sampled_from(BAD_NAMES)),
                            (1, st.one_of(TEXT, SURROGATES)))
ATTACHMENT_DATA = st.one_of(
    st.sampled_from([PNG64, "", "YWI", "not base64", "YWJj\n", "=" * 4]), st.none(),
    st.integers(), st.booleans(), st.lists(st.integers(), max_size=2), JSON)
# What each member of an attachment object may be drawn as, right or wrong.
ATTACHMENT_MEMBERS = {
    "content_type": st.one_of(st.sampled_from(["image/png", "image/jpeg", "application/pdf",
                                               "text/html", "image/svg+xml", ""]), JSON),
    "data": ATTACHMENT_DATA,
    "stub": st.one_of(st.just(True), st.sampled_from([1, False, "true", None])),
    "digest": st.one_of(st.sampled_from([md5_digest(PNG), md5_digest(b""), "md5-x"]), JSON),
    "length": st.one_of(st.sampled_from([len(PNG), 0, -1, 2**53]), JSON),
    "revpos": st.one_of(st.integers(-1, 3), JSON),
    "follows": st.one_of(st.just(True), JSON),
    "encoding": st.just("gzip"),
    "x": JSON,
}


# The members changed most often are those the store died on.
MUTATED = ["data", "data", "data", "stub", "stub", "follows", "content_type", "content_type",
           *sorted(set(ATTACHMENT_MEMBERS) - {"data", "stub", "follows", "content_type"})]


@st.composite
def attachment(draw: st.DrawFn) -> Any:
    """An attachment object, mostly a valid photo with a member or two changed or dropped, so
    the drawn fault is what the store meets (the shapes that killed it were one member off)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    att: dict[str, Any] = {"content_type": draw(st.sampled_from(["image/png", "image/jpeg"])),
                           "data": PNG64}
    if draw(st.integers(0, 4)) == 0:
        return att
    for _ in range(draw(st.integers(1, 2))):
        member = draw(st.sampled_from(MUTATED))
        if draw(st.integers(0, 3)) == 0:
            att.pop(member, None)
        else:
            att[member] = draw(ATTACHMENT_MEMBERS[member])
    return att


ATTACHMENT = attachment()
ATTACHMENT_MAPS = st.dictionaries(ATTACHMENT_NAMES, ATTACHMENT, min_size=1, max_size=3)
ATTACHMENTS = weighted((4, ATTACHMENT_MAPS), (1, JSON))


def ids(grid: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda t, k: f"{t}:{grid}-{k}", st.sampled_from(sorted(TEMPLATES)),
                  st.sampled_from(["1", "2", "seed", "conflict", "a.b", "x:y"])),
        st.builds(lambda t, k: f"{t}:{k}", st.sampled_from([*TEMPLATES, "user", "_design"]),
                  TEXT),
        TEXT, JSON)


@st.composite
def documents(draw: st.DrawFn, grid: str, author: str) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)  # not even a document
    doc_type = draw(st.sampled_from(sorted(TEMPLATES)))
    who = author if draw(st.integers(0, 5)) else "someone.else"
    where = grid if draw(st.integers(0, 5)) else "othergrid"
    key = draw(st.one_of(st.integers(0, 10_000).map(str), st.sampled_from(["1", "seed"])))
    doc = TEMPLATES[doc_type](where, who, key)
    fields = sorted(REGISTRY.validators[(doc_type, 1)].schema["properties"])
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "set", "drop", "extra", "special", "id",
                                       "attachments"]))
        if action == "set":
            field = draw(st.sampled_from(fields))
            doc[field] = draw(field_values(doc_type, field))
        elif action == "drop" and doc:
            doc.pop(draw(st.sampled_from(sorted(doc))), None)
        elif action == "extra":
            doc[draw(st.sampled_from(["role", "verified", "received_at", "resolved_by"])
                     | TEXT)] = draw(JSON)
        elif action == "special":
            doc[draw(st.sampled_from(SPECIALS))] = draw(SPECIAL_VALUES)
        elif action == "attachments":
            doc["_attachments"] = draw(ATTACHMENTS)
        else:
            doc["_id"] = draw(ids(grid))
    return doc


def encode(body: Any) -> bytes:
    # ensure_ascii: a lone surrogate travels as its JSON escape, as a phone would send it
    return json.dumps(body).encode()


@st.composite
def couch_requests(draw: st.DrawFn, scene: Scene, who: str) -> tuple[str, str, bytes | None]:
    """(method, path with its query, body) for one request to the grid's database."""
    db = f"/couch/grid-{scene.grid if draw(st.integers(0, 7)) else scene.other_grid}"
    docs = st.lists(documents(scene.grid, who), max_size=4)
    revs = st.lists(st.one_of(st.sampled_from([scene.record_rev, "1-abc", "2-" + "f" * 32]),
                              JSON), max_size=3)
    kind = draw(st.sampled_from(["bulk", "bulk", "put", "post", "revs_diff", "bulk_get",
                                 "changes", "all_docs", "get", "delete", "raw"]))
    query = draw(st.dictionaries(st.sampled_from(
        ["since", "limit", "feed", "style", "include_docs", "conflicts", "filter", "doc_ids",
         "heartbeat", "timeout", "keys", "key", "startkey", "endkey", "skip", "descending",
         "rev", "revs", "open_revs", "latest", "new_edits", "attachments", "x"]),
        st.one_of(QTEXT, st.sampled_from(["0", "1", "true", "false", "normal", "longpoll",
                                          "_doc_ids", "all_docs", '["a"]', '"a"', "all"])),
        max_size=3))
    if query.get("feed") == "longpoll":
        query["timeout"] = "1000"  # a held feed would only make the fuzzer wait
    qs = ("?" + urlencode(query)) if query else ""
    if kind == "bulk":
        body: Any = draw(st.one_of(
            st.fixed_dictionaries({"docs": docs}, optional={"new_edits": st.one_of(
                st.booleans(), JSON)}), JSON))
        return "POST", f"{db}/_bulk_docs", encode(body)
    if kind in ("put", "get", "delete"):
        doc_id = draw(ids(scene.grid))
        doc_id = doc_id[:300] if isinstance(doc_id, str) else doc_id
        text = doc_id if isinstance(doc_id, str) else json.dumps(doc_id)
        # a lone surrogate becomes bytes that are not UTF-8 (%ED%A0%80), as a broken client's
        segment = quote(text.encode("utf-8", "surrogatepass"), safe=":")
        method = {"put": "PUT", "get": "GET", "delete": "DELETE"}[kind]
        body = draw(documents(scene.grid, who)) if kind == "put" else None
        return method, f"{db}/{segment}{qs}", None if body is None else encode(body)
    if kind == "post":
        return "POST", db, encode(draw(documents(scene.grid, who)))
    if kind == "revs_diff":
        body = draw(st.one_of(st.dictionaries(st.one_of(ids(scene.grid).filter(
            lambda i: isinstance(i, str)), st.just(scene.record)), revs, max_size=3), JSON))
        return "POST", f"{db}/_revs_diff", encode(body)
    if kind == "bulk_get":
        item = st.fixed_dictionaries({"id": st.one_of(st.just(scene.record), ids(scene.grid))},
                                     optional={"rev": st.one_of(
                                         st.just(scene.record_rev), JSON)})
        body = draw(st.one_of(st.fixed_dictionaries({"docs": st.lists(item, max_size=3)}),
                              JSON))
        return "POST", f"{db}/_bulk_get{qs}", encode(body)
    if kind == "changes":
        method = draw(st.sampled_from(["GET", "POST"]))
        body = draw(st.one_of(st.fixed_dictionaries({"doc_ids": st.lists(ids(scene.grid),
                                                                         max_size=3)}), JSON))
        return method, f"{db}/_changes{qs}", encode(body) if method == "POST" else None
    if kind == "all_docs":
        method = draw(st.sampled_from(["GET", "POST"]))
        body = draw(st.one_of(st.fixed_dictionaries({"keys": st.lists(ids(scene.grid),
                                                                      max_size=3)}), JSON))
        return method, f"{db}/_all_docs{qs}", encode(body) if method == "POST" else None
    # raw: a path and body of bytes
    tail = draw(st.text(st.sampled_from("abc_/.%2F:-~ 𠮷?&=#"), max_size=20))
    tail = quote(tail, safe="/%:?&=") if draw(st.booleans()) else tail
    return (draw(st.sampled_from(["GET", "PUT", "POST", "DELETE", "COPY", "PATCH"])),
            f"{db}/{tail}", draw(st.binary(max_size=40)))


async def send(scene: Scene, who: str, method: str, path: str, body: bytes | None) -> int:
    headers = basic(who)
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        url = yarl.URL(path, encoded=True)
    except ValueError:
        return 0  # not a URL any client could send
    if any(c in path for c in " \t\r\n"):
        return 0  # nor a request line: aiohttp's parser answers it (plain text), not the app
    resp = await scene.client.request(method, url, data=body, headers=headers)
    raw = await resp.read()
    if ((not path.isascii() or len(method) + len(path) + 10 > MAX_REQUEST_LINE)
            and resp.status in (400, 414) and not raw.startswith(b"{")):
        # Not valid HTTP (raw non-ASCII in the request line, as no client sends it; a request
        # line past aiohttp's limit): its parser refuses it in plain text before the app.
        return resp.status
    assert resp.status < 500, (method, path, body and body[:300], resp.status, raw[:500])
    if resp.status >= 400 and method != "HEAD" and path.startswith("/api/open311/"):
        answer = json.loads(raw)  # GeoReport v2's own shape: [{code, description}]
        assert isinstance(answer, list) and all(
            isinstance(a.get("code"), int) and isinstance(a.get("description"), str)
            for a in answer), (method, path, answer)
    elif resp.status >= 400 and method != "HEAD":
        answer = json.loads(raw)
        assert isinstance(answer.get("error"), str) and isinstance(answer.get("reason"), str), (
            method, path, answer)
    endpoint = next((part for part in path.split("?")[0].split("/") if part.startswith("_")),
                    path.split("?")[0].rsplit("/", 1)[-1] if path.startswith("/api/") else "doc")
    event(f"{method} {endpoint} {resp.status}")  # --hypothesis-show-statistics lists them
    return resp.status


# -- the properties ---------------------------------------------------------------------------

@fuzz(160)
@given(data=st.data())
async def test_couch_as_a_worker(scene: Scene, data: st.DataObject) -> None:
    batch = data.draw(st.lists(couch_requests(scene, scene.worker), min_size=1, max_size=3))
    for method, path, body in batch:
        await send(scene, scene.worker, method, path, body)
    await scene.city.run(scene.check_grid)


@fuzz(80)
@given(data=st.data())
async def test_couch_as_a_supervisor(scene: Scene, data: st.DataObject) -> None:
    method, path, body = data.draw(couch_requests(scene, scene.boss))
    await send(scene, scene.boss, method, path, body)
    await scene.city.run(scene.check_grid)


SEED_REV = "seed-rev:now"


@st.composite
def attachment_writes(draw: st.DrawFn, scene: Scene) -> tuple[str, str, bytes]:
    """Records otherwise valid, whose `_attachments` are drawn (names, stubs, data, types),
    in the three ways a phone writes: `_bulk_docs` with new_edits true or false, and `PUT`.
    Some are edits of the stored record with a photo, keeping it by stub or not (its current
    revision is put in for SEED_REV when the request is sent)."""
    docs: list[Any] = []
    new_edits = draw(st.booleans())
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:  # an edit of the stored record with a photo
            doc = {**visit(scene.grid, scene.worker, "seed"), "_rev": SEED_REV}
            name = draw(st.one_of(st.just("door.png"), ATTACHMENT_NAMES))
            stub = {"content_type": "image/png", "stub": True, "digest": md5_digest(PNG),
                    "length": len(PNG), "revpos": 1}
            doc["_attachments"] = draw(st.one_of(
                st.just({name: stub}), ATTACHMENTS,
                st.dictionaries(ATTACHMENT_NAMES, ATTACHMENT, max_size=2).map(
                    lambda more, n=name, s=stub: {n: s, **more})))
        else:
            doc_type = draw(st.sampled_from(["household_visit", "household_visit",
                                             "screening", "household"]))
            doc = TEMPLATES[doc_type](scene.grid, scene.worker,
                                      draw(st.integers(0, 10_000).map(str)))
            doc["_attachments"] = draw(ATTACHMENTS)
        if not new_edits:
            doc["_rev"] = draw(st.sampled_from(["1-", "2-", "3-"])) + draw(
                st.text("0123456789abcdef", min_size=32, max_size=32))
        docs.append(doc)
    db = f"/couch/grid-{scene.grid}"
    if draw(st.integers(0, 3)) == 0:
        doc = docs[0]
        return "PUT", f"{db}/{quote(doc['_id'], safe=':')}", encode(doc)
    return "POST", f"{db}/_bulk_docs", encode({"docs": docs, "new_edits": new_edits})


@fuzz(60)
@given(data=st.data())
async def test_attachments_as_a_worker(scene: Scene, data: st.DataObject) -> None:
    """The shapes the store died on (issue 13, items 1 and 2), drawn on purpose: the store
    never fails (a dead store answers 503), and what is stored has names a phone can fetch
    and types its form allows."""
    method, path, body = data.draw(attachment_writes(scene))
    seed_rev = (await scene.city.get(scene.grid, scene.record))["_rev"]
    await send(scene, scene.worker, method, path,
               body.replace(json.dumps(SEED_REV).encode(), json.dumps(seed_rev).encode()))
    await scene.city.run(scene.check_grid)


# -- deletions, histories and checkpoints ----------------------------------------------------

HASHES = st.one_of(st.text("0123456789abcdef", min_size=32, max_size=32),
                   st.sampled_from(["a" * 32, "b" * 32]))
BAD_HASHES = st.one_of(st.sampled_from(["", "../x", "a" * 65, "a-b", "a\n", "𠮷"]), JSON)
HISTORY_FLAWS = ["", "", "", "start+1", "start-1", "start text", "start fraction", "start bool",
                 "bad id", "first id", "too many", "more than start", "no ids", "extra member",
                 "not an object", "deep"]


@st.composite
def histories(draw: st.DrawFn, rev: Any) -> Any:
    """A `_revisions` for `rev`: mostly one that agrees with it, else one flaw of each kind
    the gateway must refuse."""
    gen, digest = 1, "a" * 32
    if isinstance(rev, str) and "-" in rev and rev.split("-", 1)[0].isdigit():
        gen, digest = int(rev.split("-", 1)[0]), rev.split("-", 1)[1]
    ids = [digest, *draw(st.lists(HASHES, max_size=max(0, min(gen - 1, 4))))]
    history: Any = {"start": gen, "ids": ids}
    flaw = draw(st.sampled_from(HISTORY_FLAWS))
    if flaw == "start+1":
        history["start"] = gen + 1
    elif flaw == "start-1":
        history["start"] = gen - 1
    elif flaw == "start text":
        history["start"] = str(gen)
    elif flaw == "start fraction":
        history["start"] = gen + 0.0
    elif flaw == "start bool":
        history["start"] = True
    elif flaw == "bad id":
        history["ids"] = [*ids, draw(BAD_HASHES)]
    elif flaw == "first id":
        history["ids"] = [draw(HASHES), *ids[1:]]
    elif flaw == "too many":
        history = {"start": 1001, "ids": [digest, *["b" * 32] * 1000]}
    elif flaw == "more than start":
        history["ids"] = [*ids, *(["c" * 32] * (gen + 1))]
    elif flaw == "no ids":
        history["ids"] = []
    elif flaw == "extra member":
        history[draw(TEXT)] = draw(JSON)
    elif flaw == "not an object":
        history = draw(JSON)
    elif flaw == "deep":
        history["ids"] = [*ids, nested(draw(st.integers(50, 400)))]
    event(f"_revisions {flaw or 'agrees'}")
    return history


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def revisions(scene: Scene) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from([scene.record_rev, "1-" + "a" * 32, "2-" + "f" * 32,
                                      "0-1", "3-" + "a" * 32 + "\n"]),
                     st.builds(lambda g, h: f"{g}-{h}", st.integers(1, 1200), HASHES), JSON)


@st.composite
def tombstones(draw: st.DrawFn, scene: Scene, who: str) -> Any:
    """A deletion: of the scene's records, the worker's own, another grid's or ids never seen;
    bare, or with a body (fields of the record, special members, megabytes, deep nesting)."""
    doc_id = draw(st.one_of(st.sampled_from([scene.record, f"household:{scene.grid}-conflict",
                                             f"household_visit:{scene.other_grid}-1",
                                             f"building:{scene.grid}-1",
                                             f"verdict:household_visit:{scene.grid}-seed:1",
                                             f"resolution:{scene.record}:1", "nosuchtype:1"]),
                            ids(scene.grid)))
    doc: dict[str, Any] = {"_id": doc_id, "_deleted": draw(st.one_of(
        st.just(True), st.just(True), st.just(True), JSON))}
    if draw(st.integers(0, 3)):
        doc["_rev"] = draw(revisions(scene))
    if draw(st.booleans()):
        doc["_revisions"] = draw(histories(doc.get("_rev")))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.one_of(st.sampled_from(
            ["type", "grid", "created_by", "notes", "resolved_by", "_attachments", "_conflicts",
             "_local_seq", "_revs_info", "_x"]), TEXT))
        doc[name] = draw(st.one_of(JSON, st.just("x" * 150_000),
                                   st.integers(50, 400).map(nested)))
    return doc


@st.composite
def local_requests(draw: st.DrawFn, scene: Scene) -> tuple[str, str, bytes | None]:
    """A checkpoint read, write or deletion, with the store's revisions (0-N) or others."""
    name = draw(st.one_of(st.sampled_from(["ck", "ck", "ck2", "a~b", "x%2Fy"]), QTEXT.map(
        lambda t: quote(t, safe=""))))
    method = draw(st.sampled_from(["GET", "HEAD", "PUT", "PUT", "PUT", "DELETE", "POST",
                                   "COPY"]))
    rev = st.one_of(st.sampled_from(["0-1", "0-2", "0-3", "1-" + "a" * 32, "0-0", ""]), QTEXT)
    query = f"?rev={quote(draw(rev), safe='')}" if draw(st.integers(0, 2)) == 0 else ""
    body = None
    if method in ("PUT", "POST"):
        doc = draw(st.one_of(st.dictionaries(TEXT, JSON, max_size=3), JSON))
        if isinstance(doc, dict):
            for member in draw(st.lists(st.sampled_from(
                    ["_rev", "_rev", "_id", "_deleted", "_attachments", "_revisions"]),
                    max_size=2)):
                doc[member] = draw(st.one_of(rev, ATTACHMENTS, JSON)
                                   if member != "_rev" else rev)
        body = draw(st.sampled_from([encode, raw_encode]))(doc)
    tail = "" if draw(st.integers(0, 9)) else "/a.png"  # an attachment of a checkpoint
    return method, f"/couch/grid-{scene.grid}/_local/{name}{tail}{query}", body


def raw_encode(body: Any) -> bytes:
    """UTF-8 as a broken encoder writes it: a lone surrogate as its raw bytes (ED A0 80)."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def lifecycle_requests(draw: st.DrawFn, scene: Scene, who: str) -> tuple[str, str, bytes | None]:
    db = f"/couch/grid-{scene.grid}"
    kind = draw(st.sampled_from(["tombstones", "tombstones", "replicated", "replicated",
                                 "delete", "put", "local", "local"]))
    wire = draw(st.sampled_from([encode, encode, raw_encode]))
    if kind == "tombstones":
        docs = draw(st.lists(st.one_of(tombstones(scene, who), documents(scene.grid, who)),
                             min_size=1, max_size=4))
        return "POST", f"{db}/_bulk_docs", wire({"docs": docs, "new_edits": draw(
            st.booleans())})
    if kind == "replicated":
        docs = []
        for doc in draw(st.lists(documents(scene.grid, who), min_size=1, max_size=4)):
            if isinstance(doc, dict):
                doc["_rev"] = draw(revisions(scene))
                if draw(st.integers(0, 4)):
                    doc["_revisions"] = draw(histories(doc["_rev"]))
            docs.append(doc)
        return "POST", f"{db}/_bulk_docs", wire({"docs": docs, "new_edits": False})
    if kind == "delete":
        doc = draw(tombstones(scene, who))
        doc_id = doc["_id"][:300] if isinstance(doc["_id"], str) else "x"
        rev = doc["_rev"][:300] if isinstance(doc.get("_rev"), str) else ""
        return ("DELETE", f"{db}/{quote(doc_id.encode('utf-8', 'surrogatepass'), safe=':')}"
                f"?rev={quote(rev.encode('utf-8', 'surrogatepass'), safe='')}", None)
    if kind == "put":
        doc = draw(tombstones(scene, who))
        doc_id = doc["_id"][:300] if isinstance(doc["_id"], str) else "x"
        return ("PUT", f"{db}/{quote(doc_id.encode('utf-8', 'surrogatepass'), safe=':')}",
                wire(doc))
    return draw(local_requests(scene))


@fuzz(160)
@given(data=st.data())
async def test_deletions_histories_and_checkpoints(scene: Scene, data: st.DataObject) -> None:
    """Tombstones (bare, with bodies, of others' records, of ids never seen), replicated
    histories that agree or not, DELETE, and `_local` checkpoints, as a worker or a supervisor:
    besides what every test checks, no tombstone keeps a body, nothing stored holds U+FFFD, and
    a checkpoint written is read back at the revision the write answered."""
    who = data.draw(st.sampled_from([scene.worker, scene.worker, scene.boss]))
    for method, path, body in data.draw(st.lists(lifecycle_requests(scene, who), min_size=1,
                                                 max_size=3)):
        status = await send(scene, who, method, path, body)
        if "/_local/" in path and method == "PUT" and status == 201:
            url = yarl.URL(path.split("?")[0], encoded=True)
            resp = await scene.client.get(url, headers=basic(who))
            assert resp.status == 200, (path, await resp.text())
            stored = await resp.json()
            assert stored["_rev"].startswith("0-"), stored
            assert "_attachments" not in stored, stored
    await scene.city.run(scene.check_grid)


def api_queries() -> st.SearchStrategy[dict[str, str]]:
    names = ["grid", "community", "street", "level", "code", "what", "format", "unmask", "type",
             "state", "worker", "from", "to", "id", "x"]
    values = st.one_of(QTEXT, st.sampled_from(
        ["1", "city", "district", "street", "community", "grid", "households", "persons",
         "aggregates", "csv", "xlsx", "household_visit", "approved", "has_issues", "received",
         "2026-01-01", "330802", "330802001"]))
    return st.dictionaries(st.sampled_from(names), values, max_size=4)


@st.composite
def api_requests(draw: st.DrawFn, scene: Scene,
                 get_paths: list[str]) -> tuple[str, str, bytes | None]:
    kind = draw(st.sampled_from(["decide", "verdicts", "verdicts", "get", "get"]))
    own = st.just(scene.grid)
    grid = st.one_of(own, own, own, own, st.just(scene.other_grid), JSON)
    if kind == "get":
        query = draw(api_queries())
        for name in ("grid", "code"):  # often the scene's own, so the deep paths are reached
            if name in query and draw(st.booleans()):
                query[name] = scene.grid if name == "grid" else scene.community
        qs = ("?" + urlencode(query)) if query else ""
        return "GET", draw(st.sampled_from(get_paths)) + qs, None
    if kind == "decide":
        decision = st.fixed_dictionaries(
            {"field": st.one_of(st.sampled_from(["phone", "remarks", "created_by", "_deleted",
                                                 "grid", "type"]), JSON)},
            optional={"value": st.one_of(st.sampled_from(["13905700003", "丙", "𠮷"]), JSON)})
        shaped = st.fixed_dictionaries(
            {"grid": grid, "id": st.one_of(st.just(scene.conflict), JSON),
             "decisions": st.one_of(st.lists(decision, max_size=3), JSON)})
        body = draw(st.one_of(shaped, shaped, JSON))
        return "POST", "/api/conflicts/decide", encode(body)
    mostly = st.just  # three branches of four: the valid value, so verdicts get written too
    item = st.fixed_dictionaries(
        {"record": st.one_of(mostly(scene.record), mostly(scene.record), mostly(scene.record),
                             ids(scene.grid)),
         "record_rev": st.one_of(mostly(scene.record_rev), mostly(scene.record_rev), JSON),
         "decision": st.one_of(st.sampled_from(["approved", "has_issues", "rejected"]),
                               mostly("approved"), mostly("approved"), JSON)},
        optional={"comment": st.one_of(st.just("请核对"), TEXT, JSON),
                  "created_by": JSON, "grid": JSON, "_id": JSON, "_deleted": JSON})
    items = st.lists(item, min_size=1, max_size=3)
    shaped = st.fixed_dictionaries({"grid": grid, "verdicts": st.one_of(items, items, JSON)})
    body = draw(st.one_of(shaped, shaped, JSON))
    return "POST", "/api/review/verdicts", encode(body)


@fuzz(160)
@given(data=st.data())
async def test_api_as_a_supervisor_and_a_worker(scene: Scene, data: st.DataObject) -> None:
    get_paths = sorted({r.resource.canonical for r in scene.client.app.router.routes()
                        if r.method == "GET" and r.resource is not None
                        and r.resource.canonical.startswith("/api/")})
    who = data.draw(st.sampled_from([scene.boss, scene.boss, scene.boss, scene.worker]))
    method, path, body = data.draw(api_requests(scene, get_paths))
    status = await send(scene, who, method, path, body)
    if who == scene.worker and path.split("?")[0] not in (
            "/api/me", "/api/openapi.json", "/api/residents/communities", "/api/health",
            "/api/notices/to-visit"  # the worker's own follow-up list
            ) and not path.startswith(("/api/votes", "/api/deliberation", "/api/reports",
                                       "/api/open311", "/api/volunteer", "/api/party")):
        # votes: a worker records paper ballots; deliberation: raises topics as the grid branch;
        # reports (and their Open311 face): files and handles what is routed to the grid;
        # volunteering and party branches: a worker may publish tasks, read the branch list
        assert status in (0, 400, 403, 415), (path, status)  # the supervisors' API, refused
    await scene.city.run(scene.check_grid)


# -- query parameters of every kind, and _changes filters (issue 13, items 9 and 12) ----------

# Values of every kind a parameter takes, good and bad: booleans, counts, JSON values and lists,
# revisions, seqs, the few words some take, and `ddoc/name`s that exist, are missing, or throw.
PARAM_VALUES = st.one_of(
    st.sampled_from(["true", "false", "TRUE", "maybe", "", "0", "1", "-1", "2", "1e9", "1.5",
                     "999999999", "9999999999", "abc", "all", '"all"', '["1-abc"]', "[1]",
                     '["x"]', "[]", "{}", '"a"', "null", "now", '"0"', "0-x", "1-abc",
                     "main_only", "all_docs", "normal", "longpoll", "continuous", "ok",
                     "update_after", "lazy", "_doc_ids", "_selector", "_view", "_design",
                     "linli/by_type", "linli/nope", "nope/f", "admin/throws", "a/b/c",
                     "linli/by_type", "linli/households_by_address", "household"]),
    QTEXT, JSON.map(lambda v: json.dumps(v, ensure_ascii=False)[:200]))  # URLs stay short
PARAM_NAMES = [*sorted(qparams.KINDS), "selector", "record_type", "x"]
FIELDS = ["type", "persons_present", "address", "address.compound", "tags", "a.b", "", "_id",
          "$or", "$and", "$nor", "$not", "$regex", "$bogus"]
OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$exists", "$type", "$in", "$nin",
             "$all", "$size", "$mod", "$regex", "$elemMatch", "$allMatch", "$keyMapMatch",
             "$not", "$or", "$and", "$text", "$where", "$beginsWith"]
OPERAND = st.one_of(JSON, st.sampled_from([[2, 1], [0, 1], "number", "string", "foo", "^(a+)+$",
                                           "(", [None, 1], True, 3]))
SELECTORS = st.recursive(
    st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), st.one_of(
        OPERAND, st.dictionaries(st.sampled_from(OPERATORS), OPERAND, max_size=2)),
        max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3)),
    max_leaves=10)


@st.composite
def query_requests(draw: st.DrawFn, scene: Scene) -> tuple[str, str, bytes | None]:
    """A request to an endpoint that forwards query parameters, with parameters of any kind
    (a changes feed: with any filter, and a selector in its body)."""
    db = f"/couch/grid-{scene.grid}"
    endpoint = draw(st.sampled_from(["doc", "all_docs", "all_docs_post", "view", "changes",
                                     "changes", "changes_post", "changes_post", "bulk_get",
                                     "attachment", "uuids", "put"]))
    query = draw(st.lists(st.tuples(st.sampled_from(PARAM_NAMES), PARAM_VALUES), max_size=4))
    if endpoint.startswith("changes") and draw(st.booleans()):
        query.append(("filter", draw(st.sampled_from(
            ["_selector", "_selector", "_view", "_doc_ids", "linli/by_type", "linli/nope",
             "admin/throws", "nope/f", "_bogus", "bad"]))))
    if any(name == "feed" for name, _ in query):
        query.append(("timeout", "1000"))  # a held feed would only make the fuzzer wait
    # a lone surrogate becomes bytes that are not UTF-8 (%ED%A0%80), as a broken client's
    qs = "?" + urlencode(query, errors="surrogatepass") if query else ""
    body: Any = None
    path = {"doc": f"{db}/{scene.record}", "all_docs": f"{db}/_all_docs",
            "all_docs_post": f"{db}/_all_docs", "view": f"{db}/_design/linli/_view/by_type",
            "changes": f"{db}/_changes", "changes_post": f"{db}/_changes",
            "bulk_get": f"{db}/_bulk_get", "attachment": f"{db}/{scene.record}/door.png",
            "uuids": "/couch/_uuids", "put": f"{db}/{scene.record}"}[endpoint]
    method = "GET"
    if endpoint == "changes_post":
        method = "POST"
        body = draw(st.one_of(st.fixed_dictionaries({"selector": SELECTORS}),
                              st.fixed_dictionaries({"doc_ids": st.lists(ids(scene.grid),
                                                                         max_size=3)}), JSON))
    elif endpoint == "all_docs_post":
        method, body = "POST", draw(st.one_of(st.fixed_dictionaries(
            {"keys": st.lists(ids(scene.grid), max_size=3)}), JSON))
    elif endpoint == "bulk_get":
        method, body = "POST", {"docs": [{"id": scene.record}]}
    elif endpoint == "put":
        method, body = "PUT", visit(scene.grid, scene.worker, "seed", persons_present=2)
    return method, path + qs, None if body is None else encode(body)


@fuzz(160)
@given(data=st.data())
async def test_query_parameters_and_filters(scene: Scene, store: EmbeddedStore,
                                            data: st.DataObject) -> None:
    """Whatever the parameters and filters, never a 5xx (the store's 500s and its crashes on
    a filter included): the store is the same process after every request."""
    if await scene.city.get(scene.grid, "_design/admin") is None:  # a filter that throws
        await scene.city.save(scene.grid, {
            "_id": "_design/admin",
            "filters": {"throws": "function (doc) { return doc.address.compound === 'x'; }"},
            "views": {"throws": {"map": "function (doc) { emit(doc.address.room); }"}}})
    pid = store.process.pid if store.process else None
    who = data.draw(st.sampled_from([scene.worker, scene.worker, scene.boss]))
    method, path, body = data.draw(query_requests(scene))
    await send(scene, who, method, path, body)
    assert store.process is not None and store.process.poll() is None
    assert store.process.pid == pid, (method, path, body)
    await scene.city.run(scene.check_grid)


SMALL_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                                    st.sampled_from(["", "a", "household", "completed", "𠮷"])),
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.sampled_from(["a", "b", "$and"]), inner,
                                            max_size=2), max_leaves=5)
OPERANDS = {
    "$eq": SMALL_JSON, "$ne": SMALL_JSON, "$gt": SMALL_JSON, "$gte": SMALL_JSON,
    "$lt": SMALL_JSON, "$lte": SMALL_JSON, "$exists": st.one_of(st.booleans(), SMALL_JSON),
    "$type": st.sampled_from(["null", "boolean", "number", "string", "array", "object", "x"]),
    "$in": st.lists(SMALL_JSON, max_size=3), "$nin": st.lists(SMALL_JSON, max_size=3),
    "$all": st.one_of(st.lists(SMALL_JSON, max_size=3), SMALL_JSON),
    "$size": st.integers(-1, 3), "$mod": st.lists(st.integers(-2, 2), max_size=3),
    "$regex": st.just("^a"), "$elemMatch": st.just({"$eq": 1}),
}
PATHS = ["type", "persons_present", "outcome", "address", "address.compound", "registry.source",
         "_id", "_deleted", "views", "filters.by_type", "phone", "x.y.z", "household"]
CONDITIONS = st.one_of(
    SMALL_JSON,
    st.sampled_from(sorted(OPERANDS)).flatmap(lambda op: OPERANDS[op].map(lambda v: {op: v})),
    st.dictionaries(st.sampled_from(sorted(OPERANDS)), SMALL_JSON, min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["compound", "building", "$not"]), SMALL_JSON, max_size=2))
GRAMMAR_SELECTORS = st.deferred(lambda: st.one_of(
    st.dictionaries(st.sampled_from(PATHS), CONDITIONS, max_size=3),
    st.builds(lambda op, parts: {op: parts}, st.sampled_from(["$or", "$and", "$nor"]),
              st.lists(GRAMMAR_SELECTORS, min_size=1, max_size=3)),
    st.builds(lambda part: {"$not": part}, GRAMMAR_SELECTORS),
    st.builds(lambda a, b: {**a, **b}, st.dictionaries(st.sampled_from(PATHS), CONDITIONS,
                                                        max_size=2), GRAMMAR_SELECTORS)))


@fuzz(160)
@given(data=st.data())
async def test_selectors_never_reach_the_store_unsafe(scene: Scene, store: EmbeddedStore,
                                                      data: st.DataObject) -> None:
    """Selectors drawn from Mango's grammar, mostly well-formed, over the grid's records,
    design documents and tombstones: each is run (200) or refused (400), and the store, which
    dies on a selector it cannot read, is the same process afterwards."""
    pid = store.process.pid if store.process else None
    selector = data.draw(GRAMMAR_SELECTORS)
    resp = await scene.client.post(
        f"/couch/grid-{scene.grid}/_changes?filter=_selector&include_docs=true&style=all_docs",
        json={"selector": selector}, headers=basic(scene.worker))
    answer = await resp.json()
    assert resp.status in (200, 400), (selector, resp.status, answer)
    event(f"selector {resp.status}")
    assert store.process is not None and store.process.poll() is None
    assert store.process.pid == pid, selector
