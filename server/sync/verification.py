"""Verification codes (短信验证码) for a resident's sign-up: who sends them, and which ones wait.

A sender is anything with `async send(phone, code)`. This server reaches no SMS gateway, so the
one shipped is the development sender, which writes the code to the server's log (never to the
HTTP answer: the answer of a sign-up is the same for everyone). A real provider (Aliyun SMS,
Tencent Cloud SMS) is a class of the same shape added to SENDERS and chosen by the
`verification_sender` setting (docs/residents.md says how).

`PendingCodes` keeps, per phone, the code last sent and the sign-up it confirms, in memory:
a code is valid VALID_SECONDS, opens one verify, and dies after MAX_WRONG wrong tries. A
restart forgets them; the resident asks for a new code.
"""

from __future__ import annotations

import collections
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("linli.verification")

CODE_DIGITS = 6
VALID_SECONDS = 600.0  # ten minutes: long enough for a slow SMS, short for a guesser
MAX_WRONG = 5  # then the code is dead and a new sign-up (rate-limited) is needed
MAX_PENDING = 100_000  # bound the memory a spray of sign-ups can take


class VerificationSender(Protocol):
    """Delivers a verification code to a phone; raises on failure."""

    async def send(self, phone: str, code: str) -> None: ...


class LogSender:
    """The development sender: the code goes to the server log (logger linli.verification)."""

    async def send(self, phone: str, code: str) -> None:
        log.warning("verification code for %s: %s (development sender, no SMS sent)", phone,
                    code)


SENDERS: dict[str, Callable[[], VerificationSender]] = {"log": LogSender}


def sender_for(name: str) -> VerificationSender:
    """The sender the `verification_sender` setting names."""
    try:
        return SENDERS[name]()
    except KeyError:
        raise ValueError(f"verification_sender {name!r} is not one of "
                         f"{', '.join(sorted(SENDERS))}") from None


def new_code() -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(CODE_DIGITS))


@dataclass
class Pending:
    code: str
    signup: Mapping[str, str]
    expires: float
    wrong: int = 0


class PendingCodes:
    """The codes sent and not yet used, by phone; a new sign-up replaces the phone's code."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._codes: collections.OrderedDict[str, Pending] = collections.OrderedDict()

    def issue(self, phone: str, signup: Mapping[str, str]) -> str:
        code = new_code()
        self._codes[phone] = Pending(code, dict(signup), self.clock() + VALID_SECONDS)
        self._codes.move_to_end(phone)
        while len(self._codes) > MAX_PENDING:
            self._codes.popitem(last=False)
        return code

    def take(self, phone: str, code: str) -> Mapping[str, str] | None:
        """The sign-up a right code confirms, taken (a second verify finds nothing); None for
        a wrong, expired or unknown one. Synchronous: two verifies racing cannot both take it."""
        pending = self._codes.get(phone)
        if pending is None or pending.expires <= self.clock():
            self._codes.pop(phone, None)
            return None
        if not hmac.compare_digest(pending.code.encode(), code.encode()):
            pending.wrong += 1
            if pending.wrong >= MAX_WRONG:
                del self._codes[phone]
            return None
        del self._codes[phone]
        return pending.signup


@dataclass
class Verification:
    """The app's sender and the codes waiting for a verify."""

    sender: VerificationSender
    codes: PendingCodes
