"""Passwords of accounts (账号口令): how they are stored, shared by the server's login and the
command line that creates accounts. Hashing is computation, not I/O, so it is a domain rule."""

from __future__ import annotations

import secrets

import argon2

# OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
PASSWORD_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1,
                                        hash_len=32, salt_len=16, type=argon2.Type.ID)


def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(password)


def new_session_salt() -> str:
    """A per-account salt in every session token: a new one ends every session of the account."""
    return secrets.token_hex(16)
