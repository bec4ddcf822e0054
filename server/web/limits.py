"""How often residents may try (尝试限制): sign-ups per phone and per client address, and
activation codes per account and per client address (server/domain/activation.py's rule 4,
whose state this keeps in memory, one per key, bounded like the login counters)."""

from __future__ import annotations

import asyncio
import collections
import datetime

from server.config import Config
from server.domain.activation import Attempts
from server.web.auth import RATE_KEYS_MAX, FailureCounter

Counted = dict[str, tuple[Attempts | None, Attempts | None]]
"""A try's keys, each with its state before and after the try was counted."""


class SignupLimits:
    def __init__(self, config: Config) -> None:
        window = config.signup_window_seconds
        self.by_phone = FailureCounter(config.signups_per_phone, window)
        self.by_address = FailureCounter(config.signups_per_address, window)
        self.hashing = asyncio.Semaphore(config.password_hash_concurrency)
        self._attempts: collections.OrderedDict[str, Attempts] = collections.OrderedDict()

    def signup_wait(self, phone: str, address: str) -> int:
        """Seconds until this phone and address may sign up again; 0: now (and counted)."""
        wait = max(self.by_phone.retry_after(phone), self.by_address.retry_after(address))
        if not wait:
            self.by_phone.record(phone)
            self.by_address.record(address)
        return wait

    def code_wait(self, keys: tuple[str, ...], now: datetime.datetime) -> datetime.timedelta:
        return max((self._attempts.get(k, Attempts()).wait(now) for k in keys),
                   default=datetime.timedelta(0))

    def wrong_code(self, keys: tuple[str, ...], now: datetime.datetime) -> None:
        for key in keys:
            state = self._attempts.get(key, Attempts())
            if not state.wait(now):  # a pause begun meanwhile by a racing try stays as it is
                self._attempts[key] = state.after_wrong(now)
                self._attempts.move_to_end(key)
        while len(self._attempts) > RATE_KEYS_MAX:
            self._attempts.popitem(last=False)

    def try_code(self, keys: tuple[str, ...], now: datetime.datetime) -> Counted:
        """Count a try as it arrives, as a wrong one until the code proves right (as logins
        are counted before hashing): tries sent all at once, each reading the store before it
        knew, would otherwise all be compared before the first was counted. What it replaced,
        for `right_code`."""
        before = {key: self._attempts.get(key) for key in keys}
        self.wrong_code(keys, now)
        return {key: (before[key], self._attempts.get(key)) for key in keys}

    def right_code(self, account: str, counted: Counted) -> None:
        """A right code: the account starts afresh; an address's try is taken back, unless
        another try has counted there since."""
        self._attempts.pop(account, None)
        for key, (before, after) in counted.items():
            if key != account and after is not None and self._attempts.get(key) is after:
                if before is None:
                    self._attempts.pop(key, None)
                else:
                    self._attempts[key] = before
