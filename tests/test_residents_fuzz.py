"""The residents' rules on anything a phone could send (Hypothesis): whatever the value (wrong
types, huge or nested, control characters, lone surrogates, full-width text, forged fields),
they answer and never raise; what they accept has the one form they promise; every problem is
bilingual and valid UTF-8. Reproducible: derandomized, no example database, no deadline."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.domain.activation import ALPHABET, Attempts, normalise_code, verdict
from server.domain.allowed_ids import AllowedIds
from server.domain.audience import Place, includes, notice_problems
from server.domain.resident_writes import answer_problem, resident_write_problem
from server.domain.rules import Problem
from server.domain.signup import decide, normalise_phone, signup_problems

pytestmark = pytest.mark.slow  # generated inputs
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                suppress_health_check=[HealthCheck.too_slow])
# Text of every kind a keyboard or a forger produces: ASCII, full-width, CJK, controls, bidi
# controls and lone surrogates.
CHARS = st.one_of(st.sampled_from(string.printable), st.characters(),
                  st.sampled_from("０１２３４５６７８９＋－　\u202e\u200b\ud800\udfff\x00\x7f王坊"))
TEXT = st.text(CHARS, max_size=40)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
FIELDS = st.sampled_from(["phone", "name", "community", "address", "household", "status",
                          "type", "created_by", "_id", "notice", "audience", "title", "body",
                          "_attachments", "grid", "account", "candidates", "answered_by"])
DOCS = st.dictionaries(st.one_of(FIELDS, TEXT), VALUES, max_size=8)
T0 = datetime(2026, 12, 3, tzinfo=UTC)


def readable(problems: list[Problem]) -> None:
    for problem in problems:
        assert " / " in problem.message
        problem.message.encode("utf-8")  # no lone surrogate reaches a message


@FUZZ
@given(VALUES)
def test_a_phone_is_eleven_ascii_digits_or_nothing(value: Any) -> None:
    phone = normalise_phone(value)
    assert phone is None or (len(phone) == 11 and phone.isascii() and phone.isdigit())


@FUZZ
@given(VALUES)
def test_a_code_is_eight_of_the_alphabet_or_nothing(value: Any) -> None:
    code = normalise_code(value)
    assert code is None or (len(code) == 8 and set(code) <= set(ALPHABET))


@FUZZ
@given(st.one_of(DOCS, VALUES))
def test_signups_and_notices_are_answered(body: Any) -> None:
    readable(signup_problems(body))
    if isinstance(body, dict):
        readable(notice_problems(body))
        assert includes(body, Place("s", "c", "g", "b")) in (True, False)
        verdict(body, T0)
        decide(body, "王伟", body, body, [body])


@FUZZ
@given(DOCS, st.one_of(st.none(), DOCS))
def test_resident_writes_and_answers_are_judged(doc: dict[str, Any],
                                                stored: dict[str, Any] | None) -> None:
    for problem in (resident_write_problem(doc, stored, "r.one", {"household:1": "g1"},
                                           frozenset({"notice:1"})),
                    answer_problem(doc, stored, "w.one")):
        readable([problem] if problem is not None else [])


@FUZZ
@given(st.lists(st.tuples(DOCS, st.sampled_from(["grid:g1", "residents", "directory"])),
                max_size=12))
def test_the_index_takes_any_change(changes: list[tuple[dict[str, Any], str]]) -> None:
    index = AllowedIds()
    for doc, source in changes:
        index.apply(doc, source)
    for account in ("r.one", *(str(d.get("account")) for d, _ in changes)):
        allowed = index.allowed(account)
        assert index.purge(account, {k: list(v) for k, v in allowed.items()}) == {}


@FUZZ
@given(st.lists(st.booleans(), max_size=30))
def test_the_attempts_machine_never_lets_a_sixth_wrong_try_through(wrongs: list[bool]) -> None:
    state, now = Attempts(), T0
    in_a_row = 0
    for is_wrong in wrongs:
        if state.wait(now):
            now += state.wait(now)
            in_a_row = 0
        if is_wrong:
            state = state.after_wrong(now)
            in_a_row += 1
            assert in_a_row <= 5
        else:
            state, in_a_row = state.after_success(), 0
