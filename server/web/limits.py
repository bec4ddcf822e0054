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


ACTS_PER_TASK = 6  # claims and cancellations per account and task a day: claim, cancel, claim
# again twice over; each new one is a permanent claim document and may move others' places
ACTS_PER_ACCOUNT = 60  # per account a day over all tasks: a keen volunteer's day is far fewer
ACTS_WINDOW = 24 * 3600.0


class ActLimits:
    """How often a resident claims and cancels volunteer places (报名/取消频率). Counted as
    a try arrives, before it is stored, so tries sent at once cannot all pass; a retry of an
    act already stored is not a new act and is given back (`give_back`)."""

    def __init__(self) -> None:
        self.by_task = FailureCounter(ACTS_PER_TASK, ACTS_WINDOW)
        self.by_account = FailureCounter(ACTS_PER_ACCOUNT, ACTS_WINDOW)

    @staticmethod
    def keys(account: str, task: str) -> tuple[str, str]:
        return f"{account}|{task}", account

    def take(self, account: str, task: str) -> int:
        """Seconds until the account may act on the task again; 0: now, and counted."""
        on_task, anywhere = self.keys(account, task)
        wait = max(self.by_task.retry_after(on_task), self.by_account.retry_after(anywhere))
        if not wait:
            self.by_task.record(on_task)
            self.by_account.record(anywhere)
        return wait

    def give_back(self, account: str, task: str) -> None:
        on_task, anywhere = self.keys(account, task)
        self.by_task.forget_one(on_task)
        self.by_account.forget_one(anywhere)
