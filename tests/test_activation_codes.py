"""server/domain/activation.py: codes without look-alikes from the random source given, read
kindly as typed, valid 7 days and once, and 5 wrong tries then a pause that grows."""

from __future__ import annotations

import random
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.domain.activation import (
    ALPHABET,
    CODE_LENGTH,
    Attempts,
    new_code,
    normalise_code,
    pause_problem,
    redeem,
    shown,
    verdict,
    verdict_problem,
)
from server.domain.validation import SchemaRegistry

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_the_alphabet_has_no_look_alikes() -> None:
    assert not set("0O1IL") & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET) == 31
    assert set(ALPHABET) == set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")


def test_codes_come_from_the_random_source_given() -> None:
    first = new_code(random.Random(7).randrange)
    assert first == new_code(random.Random(7).randrange)  # the source decides, nothing else
    assert first != new_code(random.Random(8).randrange)
    codes = [new_code(secrets.randbelow) for _ in range(2000)]
    assert all(len(c) == CODE_LENGTH and set(c) <= set(ALPHABET) for c in codes)
    assert len(set(codes)) == len(codes)
    assert set("".join(codes)) == set(ALPHABET)  # every symbol is drawn
    assert new_code(lambda n: n - 1) == "Z" * 8 and new_code(lambda n: 0) == "2" * 8


@pytest.mark.parametrize("typed", [
    "ABCD2345", "abcd2345", "ABCD-2345", " abcd 2345 ", "ＡＢＣＤ－２３４５", "abcd\u30002345",
    "ab.cd_23-45", "Abcd\t2345",
])
def test_what_a_resident_types_is_read_kindly(typed: str) -> None:
    assert normalise_code(typed) == "ABCD2345"


@pytest.mark.parametrize("typed", [
    None, 12345678, ["ABCD2345"], "", "ABCD234", "ABCD23456",
    "ABCD2340", "ABCO2345", "ABCI2345", "ABCL2345", "ABC12345",  # look-alikes are not guessed
    "ABCD234\ud800", "ABCD\x002345", "ABCD 2345" + " " * 40, "ABCD2345<script>",
])
def test_what_cannot_be_a_code_is_refused(typed: Any) -> None:
    assert normalise_code(typed) is None


def test_a_code_is_shown_in_two_groups() -> None:
    assert shown("ABCD2345") == "ABCD-2345"
    assert normalise_code(shown("ABCD2345")) == "ABCD2345"


def code(**fields: Any) -> dict[str, Any]:
    return {"_id": "activation_code:ABCD2345", "code": "ABCD2345",
            "household": "household:1", "created_at": T0.isoformat(), **fields}


@pytest.mark.parametrize(("stored", "now", "expected"), [
    (code(), T0, "valid"),
    (code(), T0 + timedelta(days=7) - timedelta(seconds=1), "valid"),
    (code(), T0 + timedelta(days=7), "expired"),  # 7 days, not a second more
    (code(created_at="2026-12-03T17:00:00+08:00"), T0, "valid"),  # any zone
    (code(), T0 - timedelta(hours=1), "expired"),  # made "in the future": a clock ahead
    (code(created_at="2026-12-03T09:00:00"), T0, "expired"),  # no zone: unknown age
    (code(created_at="yesterday"), T0, "expired"),
    (code(created_at=None), T0, "expired"),
    (code(used_by="r.wang"), T0, "used"),
    (code(used_by="r.wang", status="revoked"), T0, "revoked"),
    (code(status="revoked"), T0, "revoked"),
    (None, T0, "wrong"),
])
def test_a_code_opens_once_within_7_days(stored: dict[str, Any] | None, now: datetime,
                                          expected: str) -> None:
    assert verdict(stored, now) == expected


def test_refusals_name_the_field() -> None:
    assert verdict_problem("valid") is None
    for result, words in (("wrong", "不正确"), ("used", "已经使用过"), ("expired", "7 天"),
                          ("revoked", "已作废")):
        problem = verdict_problem(result)  # type: ignore[arg-type]
        assert problem is not None and problem.field == "/code"
        assert problem.message.startswith("“激活码”") and words in problem.message
        assert "Activation code" in problem.message


def wrong(state: Attempts, times: int, at: datetime) -> Attempts:
    for _ in range(times):
        state = state.after_wrong(at)
    return state


def test_five_wrong_codes_then_a_pause() -> None:
    state = wrong(Attempts(), 4, T0)
    assert state.wait(T0) == timedelta(0)
    state = state.after_wrong(T0)
    assert state.wait(T0) == timedelta(minutes=15)
    assert state.wait(T0 + timedelta(minutes=14)) == timedelta(minutes=1)
    with pytest.raises(ValueError):  # nothing is compared during a pause
        state.after_wrong(T0 + timedelta(minutes=1))
    assert state.wait(T0 + timedelta(minutes=15)) == timedelta(0)
    problem = pause_problem(state.wait(T0 + timedelta(seconds=30)))
    assert "15 分钟后再试" in problem.message and "try again in 15 minutes" in problem.message


def test_each_round_doubles_the_pause_up_to_a_day() -> None:
    state, now, pauses = Attempts(), T0, []
    for _ in range(9):
        state = wrong(state, 5, now)
        pauses.append(state.wait(now))
        now += state.wait(now)
    assert pauses[:4] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert pauses[-1] == timedelta(days=1) and max(pauses) == timedelta(days=1)


def test_success_or_a_quiet_day_starts_afresh() -> None:
    state = wrong(wrong(Attempts(), 5, T0), 4, T0 + timedelta(minutes=15))
    assert state.after_success() == Attempts()
    later = T0 + timedelta(minutes=15) + timedelta(days=1)
    assert state.fresh(later) == Attempts()
    assert state.after_wrong(later).wait(later) == timedelta(0)  # a new first wrong try
    # A day's pause is not shortened by the day it lasts.
    long_pause = Attempts(0, 7, T0 + timedelta(days=1), T0)
    assert long_pause.wait(T0 + timedelta(hours=23)) == timedelta(hours=1)


def test_the_state_is_a_value() -> None:
    state = Attempts()
    state.after_wrong(T0)
    assert state == Attempts()  # nothing changed in place: the caller stores what it gets


def test_the_schema_takes_exactly_the_codes_made() -> None:
    """schemas/activation_code.v1.schema.json's pattern and ALPHABET are one rule."""
    pattern = SchemaRegistry().validators[("activation_code", 1)].schema["properties"]["code"][
        "pattern"]
    symbols = {chr(c) for c in range(33, 127) if re.fullmatch(pattern, chr(c) * CODE_LENGTH)}
    assert symbols == set(ALPHABET)


def test_a_valid_code_makes_the_link_and_is_spent() -> None:
    """The resident link and the spent code are made together, and both pass their schemas; the
    spent code then opens nothing."""
    registry = SchemaRegistry()
    stored = {"_id": "activation_code:h2-1", "type": "activation_code", "schema_version": 1,
              "grid": "g330802001001a", "created_by": "wang.fang",
              "household": "household:330802001001010002", "code": "K7MQ2XWD",
              "role": "tenant", "created_at": T0.isoformat(), "status": "active"}
    link, used = redeem(stored, "r.wangwei", "resident:r.wangwei-1", T0 + timedelta(days=1))
    assert registry.problems(link) == [] and registry.problems(used) == []
    assert (link["household"], link["role"], link["status"]) == (stored["household"], "tenant",
                                                                 "active")
    assert verdict(used, T0 + timedelta(days=1)) == "used"
    assert stored.get("used_by") is None  # the stored code is not changed in place
    for later in (used, {**stored, "status": "revoked"}):
        with pytest.raises(ValueError):
            redeem(later, "r.other", "resident:r.other-1", T0 + timedelta(days=1))
    with pytest.raises(ValueError):
        redeem(stored, "r.late", "resident:r.late-1", T0 + timedelta(days=8))
