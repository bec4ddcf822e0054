"""Reading a `/couch/` request: its path, split into segments as CouchDB names them, its JSON
body as CouchDB takes it, and its query parameters, each checked by its kind (sync/params.py)
before anything reaches the store."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from server import errors
from server.sync import params as qparams

PREFIX = "/couch"


def path_segments(request: web.Request) -> list[str]:
    """The path after /couch/, split on '/' before decoding, so `a%2Fb` stays one segment. An
    empty, `.` or `..` segment (encoded or not) is refused: nothing may climb out of the
    database it names. One trailing slash is allowed (PouchDB asks for `/db/`)."""
    raw = request.rel_url.raw_path[len(PREFIX):]
    if raw.startswith("/"):
        raw = raw[1:]
    if raw.endswith("/"):
        raw = raw[:-1]
    if not raw:
        return []
    segments = [unquote(s) for s in raw.split("/")]
    if any(s in ("", ".", "..") for s in segments):
        raise errors.bad_request("路径无效", "Invalid path: empty, '.' or '..' segment.")
    return segments


def encode_path(segments: list[str]) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """JSON in UTF-8, as CouchDB takes it (a UTF-16 body would reach the store as it came).
    Lone surrogates are let through here, escaped or as raw bytes, so that the document that
    holds one is refused alone and the rest of its batch is stored (validation.check_document);
    every other path that stores a body refuses them whole (couch.py, when encoding)."""
    try:
        return json.loads(raw.decode("utf-8", "surrogatepass"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise errors.bad_request("请求内容不是有效的 JSON",
                                 "The request body is not valid JSON.") from None


async def read_body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise errors.unsupported_media("请求内容类型应为 application/json",
                                       "Content-Type must be application/json.")
    return await request.read()  # bounded by client_max_size: 413 above it


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    if allow_empty and request.content_type != "application/json" and not request.can_read_body:
        return {}
    raw = await read_body(request)
    if allow_empty and not raw.strip():
        return {}
    return parse_json(raw)


def as_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request("请求内容应为 JSON 对象",
                                 "The request body must be a JSON object.")
    return body


async def read_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    return as_object(await read_json(request, allow_empty=allow_empty))


def pick(query: Mapping[str, str], allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters of `allowed`, each checked by its kind (params.py): a bad one is a
    400 and never reaches the store."""
    return qparams.pick(query, allowed)


def whole_number(query: Mapping[str, str], name: str, label: str, default: int,
                 most: int) -> int:
    """A query parameter that counts (a page's size, a page's number): digits only, from 1
    to `most`; anything else (a sign, a fraction, spaces, a huge number, text) a 400 naming
    it by its label."""
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdecimal() and len(raw) <= 9) or not 1 <= int(raw) <= most:
        raise errors.bad_request(f"“{label}”应为 1 到 {most} 的整数",
                                 f"{name} must be a whole number from 1 to {most}.")
    return int(raw)


def check_count(items: Any, limit: int, what: str) -> None:
    if len(items) > limit:
        raise errors.too_large(f"一次最多 {limit} 条{what}，收到 {len(items)} 条",
                               f"At most {limit} {what} items per request, got {len(items)}.")


def json_answer(body: Any, status: int = 200) -> web.Response:
    return errors.json_response(body, status=status)
