"""Plain text a resident or a supervisor types (纯文本): the one check every free-text field of
the resident's side goes through (a sign-up's name and address, a notice's title and body, a
correction's proposed value).

Text is taken as typed, never rewritten: it must be a string, within its length, and hold no
character that breaks or disguises what is shown: C0/C1 controls and DEL (a newline only where
the field has paragraphs), lone UTF-16 surrogates (half an emoji, which no store can encode),
bidirectional controls (which make "photo\u202egnp.exe" read as "photoexe.png"), zero-width
and other format characters, and Unicode noncharacters. Lengths count characters after NFKC,
as a person sees them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from server.domain.rules import Problem

Label = tuple[str, str]
"""A field's label as people read it, (zh-CN, English): e.g. ("姓名", "Name")."""

# Controls (but tab and newline, judged per field), lone surrogates, bidi and zero-width
# controls, the BOM, and the noncharacters U+FDD0–FDEF and U+FFFE/FFFF.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200b-\u200f"
                     "\u202a-\u202e\u2060-\u2069\ufeff\ufdd0-\ufdef\ufffe\uffff]")
_TAB_OR_NEWLINE = re.compile("[\t\n]")


def text_problem(value: Any, pointer: str, label: Label, *, max_chars: int,
                 min_chars: int = 1, paragraphs: bool = False) -> Problem | None:
    """None when `value` is acceptable plain text for the field labelled `label` (at JSON
    Pointer `pointer`); otherwise the first thing wrong with it. `paragraphs` lets newlines in
    (a notice's body); no field takes tabs."""
    zh, en = label
    if not isinstance(value, str):
        return Problem(pointer, "text_type", f"“{zh}”应为文字", f"{en} must be text")
    if len(value) > 4 * max_chars:  # NFKC never shrinks text this much: refuse before work
        return _too_long(pointer, label, max_chars)
    bad = _UNSAFE.search(value) or _TAB_OR_NEWLINE.search(
        value.replace("\n", " ") if paragraphs else value)
    if bad is not None:
        code = f"U+{ord(bad.group()):04X}"
        return Problem(pointer, "text_character",
                       f"“{zh}”含有不允许的控制字符或不完整的字符（{code}），请重新输入",
                       f"{en} holds a control or broken character ({code}); type it again")
    shown = unicodedata.normalize("NFKC", value).strip()
    if len(shown) < min_chars:
        return Problem(pointer, "text_empty", f"请填写“{zh}”", f"{en} is required")
    if len(shown) > max_chars:
        return _too_long(pointer, label, max_chars)
    return None


def _too_long(pointer: str, label: Label, max_chars: int) -> Problem:
    zh, en = label
    return Problem(pointer, "text_length", f"“{zh}”太长，最多 {max_chars} 个字",
                   f"{en} is too long (at most {max_chars} characters)")


def unknown_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> list[Problem]:
    """A field nobody asked for is refused, not ignored: a forged `household`, `status` or
    `role` in a sign-up must not pass silently into anything that reads the body later."""
    extra = sorted(shown_name(k) for k in body if k not in allowed)
    if not extra:
        return []
    names = ", ".join(extra)
    return [Problem("/", "unknown_field", f"不允许的字段 {names}",
                    f"field(s) not allowed: {names}")]


def shown_name(name: Any) -> str:
    """A field name as a message may repeat it: at most 40 characters, a broken or control
    character escaped, so the message itself stays valid UTF-8 and on one line."""
    text = str(name)[:40]
    escaped = _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return _TAB_OR_NEWLINE.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped)


def labelled(labels: Mapping[str, Label], field: str, code: str, zh: str, en: str) -> Problem:
    """A problem naming `field` by its label in `labels` (zh-CN first), never a pointer."""
    lz, le = labels.get(field, (shown_name(field), shown_name(field)))
    return Problem(f"/{field}", code, f"“{lz}”{zh}", f"{le} {en}")


def server_filled(labels: Mapping[str, Label], body: Mapping[str, Any],
                  names: tuple[str, ...]) -> list[Problem]:
    """The first field of `names` (the server's to fill) that the body sends, refused by label."""
    sent = [k for k in names if k in body]
    return [labelled(labels, sent[0], "server_field", "由服务器填写，不能提交",
                     "is filled in by the server and cannot be sent")] if sent else []
