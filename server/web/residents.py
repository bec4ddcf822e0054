"""The residents' routes (居民注册与激活): the list of communities, sign-up, the verify that
makes the account, activation by a worker's code, and the resident's part of `/api/me`.
Thin controllers: the rules are server/domain/signup.py and activation.py, the store's side
server/sync/residents.py, the codes' delivery server/sync/verification.py.

No oracle: a sign-up's answer is one text whatever the phone, and a verify's answer is one
text whether the registry matched a household or not; what happened is told after login."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from server import errors
from server.domain import activation, signup
from server.domain.accounts import hash_password, new_session_salt
from server.domain.messages import bilingual
from server.domain.rules import Problem
from server.domain.scope import User
from server.domain.text import unknown_fields
from server.errors import json_response
from server.sync.residents import AlreadyRegistered, Residents, new_account, utc_now
from server.sync.verification import CODE_DIGITS, PendingCodes, Verification, sender_for
from server.web.guard import client_address, require_user
from server.web.keys import (
    CONFIG,
    COUCH,
    DIRECTORY,
    RECEIPTS,
    RESIDENT_INDEX,
    RESIDENTS,
    SCHEMAS,
    SIGNUP_LIMITS,
    VERIFICATION,
)
from server.web.limits import SignupLimits
from server.web.parsing import read_json, read_object

PREFIX = "/api/residents"
audit = logging.getLogger("linli.audit")

MIN_PASSWORD, MAX_PASSWORD = 8, 128
VERIFY_LABELS = {"phone": signup.LABELS["phone"], "code": ("验证码", "Verification code"),
                 "password": ("密码", "Password")}
_CODE = re.compile(f"[0-9]{{{CODE_DIGITS}}}")

CODE_SENT: dict[str, Any] = {
    "ok": True, "status": "code_sent",
    "message": bilingual("验证码已发送到您填写的手机号，10 分钟内有效。",
                         "A verification code has been sent to the phone number given; it is "
                         "valid for 10 minutes.")}


def refuse(problems: Sequence[Problem]) -> errors.CouchError:
    """A 400 naming every field wrong by its label, zh-CN first."""
    return errors.bad_request("；".join(p.zh for p in problems),
                              "; ".join(p.en for p in problems))


def unknown_community() -> errors.CouchError:
    zh, en = signup.LABELS["community"]
    return errors.bad_request(f"没有这个“{zh}”，请从列表中选择",
                              f"No such {en.lower()}; choose it from the list")


async def communities(request: web.Request) -> web.Response:
    """The communities a resident may sign up in (those with a grid), with their street, for
    the sign-up's searchable list. Names only: nothing of who lives there."""
    directory = request.app[DIRECTORY]
    found = {g.community: g.street for g in directory.grids.values() if g.community}
    return json_response({"communities": [
        {"code": code, "name": directory.area_name("community", code) or code,
         "street": street, "street_name": directory.area_name("street", street)}
        for code, street in sorted(found.items())]})


async def signup_route(request: web.Request) -> web.Response:
    """Checks the sign-up, counts it against the phone and the address, and sends a code."""
    body = await read_json(request)
    problems = signup.signup_problems(body)
    if problems:
        raise refuse(problems)
    cleaned = signup.cleaned_signup(body)
    if not await request.app[RESIDENTS].known_community(cleaned["community"]):
        raise unknown_community()
    wait = request.app[SIGNUP_LIMITS].signup_wait(cleaned["phone"], client_address(request))
    if wait:
        raise errors.too_many_requests(wait)
    verification = request.app[VERIFICATION]
    await verification.sender.send(cleaned["phone"], verification.codes.issue(
        cleaned["phone"], cleaned))
    return json_response(CODE_SENT)


def code_problem(code: Any) -> Problem | None:
    if isinstance(code, str) and _CODE.fullmatch(code) is not None:
        return None
    zh, en = VERIFY_LABELS["code"]
    return Problem("/code", "code", f"“{zh}”应为 {CODE_DIGITS} 位数字",
                   f"{en} must be {CODE_DIGITS} digits")


def password_problem(password: Any) -> Problem | None:
    zh, en = VERIFY_LABELS["password"]
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return Problem("/password", "password", f"“{zh}”应为 {MIN_PASSWORD}–{MAX_PASSWORD} 个字符",
                       f"{en} must be {MIN_PASSWORD}–{MAX_PASSWORD} characters")
    if errors.LONE_SURROGATE.search(password):
        return Problem("/password", "password", f"“{zh}”含有不完整的字符，请重新输入",
                       f"{en} holds a broken character; type it again")
    return None


def verify_problems(body: dict[str, Any]) -> list[Problem]:
    found = (signup.phone_problem(body.get("phone")), code_problem(body.get("code")),
             password_problem(body.get("password")))
    return unknown_fields(body, frozenset(VERIFY_LABELS)) + [p for p in found if p is not None]


async def verify(request: web.Request) -> web.Response:
    """The code from the phone and a password: the account is made, the sign-up recorded in
    its grid (activated at once, or waiting in the worker's queue), and the same answer given
    either way."""
    body = await read_object(request)
    problems = verify_problems(body)
    if problems:
        raise refuse(problems)
    phone = signup.normalise_phone(body["phone"])
    assert phone is not None
    cleaned = request.app[VERIFICATION].codes.take(phone, body["code"])
    if cleaned is None:
        zh, en = VERIFY_LABELS["code"]
        raise errors.bad_request(f"“{zh}”不正确或已过期，请重新获取",
                                 f"{en} is wrong or has expired; ask for a new one")
    residents, limits = request.app[RESIDENTS], request.app[SIGNUP_LIMITS]
    async with limits.hashing:
        hashed = await asyncio.to_thread(hash_password, body["password"])
    now, account = utc_now(), new_account()
    registration = await residents.registration(cleaned, account, now)
    if registration is None:
        raise unknown_community()
    try:
        await residents.create_account(account, phone, hashed, new_session_salt(),
                                       cleaned["community"], registration.grid, now)
    except AlreadyRegistered:
        raise errors.CouchError(409, "conflict", bilingual(
            "这个手机号已经注册，请直接登录", "This phone number is registered already; log "
            "in.")) from None
    await residents.write(registration.grid, registration.docs)
    audit.info("resident %s signed up in %s: %s", account, registration.grid,
               registration.outcome)
    return json_response(signup.public_answer(registration.outcome))


def require_resident(request: web.Request,
                     what: tuple[str, str] = ("用激活码", "uses an activation code")) -> User:
    """The logged-in resident; anyone else is refused with what only a resident does."""
    user = require_user(request)
    if user.role != "resident":
        raise errors.forbidden(f"只有居民账号可以{what[0]}", f"Only a resident account {what[1]}.")
    return user


def require_staff(request: web.Request, what: tuple[str, str]) -> User:
    """The logged-in worker, supervisor or admin; a resident is refused before anything is
    looked up, so a staff route answers every resident alike, whatever id it names."""
    user = require_user(request)
    if user.role == "resident":
        raise errors.forbidden(f"只有工作人员可以{what[0]}", f"Only staff {what[1]}.")
    return user


async def activate(request: web.Request) -> web.Response:
    """A logged-in resident types the 8-character code a worker made: 5 wrong tries (per
    account and per address) then a pause; a valid code makes the link and is spent."""
    user = require_resident(request)
    body = await read_object(request)
    problems = unknown_fields(body, frozenset({"code"}))
    code = activation.normalise_code(body.get("code"))
    if code is None:
        zh, en = activation.LABEL
        problems.append(Problem("/code", "code", f"“{zh}”应为 8 位字母数字，例如 ABCD-EFGH",
                                f"{en} must be 8 letters and digits, e.g. ABCD-EFGH"))
    if problems:
        raise refuse(problems)  # not a try: nothing was compared
    assert code is not None
    limits, residents = request.app[SIGNUP_LIMITS], request.app[RESIDENTS]
    now = utc_now()
    keys = (f"account:{user.name}", f"address:{client_address(request)}")
    wait = limits.code_wait(keys, now)
    if wait:
        raise errors.CouchError(429, "too_many_requests", activation.pause_problem(
            wait).message, headers={"Retry-After": str(int(wait.total_seconds()) + 1)})
    counted = limits.try_code(keys, now)  # before any await: racing tries count in order
    account = await residents.account_doc(user.name) or {}
    community = str((account.get("resident") or {}).get("community") or "")
    stored = await residents.find_code(community, code) if community else None
    problem = activation.verdict_problem(activation.verdict(stored, now))
    if problem is not None:
        raise refuse([problem])
    assert stored is not None
    link = await residents.redeem(stored, user.name, now)
    if link is None:  # spent by someone else a moment ago
        used = activation.verdict_problem("used")
        assert used is not None
        raise errors.CouchError(409, "conflict", used.message)
    limits.right_code(keys[0], counted)
    return json_response({"ok": True, "household": link["household"], "role": link["role"],
                          "status": link["status"]})


async def resident_state(request: web.Request, user: User) -> dict[str, Any]:
    """The resident's part of `/api/me`: pending or active, and their own household."""
    return await request.app[RESIDENTS].state(user.name)


async def residents_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open (cleanup contexts run in order)."""
    app[RESIDENTS] = Residents(app[COUCH], app[DIRECTORY], app[SCHEMAS], app[CONFIG],
                               app[RECEIPTS])
    if RESIDENT_INDEX in app:  # what it writes, the residents' sync index reads at once
        app[RESIDENTS].on_written = app[RESIDENT_INDEX].written
    yield


def setup(app: web.Application) -> None:
    config = app[CONFIG]
    app[VERIFICATION] = Verification(sender_for(config.verification_sender), PendingCodes())
    app[SIGNUP_LIMITS] = SignupLimits(config)
    app.cleanup_ctx.append(residents_ctx)
    app.router.add_get(PREFIX + "/communities", communities)
    app.router.add_post(PREFIX + "/signup", signup_route)
    app.router.add_post(PREFIX + "/verify", verify)
    app.router.add_post(PREFIX + "/activate", activate)
