"""The attacker's review of volunteering (issue 17), each finding as a test through the real app
on the real store: ledger corrections stay within what the task could give and are idempotent
by their key; a correction names a ledger entry, never a store path; claims and cancellations
are limited per account, and one cancellation rewrites the outcomes whose status changed, not
the whole waiting line; a check-in code counts only near the time it is received, and wrong
codes are counted in the store, per account across tasks; a resident who moved out may still
cancel their standing claim, and the organiser may reject one."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import City, eventually
from test_notices import Town
from test_volunteering import PREFIX, a_task, act, phone, publish, stored_ids
from test_volunteering_hours import call, now, task_body, underway

from server.domain import volunteering as rules
from server.domain.scope import CLAIMS_DB, RESIDENTS_DB
from server.sync.allocation import event_id, outcome_id
from server.web.keys import ALLOCATOR, RESIDENT_INDEX, VOLUNTEERING
from server.web.limits import ACTS_PER_TASK

FIXES = "/api/volunteer/ledger/corrections"


async def confirmed_and_underway(client: TestClient, city: City,
                                 places: int = 2) -> tuple[Town, str, bytes]:
    """A task begun twenty minutes ago on which ra holds a place, and its check-in secret."""
    town, task = await a_task(client, city, places=places)
    got, answer = await act(client, town.ra, task, "ra-claim-0001")
    assert answer["status"] == "confirmed", answer
    await underway(city, task)
    got, held = await call(client, "GET", f"{PREFIX}/{task}/checkin-key", town.sup1)
    assert got == 200, held
    return town, task, bytes.fromhex(held["secret"])


def code_at(secret: bytes, task: str, minutes_ago: float) -> str:
    return rules.checkin_code(secret, task, rules.window_of(
        now() - datetime.timedelta(minutes=minutes_ago)))


async def test_corrections_stay_within_the_span_and_repeat_by_their_key(
        client: TestClient, city: City) -> None:
    town, task, _ = await confirmed_and_underway(client, city)
    got, answer = await call(client, "POST", f"{PREFIX}/{task}/hours", town.sup1,
                             {"volunteer": town.ra, "minutes": 60})
    assert got == 201, answer
    span = 140  # underway(): twenty minutes ago to two hours from now
    hours = next(e["_id"] for e in answer["entries"] if e["kind"] == "hours")
    points = next(e["_id"] for e in answer["entries"] if e["kind"] == "points")

    async def fix(entry: str, amount: int, key: str) -> tuple[int, dict[str, Any]]:
        return await call(client, "POST", FIXES, town.sup1,
                          {"entry": entry, "amount": amount, "reason": "更正", "key": key})

    # Above the span, or below nothing: refused by label, nothing written.
    for entry, amount in ((hours, span - 60 + 1), (hours, -61), (points, -11),
                          (points, rules.points_for(span) - 10 + 1)):
        got, bad = await fix(entry, amount, f"k-{entry[-6:]}-{amount}".replace("-", "x"))
        assert got == 400 and "数量" in bad["reason"], (entry, amount, bad)
    # Up to the span, in steps: each within the bound, the last step past it refused.
    got, first = await fix(hours, 50, "step-one-1")
    assert got == 201, first
    got, again = await fix(hours, 50, "step-one-1")  # a retry: the same entry, once
    assert got == 200 and again["repeated"] and again["entry"]["_id"] == first["entry"]["_id"]
    got, second = await fix(hours, span - 110, "step-two-2")
    assert got == 201, second
    got, bad = await fix(hours, 1, "step-three")
    assert got == 400 and "数量" in bad["reason"], bad
    got, down = await fix(hours, -span, "step-down1")
    assert got == 201, down  # back to nothing is allowed; below is not
    got, bad = await fix(hours, -1, "step-down2")
    assert got == 400, bad
    got, mine = await call(client, "GET", "/api/volunteer/ledger", town.ra)
    assert mine["hours_minutes"] == 0 and mine["points"] == 10
    # The key is required and has a shape.
    for key in (None, "", "a/b", "x" * 65, 12345678):
        body = {"entry": points, "amount": 1, "reason": "更正",
                **({} if key is None else {"key": key})}
        got, bad = await call(client, "POST", FIXES, town.sup1, body)
        assert got == 400 and "更正编号" in bad["reason"], (key, bad)


async def test_a_correction_names_a_ledger_entry_never_a_store_path(
        client: TestClient, city: City) -> None:
    town, task, _ = await confirmed_and_underway(client, city)
    for entry in ("_changes", "_all_docs", "_design/x", "../linli-claims", "ledger_entry",
                  f"ledger_entry:hours:{town.ra}:x/_all_docs", f"{task}",
                  "ledger_entry:hours:a:b?include_docs=true", "ledger_entry:hours:\ud800:x",
                  f"ledger_entry:hours:{town.ra}:volunteer_task.0011223344556677.fix.1"):
        got, bad = await call(client, "POST", FIXES, town.sup1,
                              {"entry": entry, "amount": -1, "reason": "更正", "key": "key-00001"})
        assert got == 400 and "台账记录" in bad["reason"], (entry, bad)


async def test_claims_and_cancels_are_limited_per_account_and_task(
        client: TestClient, city: City) -> None:
    town, task = await a_task(client, city, places=1)
    statuses = []
    for n in range(ACTS_PER_TASK + 2):
        what = "claim" if n % 2 == 0 else "cancel"
        got, answer = await act(client, town.ra, task, f"flip-{n:04d}", what)
        statuses.append(got)
    assert statuses[:ACTS_PER_TASK] == [201] * ACTS_PER_TASK, statuses
    assert statuses[ACTS_PER_TASK:] == [429, 429], statuses
    got, answer = await act(client, town.ra, task, f"flip-{ACTS_PER_TASK:04d}")
    assert got == 429 and "尝试次数过多" in answer["reason"] and answer["error"]
    # A retry of an act already stored still answers (a phone's queue is sent again).
    got, answer = await act(client, town.ra, task, "flip-0000")
    assert got == 200 and answer["repeated"], answer
    # Nothing was stored for the refused ones.
    stored = await city.run(lambda: [i for i in city.couch[CLAIMS_DB] if town.ra in i
                                     and task.split(":")[1] in i])
    assert len(stored) == ACTS_PER_TASK
    # Another resident, another task: their own counts.
    got, answer = await act(client, town.rb, task, "rb-claim-01")
    assert got == 201, answer


async def test_one_cancellation_rewrites_only_the_outcomes_whose_status_changed(
        client: TestClient, city: City) -> None:
    """Measured: with one place and 15 waiting, the holder's cancellation rewrote all 16
    outcome documents (each waiting claimant's `line` moved up); now 2: the canceller's and
    the promoted one's."""
    town, task = await a_task(client, city, places=1)
    allocator = client.app[ALLOCATOR]
    names = [f"w{n:02d}{town.c1[-8:]}".lower() for n in range(16)]
    for name in names:
        await allocator.record({
            "_id": event_id(task, name, "claim", "claim-0001"), "type": "claim",
            "schema_version": 1, "created_by": name, "subject": task, "act": "claim",
            "claimant": name, "claim_id": "claim-0001",
            "received_at": now().isoformat(timespec="microseconds")})
    await allocator.settle()

    def revs() -> dict[str, str]:
        db = city.couch[RESIDENTS_DB]
        return {name: db[outcome_id(task, name)]["_rev"] for name in names}
    before = await city.run(revs)
    await allocator.record({
        "_id": event_id(task, names[0], "cancel", "cancel-001"), "type": "claim",
        "schema_version": 1, "created_by": names[0], "subject": task, "act": "cancel",
        "claimant": names[0], "claim_id": "cancel-001",
        "received_at": now().isoformat(timespec="microseconds")})
    await allocator.settle()
    after = await city.run(revs)
    rewritten = sorted(n for n in names if before[n] != after[n])
    assert rewritten == names[:2], rewritten
    assert allocator.outcome(task, names[1]).status == "confirmed"
    assert allocator.outcome(task, names[2]).line == 1  # the exact line is still known


async def test_a_check_in_code_counts_only_near_its_receipt(
        client: TestClient, city: City) -> None:
    town, task, secret = await confirmed_and_underway(client, city)

    def move_back(hours: float) -> None:  # the task began `hours` ago
        doc = city.couch[RESIDENTS_DB][task]
        doc["starts_at"] = (now() - datetime.timedelta(hours=hours)).isoformat()
        city.couch[RESIDENTS_DB].save(doc)
    await city.run(move_back, 5)
    too_old = rules.QUEUE_ALLOWANCE + datetime.timedelta(minutes=15)
    got, bad = await call(client, "POST", f"{PREFIX}/{task}/check", town.ra, {
        "direction": "in", "code": code_at(secret, task, too_old.total_seconds() / 60)})
    assert got == 400 and "签到码" in bad["reason"], bad
    within = rules.QUEUE_ALLOWANCE - datetime.timedelta(minutes=15)
    got, ok = await call(client, "POST", f"{PREFIX}/{task}/check", town.ra, {
        "direction": "in", "code": code_at(secret, task, within.total_seconds() / 60)})
    assert got == 201, ok  # an offline phone's queued code, within the allowance


async def test_wrong_codes_are_counted_in_the_store_per_account_across_tasks(
        client: TestClient, city: City) -> None:
    town, task, secret = await confirmed_and_underway(client, city)
    _, second = await publish(client, town.sup1, await task_body(city, task))
    other = second["task"]["_id"]
    got, answer = await act(client, town.ra, other, "ra-claim-0002")
    assert answer["status"] == "confirmed", answer
    await underway(city, other)
    wrong = f"{(int(code_at(secret, task, 0)) + 1) % 10 ** rules.CODE_DIGITS:0{rules.CODE_DIGITS}d}"
    half = rules.MAX_WRONG_CODES // 2
    for target, n in ((task, half), (other, rules.MAX_WRONG_CODES - half)):
        for _ in range(n):
            got, _ = await call(client, "POST", f"{PREFIX}/{target}/check", town.ra,
                                {"direction": "in", "code": wrong})
            assert got == 400
    # The limit is the account's, whichever task: even the right code waits now.
    got, answer = await call(client, "POST", f"{PREFIX}/{task}/check", town.ra,
                             {"direction": "in", "code": code_at(secret, task, 0)})
    assert got == 429 and "签到码错误次数过多" in answer["reason"], answer
    # Counted in the store (a restart forgets nothing).
    held = await city.run(lambda: [dict(city.couch[CLAIMS_DB][i]) for i in city.couch[CLAIMS_DB]
                                   if i.startswith(f"wrong_codes:{town.ra}:")])
    assert [d["count"] for d in held] == [rules.MAX_WRONG_CODES]
    # rb is not limited by ra's tries.
    got, answer = await act(client, town.rb, task, "rb-claim-0001")
    got, answer = await call(client, "POST", f"{PREFIX}/{task}/check", town.rb,
                             {"direction": "in", "code": code_at(secret, task, 0)})
    assert got == 201, answer


async def move_out(city: City, town: Town) -> None:
    """The worker removes ra's link: she moved out (迁出), as docs/residents.md says."""
    def remove() -> None:
        db = city.db(town.g1)
        doc = db[f"resident:{town.ra}-{town.household(town.g1, 1).partition(':')[2]}"]
        doc["status"] = "removed"
        db.save(doc)
    await city.run(remove)


async def test_a_resident_who_moved_out_may_still_cancel(client: TestClient, city: City) -> None:
    town, task = await a_task(client, city, places=1)
    got, answer = await act(client, town.ra, task, "ra-claim-0001")
    assert answer["status"] == "confirmed"
    got, answer = await act(client, town.rb, task, "rb-claim-0001")
    assert answer["status"] == "waiting"

    await move_out(city, town)
    index = client.app[RESIDENT_INDEX]
    await eventually(lambda: not index.ids.homes(town.ra), what="ra moved out")
    got, answer = await act(client, town.ra, task, "ra-claim-0002")  # no new claim
    assert got == 404, answer
    got, answer = await act(client, town.ra, task, "ra-cancel-01", "cancel")
    assert got == 201 and answer["status"] == "cancelled", answer
    got, answer = await act(client, town.rb, task, "rb-claim-0001")
    assert answer["status"] == "confirmed" and answer["promoted"], answer
    # A cancellation by someone who never claimed still sees no such task.
    got, answer = await act(client, town.rc, task, "rc-cancel-01", "cancel")
    assert got == 404, answer


async def test_moving_out_releases_the_place_to_the_first_waiting_once(
        client: TestClient, city: City) -> None:
    """Rule 7: ra holds the place and moves out (the worker removes her link): the server
    cancels her claim once, rb, first in line, holds it and his phone is told; ra's phone
    says cancelled; passes run again, in parallel, release nothing more."""
    town, task = await a_task(client, city, places=1)
    got, answer = await act(client, town.ra, task, "ra-claim-0001")
    assert answer["status"] == "confirmed", answer
    got, answer = await act(client, town.rb, task, "rb-claim-0001")
    assert answer["status"] == "waiting", answer

    await move_out(city, town)
    client.app[RESIDENT_INDEX].notice(f"grid-{town.g1}")

    async def told(account: str, status: str) -> bool:
        held = await phone(client, account)
        doc = held.get(outcome_id(task, account))
        return doc is not None and doc["status"] == status
    await eventually(lambda: told(town.rb, "confirmed"), seconds=30, what="rb promoted")
    assert (await phone(client, town.rb))[outcome_id(task, town.rb)]["promoted"] is True
    await eventually(lambda: told(town.ra, "cancelled"), what="ra told")
    store, allocator = client.app[VOLUNTEERING], client.app[ALLOCATOR]
    index = client.app[RESIDENT_INDEX]
    moment = datetime.datetime.now(datetime.UTC)
    again = await asyncio.gather(*(store.release_moved(allocator, index, moment)
                                   for _ in range(3)))
    assert again == [0, 0, 0]
    cancels = await stored_ids(city, CLAIMS_DB, event_id(task, town.ra, "cancel", ""))
    assert len(cancels) == 1 and cancels[0].endswith(":moved-" + cancels[0][-24:]), cancels
    stored = await city.run(lambda: city.couch[CLAIMS_DB][cancels[0]])
    assert stored["created_by"] == "linli-volunteering", stored
    got, answer = await call(client, "GET", f"{PREFIX}/{task}/allocation", town.sup1)
    assert [(c["claimant"], c["status"]) for c in answer["claimants"]] == [
        (town.rb, "confirmed"), (town.ra, "cancelled")], answer
    # Her own cancellation afterwards answers what stands, and changes nothing.
    got, answer = await act(client, town.ra, task, "ra-cancel-01", "cancel")
    assert got == 201 and answer["status"] == "cancelled", answer
    got, answer = await call(client, "GET", f"{PREFIX}/{task}/allocation", town.sup1)
    assert got == 200 and [c["status"] for c in answer["claimants"]] == [
        "confirmed", "cancelled"], answer


async def test_the_organiser_rejects_a_place_holder_of_any_task(
        client: TestClient, city: City) -> None:
    """A task without approval too: a place is not held by someone who will not come."""
    town, task = await a_task(client, city, places=1)
    await act(client, town.ra, task, "ra-claim-0001")
    await act(client, town.rb, task, "rb-claim-0001")
    decide = f"{PREFIX}/{task}/decide"
    for user, body, status in (
            (town.ra, {"claimant": town.rb, "approve": False, "claim_id": "reject-0001"}, 403),
            (town.street_sup, {"claimant": town.ra, "approve": False,
                               "claim_id": "reject-0001"}, 404),
            (town.sup1, {"claimant": town.ra, "approve": False}, 400),
            (town.sup1, {"claimant": town.ra, "approve": True, "claim_id": "approve-001"}, 400),
            (town.sup1, {"claimant": town.rc, "approve": False, "claim_id": "reject-0001"}, 400),
            (town.sup1, {"claimant": "../_all_docs", "approve": False,
                         "claim_id": "reject-0001"}, 400)):
        got, answer = await call(client, "POST", decide, user, body)
        assert got == status, (user, body, answer)
    body = {"claimant": town.ra, "approve": False, "claim_id": "reject-0001"}
    got, answer = await call(client, "POST", decide, town.sup1, body)
    assert got == 201 and answer["status"] == "rejected", answer
    got, again = await call(client, "POST", decide, town.sup1, body)
    assert got == 200 and again["repeated"], again
    got, answer = await act(client, town.rb, task, "rb-claim-0001")
    assert answer["status"] == "confirmed" and answer["promoted"], answer
    # A rejection is final: claiming again does not put them back in the queue.
    got, answer = await act(client, town.ra, task, "ra-claim-0002")
    assert answer["status"] == "rejected", answer
