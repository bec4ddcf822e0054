"""Letters to a member's workplace (函告抄告, issue 17) on the real app and store: a supervisor's
act, append-only, read only by supervisors of the member's home, the admin and the secretary
of the member's branch; the member, other residents, workers and other branches learn nothing
on any route (not even that a letter exists), and every write and read is an audit line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import City, basic, wait_for_user
from test_party import P, branch, call, confirmed, secretary
from test_volunteering import phone, ready_town

from server.domain.scope import PARTY_DB

CONDUCT = "长期拒绝参加支部组织生活（函告测试）"


def letter(member: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"member": member, "workplace": "某某科技有限公司", "conduct": CONDUCT,
                            "key": "letter-key-0001"}
    body.update(changes)
    return body


async def stored_letters(city: City) -> list[str]:
    def ids() -> list[str]:
        return [i for i in city.couch[PARTY_DB] if i.startswith("party_letter:")] if (
            PARTY_DB in city.couch) else []
    return await city.run(ids)


async def test_letters_are_written_by_supervisors_and_read_only_by_their_readers(
        client: TestClient, city: City, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="linli.audit")
    town = await ready_town(client, city)
    code, other = await branch(client, city, town), await branch(client, city, town)
    sec = await confirmed(client, city, town, town.ra, code)
    other_sec = await secretary(client, city, other)
    outsider = await city.user("supervisor", communities=[town.c3])
    await wait_for_user(client, outsider)
    before = await stored_letters(city)

    # Bad input of every class, by label; nothing stored.
    cases: list[tuple[Any, str]] = [
        (letter(town.ra, created_by=town.sup1), "由服务器填写"),
        (letter(town.ra, branch=other), "由服务器填写"),
        (letter(town.ra, written_at="2020-01-01T00:00:00Z"), "由服务器填写"),
        (letter(town.ra, workplace=""), "工作单位"), (letter(town.ra, workplace=["x"]), "工作单位"),
        (letter(town.ra, conduct="\ud800"), "情况说明"),
        (letter(town.ra, conduct="长" * 2001), "情况说明"),
        (letter(town.ra, conduct={"a": {"b": 1}}), "情况说明"),
        (letter(town.ra, key="short"), "函告编号"), (letter(town.ra, key="../x/../y"), "函告编号"),
        (letter(["x"]), "“党员”应为党员的账号"), (letter(town.ra, extra=1), "不允许的字段"),
    ]
    for body, words in cases:
        got, answer = await call(client, town.sup1, "POST", f"{P}/letters", body)
        assert got == 400 and words in answer["reason"] and " / " in answer["reason"], (
            body, answer)
    # Not a writer: the member, a neighbour, a worker, a secretary (even the member's).
    for user in (town.ra, town.rb, town.worker1, sec):
        got, answer = await call(client, user, "POST", f"{P}/letters", letter(town.ra))
        assert got == 403 and set(answer) == {"error", "reason"}, (user, answer)
    # A member out of scope, one not declared, one made up: answered alike.
    nobody = set()
    for user, member in ((outsider, town.ra), (town.sup1, town.rb), (town.sup1, "nobody0here")):
        got, answer = await call(client, user, "POST", f"{P}/letters", letter(member))
        assert got == 404, answer
        nobody.add(answer["reason"])
    assert len(nobody) == 1
    assert await stored_letters(city) == before

    got, answer = await call(client, town.sup1, "POST", f"{P}/letters", letter(town.ra))
    assert got == 201 and answer["letter"]["branch"] == code, answer
    got, again = await call(client, town.sup1, "POST", f"{P}/letters", letter(town.ra))
    assert got == 200 and again["repeated"] is True  # a retry: the same letter
    got, _ = await call(client, town.street_sup, "POST", f"{P}/letters",
                        letter(town.ra, key="letter-key-0002", conduct="第二封函告"))
    assert got == 201
    assert len(await stored_letters(city)) == len(before) + 2

    # Readers: the writer, the street's supervisor, the admin and the member's secretary.
    for user in (town.sup1, town.street_sup, town.admin, sec):
        got, answer = await call(client, user, "GET", f"{P}/letters?member={town.ra}")
        assert got == 200 and [d["conduct"] for d in answer["letters"]] == [
            CONDUCT, "第二封函告"], (user, answer)
    # Nobody else, and out of scope is answered as a member without letters would not be:
    # alike with a made-up member.
    refusals = set()
    for user, member in ((other_sec, town.ra), (outsider, town.ra), (sec, "nobody0here"),
                         (other_sec, town.rb)):
        got, answer = await call(client, user, "GET", f"{P}/letters?member={member}")
        assert got == 404 and CONDUCT not in json.dumps(answer, ensure_ascii=False)
        refusals.add(answer["reason"])
    assert len(refusals) == 1
    for user in (town.ra, town.rb, town.rc, town.worker1):
        got, answer = await call(client, user, "GET", f"{P}/letters?member={town.ra}")
        assert got == 403 and set(answer) == {"error", "reason"}
    got, _ = await call(client, sec, "GET", f"{P}/letters?member={town.ra}&unmask=1")
    assert got == 400

    # Audit: every write and every read, by whom.
    lines = [r.getMessage() for r in caplog.records if r.name == "linli.audit"]
    assert sum(f"{town.sup1} wrote party letter" in line for line in lines) >= 1
    assert any(f"{sec} read 2 party letter(s) about {town.ra}" in line for line in lines)
    assert any(f"{town.admin} read 2 party letter(s)" in line for line in lines)


async def test_no_resident_route_shows_a_letter_not_even_to_the_member(
        client: TestClient, city: City) -> None:
    town = await ready_town(client, city)
    code = await branch(client, city, town)
    await confirmed(client, city, town, town.ra, code)
    got, _ = await call(client, town.sup1, "POST", f"{P}/letters", letter(town.ra))
    assert got == 201
    for user in (town.ra, town.rb, town.rc):
        held = await phone(client, user)
        assert not any(i.startswith("party_letter:") for i in held)
        assert CONDUCT not in json.dumps(held, ensure_ascii=False)
        for path in (f"{P}/me", "/api/residents/my-data", "/api/volunteer/ledger",
                     "/api/residents/my-data/export?format=json"):
            resp = await client.get(path, headers=basic(user))
            text = await resp.text()
            assert CONDUCT not in text and "某某科技有限公司" not in text, (user, path)
            assert "party_letter" not in text, (user, path)
        got, _ = await call(client, user, "GET", f"/couch/{PARTY_DB}/_all_docs")
        assert got == 404
    # The store's database is internal: not even the admin reaches it through /couch/.
    got, _ = await call(client, town.admin, "GET", f"/couch/{PARTY_DB}/_all_docs")
    assert got == 404


async def test_a_letter_stays_with_the_branch_the_member_was_confirmed_in(
        client: TestClient, city: City) -> None:
    """Review 3, finding 6: a member re-declaring elsewhere (pending, or after a rejection)
    does not hand their letters to the next branch's secretary; the first keeps its own."""
    town = await ready_town(client, city)
    a, b = await branch(client, city, town), await branch(client, city, town)
    sec_a, sec_b = await secretary(client, city, a), await secretary(client, city, b)

    async def read(user: str) -> tuple[int, list[str]]:
        got, answer = await call(client, user, "GET", f"{P}/letters?member={town.ra}")
        return got, [d["conduct"] for d in answer.get("letters", [])]

    async def write(key: str, conduct: str) -> dict[str, Any]:
        got, answer = await call(client, town.sup1, "POST", f"{P}/letters",
                                 letter(town.ra, key=key, conduct=conduct))
        assert got == 201, answer
        return dict(answer["letter"])

    async def decide(sec: str, confirm: bool) -> None:
        body = {"member": town.ra, "confirm": confirm, **({} if confirm else {"reason": "调离"})}
        got, answer = await call(client, sec, "POST", f"{P}/decide", body)
        assert got == 201, answer

    async def declare(code: str) -> None:
        got, answer = await call(client, town.ra, "POST", f"{P}/declare", {"branch": code})
        assert got == 201, answer

    # Pending in A: the letter belongs to no branch; A's secretary and then B's read nothing.
    await declare(a)
    assert "branch" not in await write("letter-key-pend", "待确认时的函告")
    assert await read(sec_a) == (200, [])
    await declare(b)
    assert await read(sec_b) == (200, [])
    assert await read(sec_a) == (404, [])
    # Confirmed in B: B's letter is B's.
    await decide(sec_b, True)
    assert (await write("letter-key-b001", "B支部期间"))["branch"] == b
    assert await read(sec_b) == (200, ["B支部期间"])
    # Transferred away (rejected), declared again in A and confirmed: A's letter is A's, and
    # B's secretary keeps B's letter only, pending or confirmed elsewhere.
    await decide(sec_b, False)
    await declare(a)
    assert await read(sec_a) == (200, [])
    await decide(sec_a, True)
    assert (await write("letter-key-a001", "A支部期间"))["branch"] == a
    assert await read(sec_a) == (200, ["A支部期间"])
    assert await read(sec_b) == (200, ["B支部期间"])
    await decide(sec_a, False)
    await declare(b)  # pending in B again: B's secretary still reads B's letter only
    assert await read(sec_b) == (200, ["B支部期间"])
    assert await read(sec_a) == (200, ["A支部期间"])
    # Supervisors of the member's home read every letter.
    got, every = await read(town.sup1)
    assert got == 200 and sorted(every) == sorted(["待确认时的函告", "B支部期间", "A支部期间"])
