"""Activation codes (激活码): the grid worker's way to hand a household to a resident at the
door, when the matching could not.

Rules:

1. A code is 8 characters from an alphabet without look-alikes: no 0/O, no 1/I/L (31 symbols,
   31^8 ≈ 8.5 × 10^11 codes), drawn from the random source the caller gives (the server passes
   `secrets.randbelow`; tests pass a seeded one). It is shown as ABCD-EFGH and in a QR code.
2. What a resident types is read kindly: lower case, spaces, dashes and full-width letters are
   accepted (ａｂｃｄ－ｅｆｇｈ is ABCDEFGH). A look-alike (0, O, 1, I, L) is never "corrected"
   to some other symbol: with both halves of each pair left out, no guess would be right.
3. A code is valid for 7 days from its making, once: after it is used (`used_by`) or revoked it
   opens nothing, whoever asks.
4. Guessing is limited (尝试次数限制): 5 wrong codes in a row, then a pause of 15 minutes, which
   doubles with each further round of 5 (30 min, 1 h, ...) up to a day. A success, or a quiet
   day (no wrong code, no pause), starts afresh. During a pause no code is even compared, so a right
   code typed then opens nothing and costs nothing. `Attempts` is the state of one key (the
   web layer keeps one per account and one per client address); the machine takes the time as
   an argument and holds no clock.
5. A valid code redeemed makes the resident's link (active, "by code", with the role the worker
   chose) and spends the code, the two written together (`redeem`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from server.domain.rules import Problem

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
VALID_FOR = timedelta(days=7)
MAX_WRONG = 5
FIRST_PAUSE = timedelta(minutes=15)
LONGEST_PAUSE = timedelta(days=1)
FORGET_AFTER = timedelta(days=1)
MAX_TYPED = 40  # a code with generous spacing; anything longer is not a code

_TYPED_SEPARATORS = re.compile(r"[\s\-_.·]")
LABEL = ("激活码", "Activation code")


def new_code(randbelow: Callable[[int], int]) -> str:
    """Rule 1: a fresh code, `randbelow(n)` giving a uniform integer in [0, n)."""
    return "".join(ALPHABET[randbelow(len(ALPHABET))] for _ in range(CODE_LENGTH))


def shown(code: str) -> str:
    """A code as printed beside its QR: two groups of four, easy to read out at a door."""
    return f"{code[:4]}-{code[4:]}"


def normalise_code(typed: Any) -> str | None:
    """Rule 2: the code a resident typed, or None when it cannot be one."""
    if not isinstance(typed, str) or len(typed) > MAX_TYPED:
        return None
    text = _TYPED_SEPARATORS.sub("", unicodedata.normalize("NFKC", typed)).upper()
    if len(text) != CODE_LENGTH or any(c not in ALPHABET for c in text):
        return None
    return text


def expires_at(created_at: datetime) -> datetime:
    return created_at + VALID_FOR


Verdict = Literal["valid", "wrong", "used", "expired", "revoked"]


def verdict(stored: Mapping[str, Any] | None, now: datetime) -> Verdict:
    """Rule 3 for the stored code document the typed code found (None: no such code). Times
    are aware datetimes or ISO 8601 text with a zone, as the schema stores them."""
    if stored is None:
        return "wrong"
    if stored.get("status") == "revoked":
        return "revoked"
    if stored.get("used_by"):
        return "used"
    created = _time(stored.get("created_at"))
    if created is None or now >= expires_at(created) or now < created - timedelta(minutes=5):
        return "expired"  # a code from the future (a phone's clock run ahead) is no better
    return "valid"


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else None


def verdict_problem(result: Verdict, pointer: str = "/code") -> Problem | None:
    """The message for a refused code, naming the field by its label."""
    zh, en = LABEL
    texts = {
        "wrong": (f"“{zh}”不正确，请核对后重新输入", f"{en} is not right; check it and type it "
                  "again"),
        "used": (f"“{zh}”已经使用过，请联系网格员", f"{en} has already been used; ask your grid "
                 "worker"),
        "expired": (f"“{zh}”已过期（有效期 7 天），请联系网格员重新生成",
                    f"{en} has expired (valid for 7 days); ask your grid worker for a new one"),
        "revoked": (f"“{zh}”已作废，请联系网格员", f"{en} has been withdrawn; ask your grid "
                    "worker"),
    }
    if result == "valid":
        return None
    return Problem(pointer, f"code_{result}", *texts[result])


@dataclass(frozen=True)
class Attempts:
    """Rule 4's state for one key: wrong codes in the current round, rounds of MAX_WRONG
    already ended in a pause, the end of the pause, the last wrong code."""

    wrong: int = 0
    rounds: int = 0
    paused_until: datetime | None = None
    last_wrong: datetime | None = None

    def fresh(self, now: datetime) -> Attempts:
        """The state as of `now`: forgotten after a quiet day, counted from the last wrong
        code or the end of the last pause, whichever is later."""
        quiet_since = max(filter(None, (self.last_wrong, self.paused_until)), default=None)
        if quiet_since is not None and now - quiet_since >= FORGET_AFTER:
            return Attempts()
        return self

    def wait(self, now: datetime) -> timedelta:
        """How long until a code may be tried again; zero when it may be tried now."""
        state = self.fresh(now)
        if state.paused_until is None or now >= state.paused_until:
            return timedelta(0)
        return state.paused_until - now

    def after_wrong(self, now: datetime) -> Attempts:
        """A wrong (or used, expired, revoked) code was typed while trying was allowed."""
        state = self.fresh(now)
        if state.wait(now):
            raise ValueError("no code is compared during a pause")
        wrong = state.wrong + 1
        if wrong < MAX_WRONG:
            return Attempts(wrong, state.rounds, None, now)
        pause = min(FIRST_PAUSE * (2 ** state.rounds), LONGEST_PAUSE)
        return Attempts(0, state.rounds + 1, now + pause, now)

    def after_success(self) -> Attempts:
        return Attempts()


def pause_problem(wait: timedelta, pointer: str = "/code") -> Problem:
    minutes = max(1, -(-int(wait.total_seconds()) // 60))
    zh, en = LABEL
    return Problem(pointer, "code_paused",
                   f"“{zh}”错误次数过多，请 {minutes} 分钟后再试",
                   f"Too many wrong tries of the {en.lower()}; try again in {minutes} minutes")


def redeem(stored: Mapping[str, Any], account: str, link_id: str,
           now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid code used by `account`: the resident link it makes (active, by code, with the
    code's role, in the code's grid; `link_id` is the caller's, e.g. `resident:<account>-<key>`)
    and the code marked used, to be written together. Raises ValueError for a code that is not
    valid now: the caller answers with `verdict_problem` first."""
    if verdict(stored, now) != "valid":
        raise ValueError("only a valid code is redeemed")
    stamp = now.isoformat(timespec="seconds")
    link = resident_link(link_id, str(stored["grid"]), account, str(stored["household"]),
                         str(stored.get("role", "family")), "code", account, now)
    used = {**stored, "used_by": account, "used_at": stamp}
    return link, used


def resident_link(link_id: str, grid: str, account: str, household: str, role: str,
                  activation: str, author: str, now: datetime) -> dict[str, Any]:
    """An active resident link (schemas/resident.v1.schema.json), however it was activated:
    automatically, at the door, or by code."""
    return {"_id": link_id, "type": "resident", "schema_version": 1, "grid": grid,
            "created_by": author, "account": account, "household": household, "role": role,
            "status": "active", "activation": activation,
            "activated_at": now.isoformat(timespec="seconds")}


def link_id(account: str, household: str) -> str:
    """A resident link's id: one per account and household, so a second activation of the
    same is a conflict in the store."""
    return f"resident:{account}-{household.partition(':')[2] or household}"
