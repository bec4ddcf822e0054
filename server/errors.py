"""One error path for the whole app: CouchDB's `{"error", "reason"}` shape and status codes, so
every CouchDB client understands it, with a reason a field worker can read (zh-CN first, then
English)."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import re
from typing import Any

from aiohttp import web

from server.domain.messages import Refused, bilingual

log = logging.getLogger(__name__)


class CouchError(Refused):
    """An answer in CouchDB's error shape; raised anywhere, rendered by the error middleware."""

    def __init__(self, status: int, error: str, reason: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, error, reason)
        self.headers = headers or {}

    def response(self) -> web.Response:
        return json_response({"error": self.error, "reason": self.reason}, status=self.status,
                             headers=self.headers)


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_bytes(body: Any) -> bytes:
    """An answer's JSON. A lone surrogate a client sent (named in a reason, say) goes back as
    its JSON escape: the answer stays valid UTF-8, which a raw surrogate is not."""
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(
        body, ensure_ascii=False, separators=(",", ":"))).encode()


def json_response(body: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json_bytes(body), status=status, content_type="application/json",
                        headers=headers)


def bad_request(zh: str, en: str) -> CouchError:
    return CouchError(400, "bad_request", bilingual(zh, en))


def unauthorized(zh: str = "请先登录", en: str = "You are not logged in.") -> CouchError:
    return CouchError(401, "unauthorized", bilingual(zh, en))


def forbidden(zh: str, en: str) -> CouchError:
    return CouchError(403, "forbidden", bilingual(zh, en))


def db_not_found() -> CouchError:
    # CouchDB's own reason, so a database outside the user's scope reads exactly like a missing one.
    return CouchError(404, "not_found", "Database does not exist.")


def doc_not_found(reason: str = "missing") -> CouchError:
    return CouchError(404, "not_found", reason)


def too_large(zh: str, en: str) -> CouchError:
    return CouchError(413, "too_large", bilingual(zh, en))


def unsupported_media(zh: str, en: str) -> CouchError:
    return CouchError(415, "bad_content_type", bilingual(zh, en))


def too_many_requests(retry_after: int) -> CouchError:
    """A 429 that says when to try again: Retry-After for programs, and for people a duration
    and the clock time (UTC, the server's; the app shows it in the phone's own time)."""
    at = (datetime.datetime.now(datetime.UTC)
          + datetime.timedelta(seconds=retry_after)).strftime("%H:%M:%S")
    if retry_after >= 120:
        minutes = -(-retry_after // 60)
        zh_wait, en_wait = f"{minutes} 分钟", f"{minutes} minutes"
    else:
        zh_wait, en_wait = f"{retry_after} 秒", f"{retry_after} seconds"
    return CouchError(
        429, "too_many_requests",
        bilingual(f"尝试次数过多，请 {zh_wait}后（UTC {at} 之后）再试",
                  f"Too many attempts; try again in {en_wait} (after {at} UTC)."),
        headers={"Retry-After": str(retry_after)})


def store_unavailable() -> CouchError:
    return CouchError(
        503, "service_unavailable",
        bilingual("服务器的数据库暂时不可用，记录仍保存在手机上，稍后会自动重试",
                  "The server's database is briefly unavailable; records stay on the phone and "
                  "will be retried."),
        headers={"Retry-After": "5"})


CLIENT_CLOSED = 499  # nginx's "client closed request": nobody receives it, the log shows it
WENT_AWAY = web.RequestKey("went_away", bool)


def went_away(request: web.Request) -> None:
    """A client that hung up or reset its connection: one INFO line per request, not an error
    and not a traceback."""
    if not request.get(WENT_AWAY):
        request[WENT_AWAY] = True
        log.info("client went away during %s %s", request.method, request.path)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except CouchError as exc:
        return exc.response()
    except Refused as exc:  # a domain rule's refusal (server/domain/messages.py)
        return CouchError(exc.status, exc.error, exc.reason).response()
    except web.HTTPRequestEntityTooLarge:
        return too_large("请求内容过大", "The request body is too large.").response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        return json_response({"error": error, "reason": exc.reason}, status=exc.status)
    except asyncio.CancelledError:
        transport = request.transport
        if transport is None or transport.is_closing():  # handler cancelled: its client left
            went_away(request)
        raise
    except ConnectionResetError:  # writing to a client that reset its connection
        went_away(request)
        return web.Response(status=CLIENT_CLOSED)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return json_response({"error": "unknown_error", "reason": bilingual(
            "服务器内部错误，已记录", "Internal server error; it has been logged.")}, status=500)
