"""Messages people read (提示语): zh-CN first, then English, in one string, everywhere."""

from __future__ import annotations


def bilingual(zh: str, en: str) -> str:
    return f"{zh} / {en}"


class Refused(Exception):
    """A rule says no, with CouchDB's error name and status: the domain raises it without
    knowing HTTP, and the app's one error path (server/errors.py) answers it like any error."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def refused(status: int, error: str, zh: str, en: str) -> Refused:
    return Refused(status, error, bilingual(zh, en))
