"""Passwords of accounts (账号口令): how they are stored, shared by the server's login and the
command line that creates accounts. Hashing is computation, not I/O, so it is a domain rule."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import argon2

from server.domain.messages import refused

# OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
PASSWORD_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1,
                                        hash_len=32, salt_len=16, type=argon2.Type.ID)


def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(password)


def new_session_salt() -> str:
    """A per-account salt in every session token: a new one ends every session of the account."""
    return secrets.token_hex(16)


ACCOUNT_ACTIONS = ("disable", "enable", "remove")
"""What an admin does to a staff account (停用 / 启用 / 删除)."""

REMOVED_KEEPS = ("_id", "_rev", "type", "name", "role", "created_at")
"""A removed account keeps only who it was: its name stays on what it wrote (created_by,
verdicts, audit) and can never be given to someone else, who would then seem its author."""


def changed_account(doc: Mapping[str, Any], action: str, now: str,
                    salt: str) -> dict[str, Any]:
    """The user document after `action`. Disabling and removing take a new session salt, so
    every cookie of the account dies with it, and enabling again does not bring old cookies
    back. A removed account has no password, scope or rights left and cannot be enabled."""
    if action not in ACCOUNT_ACTIONS:
        raise refused(400, "bad_request", f"操作应为 {'、'.join(ACCOUNT_ACTIONS)}",
                      f"The action must be one of {', '.join(ACCOUNT_ACTIONS)}.")
    if doc.get("removed_at"):
        raise refused(409, "conflict",
                      f"用户 {doc.get('name')} 已删除，不能再{ACTION_WORDS[action]}",
                      f"User {doc.get('name')} was removed and cannot be {action}d.")
    if action == "enable":
        return {**{k: v for k, v in doc.items() if k != "disabled_at"}, "disabled": False}
    if action == "disable":
        return {**doc, "disabled": True, "disabled_at": now, "session_salt": salt}
    kept = {key: doc[key] for key in REMOVED_KEEPS if key in doc}
    return {**kept, "disabled": True, "removed_at": now, "password": "", "session_salt": salt,
            "grids": [], "communities": [], "streets": []}


ACTION_WORDS = {"disable": "停用", "enable": "启用", "remove": "删除"}
