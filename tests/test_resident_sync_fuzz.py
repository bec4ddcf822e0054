"""The resident endpoint under an attacker's inputs (issue 15: residents are many and
untrusted): every route of `RESIDENT_ROUTES`, any method, ids of the neighbour's records, of
nothing, broken (lone surrogates, control characters, slashes, huge), query parameters of every
kind and bodies of any JSON. Nothing may crash (no 5xx; every refusal in CouchDB's shape),
nothing of the neighbour's household may appear, and nothing is ever stored."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
import yarl
from aiohttp.test_utils import TestClient
from conftest import City, basic
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz import JSON, QTEXT, SURROGATES, fuzz
from test_resident_sync import two_neighbours
from test_residents_signup import PASSWORD, Community

from server.web import routing

NEIGHBOUR = ("李娜", "13900000002", '"302"')  # what the neighbour's records hold
PARAMS = ["since", "limit", "feed", "style", "include_docs", "conflicts", "filter", "doc_ids",
          "heartbeat", "timeout", "keys", "key", "startkey", "endkey", "skip", "descending",
          "rev", "revs", "open_revs", "latest", "attachments", "inclusive_end", "x"]
WORDS = ["0", "1", "-1", "true", "false", "normal", "longpoll", "continuous", "_doc_ids",
         "all_docs", '["a"]', '"a"', "all", "now", '"household:"', "999999999", "0-x",
         "1-abc"]


@pytest.fixture
async def neighbours(client: TestClient, city: City,
                     caplog: pytest.LogCaptureFixture) -> tuple[TestClient, Community, str]:
    place, wang, _ = await two_neighbours(client, city, caplog)
    return client, place, wang


@st.composite
def requests(draw: st.DrawFn, place: Community) -> tuple[str, str, bytes | None]:
    route = draw(st.sampled_from(routing.RESIDENT_ROUTES))
    doc_id = draw(st.one_of(
        st.sampled_from([place.household(2), f"person:{place.grid}-1", place.household(1),
                         "linli-sync", f"household:{place.grid}-9999", "_design/linli",
                         "a/b", "..", "%2F", "x" * 400]),
        st.text(max_size=20), SURROGATES))
    segment = quote(doc_id.encode("utf-8", "surrogatepass"), safe=":")
    parts = [p for p in route.name.split("/") if p]
    path = "/couch/" + "/".join(
        "linli-resident" if p == "{db}" else p.replace("{doc}", segment).replace(
            "{id}", segment).replace("{attachment}", segment) for p in parts)
    query = draw(st.dictionaries(st.sampled_from(PARAMS),
                                 st.one_of(QTEXT, st.sampled_from(WORDS)), max_size=4))
    if query.get("feed") == "longpoll":
        query["timeout"] = "1000"  # a held feed would only make the fuzzer wait
    method = draw(st.sampled_from([*route.methods, "GET", "POST", "PUT", "DELETE", "COPY"]))
    listed = st.lists(st.one_of(st.just(place.household(2)), st.text(max_size=8)), max_size=3)
    body = draw(st.one_of(JSON, st.fixed_dictionaries({}, optional={
        "docs": st.lists(st.one_of(st.fixed_dictionaries({"id": st.one_of(
            st.just(place.household(2)), JSON)}, optional={"rev": JSON}), JSON), max_size=3),
        "keys": listed, "doc_ids": listed, "held": listed, "new_edits": JSON,
        place.household(2): st.lists(st.sampled_from(["1-abc", "2-x"]), max_size=2)})))
    data = json.dumps(body).encode() if method in ("POST", "PUT") else None
    return method, path + ("?" + urlencode(query) if query else ""), data


@pytest.mark.slow  # generated inputs
@fuzz(150)
@given(data=st.data())
async def test_nothing_a_resident_sends_crashes_leaks_or_stores(
        neighbours: tuple[TestClient, Community, str], city: City,
        data: st.DataObject) -> None:
    client, place, wang = neighbours
    before = await city.records(place.grid)
    method, path, body = data.draw(requests(place))
    headers = {**basic(wang, PASSWORD), "Content-Type": "application/json"}
    if any(c in path for c in " \t\r\n"):
        return  # not a request line any client sends: aiohttp's parser answers it
    resp = await client.request(method, yarl.URL(path, encoded=True), data=body,
                                headers=headers)
    raw = await resp.read()
    if not path.isascii() and resp.status == 400 and not raw.startswith(b"{"):
        return  # raw non-ASCII in the request line: refused by the HTTP parser, not the app
    assert resp.status < 500, (method, path, body, resp.status, raw[:300])
    text = raw.decode("utf-8", "replace")
    assert not [s for s in NEIGHBOUR if s in text], (method, path, text[:300])
    if resp.status >= 400 and method != "HEAD":
        answer = json.loads(raw)
        assert isinstance(answer.get("error"), str) and isinstance(answer.get("reason"), str)
    assert await city.records(place.grid) == before
