"""Messages people read (提示语): zh-CN first, then English, in one string, everywhere."""

from __future__ import annotations


def bilingual(zh: str, en: str) -> str:
    return f"{zh} / {en}"
