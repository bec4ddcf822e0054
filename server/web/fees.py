"""Property fees routes (物业费, 智缴). Thin controllers: the rules are server/domain/fees.py,
the store's side server/sync/fees.py, the design docs/fees.md.

- `GET /api/fees/bills`: an owner's bills (the units the register names them owner of), paid
  or owed, with the late fee owed today and the receipt of a paid one.
- `POST /api/fees/bills/{bill}/pay` `{request}`: an owner starts paying: an order, never a
  payment (the phone may queue it offline; the request id makes a retry the same order).
- `GET /api/fees/receipts/{bill}`: the printable receipt (收据) of a paid bill, its owner's.
- `POST /api/fees/notify`: the payment provider's notification (no login: its signature is
  its credential). 200 when taken or already taken; refused ones are logged and answered 401.
- `POST /api/fees/rolls`: a compound's bills for a period from a rate per m² (property
  company of the compound, its community's supervisor, the admin).
- `POST /api/fees/rolls/import` `{compound, due_date, name, file}`: the company's CSV or XLSX
  (base64); every row checked, nothing written unless all are right.
- `GET /api/fees/compounds`: billed, paid and owed per compound, and the collection rate.
- `POST /api/fees/reconcile` `{day, statement}`: the day's ledger against the provider's
  statement file; the report of differences (admin).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import html
import io
import zipfile
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from aiohttp import web

from server import errors
from server.config import Config
from server.domain import fees as rules
from server.domain.scope import User
from server.errors import json_response
from server.sync.fees import DemoProvider, Fees, TestProvider, no_such_bill
from server.web.guard import require_role
from server.web.keys import CONFIG, COUCH, DIRECTORY, FEES, SCHEMAS, USER
from server.web.parsing import read_body, read_object

PREFIX = "/api/fees"
MAX_FILE_BYTES = 8 * 1024 * 1024  # a compound's yearly file of 20,000 rows is ~1 MB
MAX_ROWS = 20_000
MAX_UNZIPPED_BYTES = 64 * 1024 * 1024
MAX_STATEMENT_BYTES = 24 * 1024 * 1024  # a day of 200,000 trades is ~15 MB
STAFF = ("property", "supervisor", "admin")


def require_staff(request: web.Request) -> User:
    return require_role(request, STAFF, "只有物业公司、社区工作人员或市级管理员可以管理账单",
                        "Only property companies, community supervisors and the city admin "
                        "manage bills.")


def require_owner(request: web.Request) -> User:
    return require_role(request, ("resident",), "只有业主本人可以查看和缴纳账单",
                        "Only owners see and pay their bills.")


async def my_bills(request: web.Request) -> web.Response:
    user = require_owner(request)
    if request.query:
        raise errors.bad_request("此处不接受查询参数", "This list takes no query parameters.")
    return json_response({"bills": await request.app[FEES].my_bills(user)})


async def pay(request: web.Request) -> web.Response:
    user = require_owner(request)
    body = await read_object(request)
    order = await request.app[FEES].start(user, request.match_info["bill"], body)
    return json_response({"ok": True, **order}, status=201)


async def receipt(request: web.Request) -> web.Response:
    """The printable receipt of a paid bill (a page the phone keeps and prints)."""
    user = require_owner(request)
    store = request.app[FEES]
    key = request.match_info["bill"]
    mine = [b for b in await store.my_bills(user) if b["bill"] == key and b["state"] == "paid"]
    if not mine:
        raise no_such_bill()
    test = isinstance(store.provider, TestProvider)
    return web.Response(text=receipt_page(mine[0], test), content_type="text/html",
                        headers={"Cache-Control": "private, no-store"})


TEST_MARK = ("<p id=\"test-provider\" style=\"border:2px solid #b00;padding:.4em\">"
             "测试支付渠道：演示用，非真实付款，本收据无效 / Test payment provider: demo only, "
             "no real money; not a valid receipt</p>")


def receipt_page(bill: Mapping[str, Any], test: bool = False) -> str:
    """收据: what was paid, for which unit and period, when, under which order; marked when
    the payment came through the test provider (a demo's or a test's)."""
    e = html.escape
    paid = bill["paid"]
    rows = [("小区 / Compound", bill["compound"]), ("房屋 / Unit", bill["unit"]),
            ("账期 / Period", bill["period"]),
            ("本金 / Principal", f"¥{rules.yuan(bill['principal'])}"),
            ("实缴 / Paid", f"¥{rules.yuan(paid['amount'])}"),
            ("支付时间 / Paid at", paid["paid_at"]), ("订单号 / Order", paid["order"]),
            ("交易号 / Transaction", paid["transaction"])]
    cells = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    return ("<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\">"
            "<title>物业费收据 / Property fee receipt</title>"
            "<style>body{font:16px sans-serif;max-width:36em;margin:2em auto}"
            "table{border-collapse:collapse;width:100%}th,td{border:1px solid #999;"
            "padding:.4em;text-align:left}@media print{button{display:none}}</style>"
            "<h1>物业费收据 <small>Property fee receipt</small></h1>"
            f"{TEST_MARK if test else ''}<table>{cells}</table>"
            "<p><button onclick=\"print()\">打印 / Print</button></p>"
            "</html>")


async def notify(request: web.Request) -> web.Response:
    """The provider's call. An account logged in is no provider: 403 before anything is read."""
    if request.get(USER) is not None:
        raise errors.forbidden("支付通知只由支付渠道发送", "Notifications come from the payment "
                               "provider only.")
    body = await read_body(request)
    try:
        outcome = await request.app[FEES].notify(request.headers, body)
    except rules.Forged as exc:
        raise errors.CouchError(401, "unauthorized", f"{exc.zh} / {exc.en}") from None
    return json_response({"code": "SUCCESS", "outcome": outcome})


async def issue(request: web.Request) -> web.Response:
    user = require_staff(request)
    draft = await read_object(request)
    doc, count = await request.app[FEES].issue(user, draft)
    return json_response({"ok": True, "roll": doc["_id"], "bills": count,
                          "billed": sum(doc["bills"].values())}, status=201)


def file_rows(name: str, data: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(headers, numbered rows) of a CSV (UTF-8 or GBK) or XLSX file, values as text."""
    if name.lower().endswith(".xlsx"):
        from openpyxl import load_workbook

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNZIPPED_BYTES:
                raise ValueError("too large unzipped")
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            values = [["" if v is None else str(v) for v in row] for row in
                      book.worksheets[0].iter_rows(max_row=MAX_ROWS + 2, max_col=20,
                                                   values_only=True)]
        finally:
            book.close()
    elif name.lower().endswith(".csv"):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ValueError("encoding")
        values = list(csv.reader(io.StringIO(text)))
    else:
        raise ValueError("kind")
    headers = [h.strip() for h in (values[0] if values else [])]

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for number, cells in enumerate(values[1:], start=2):
            if any(str(c).strip() for c in cells):
                yield number, dict(zip(headers, (str(c).strip() for c in cells), strict=False))
    return headers, list(rows())


async def import_file(request: web.Request) -> web.Response:
    user = require_staff(request)
    body = await read_object(request)
    name, file = body.get("name"), body.get("file")
    if (set(body) != {"compound", "due_date", "name", "file"} or not isinstance(name, str)
            or not isinstance(file, str) or len(file) > MAX_FILE_BYTES * 4 // 3 + 4):
        raise errors.bad_request("请上传一个账单文件（compound、due_date、name、file：csv 或 xlsx，"
                                 "base64，不超过 8 MB）",
                                 "Send one bill file: compound, due_date, name and file (csv "
                                 "or xlsx, base64, at most 8 MB).")
    try:
        headers, rows = await asyncio.to_thread(
            file_rows, name, base64.b64decode(file, validate=True))
    except (binascii.Error, ValueError, KeyError, OSError, zipfile.BadZipFile, TypeError,
            IndexError, csv.Error) as exc:  # csv.Error: a cell over the csv module's limit
        raise errors.bad_request("文件无法读取：应为 UTF-8 或 GBK 的 CSV，或 XLSX",
                                 "The file cannot be read: a UTF-8 or GBK CSV, or an "
                                 "XLSX.") from exc
    missing = [h for h in rules.IMPORT_HEADERS if h not in headers]
    if missing or len(rows) > MAX_ROWS:
        raise errors.bad_request(f"缺少必需的列：{'、'.join(missing)}，或超过 {MAX_ROWS} 行",
                                 f"Required columns missing: {', '.join(missing)}, or more "
                                 f"than {MAX_ROWS} rows.")
    written, problems = await request.app[FEES].import_rows(
        user, str(body["compound"]), str(body["due_date"]), rows)
    if problems:
        return json_response({"error": "bad_request", "reason": "；".join(problems[:20]),
                              "rows": problems}, status=400)
    return json_response({"ok": True, "rolls": [d["_id"] for d in written],
                          "bills": sum(len(d["bills"]) for d in written)}, status=201)


async def compounds(request: web.Request) -> web.Response:
    user = require_staff(request)
    store = request.app[FEES]
    codes = await store.compounds_of(user)
    return json_response({"compounds": await store.collection(codes)})


async def reconcile(request: web.Request) -> web.Response:
    user = require_role(request, ("admin",), "对账由市级管理员进行",
                        "Reconciliation is the city admin's.")
    if request.content_length and request.content_length > MAX_STATEMENT_BYTES:
        raise errors.too_large("对账单太大", "The statement is too large.")
    body = await read_object(request)
    if set(body) != {"day", "statement"} or not isinstance(body["statement"], str):
        raise errors.bad_request("应为 {day, statement}：对账日和对账单文件的文本",
                                 "Send {day, statement}: the day and the statement file's text.")
    report = await request.app[FEES].reconcile(user, str(body["day"]), body["statement"])
    return json_response(report)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def provider_of(config: Config) -> TestProvider | None:
    """The configured provider; the demo's own test network (sync/fees.py `DemoProvider`)
    for `--demo` on a loopback address when none is set. Never in production: config.py
    refuses production with the demo city or the test provider."""
    if config.fees_provider == "test":
        return TestProvider(config.fees_test_secret.encode())
    if config.demo and not config.production and config.host in LOOPBACK:
        return DemoProvider()
    return None


async def fees_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store and the directory are open (cleanup contexts run in order)."""
    app[FEES] = store = Fees(app[COUCH], app[DIRECTORY], app[SCHEMAS], provider_of(app[CONFIG]))
    yield
    for task in list(store.deliveries):  # the demo network's notifications under way
        task.cancel()
    await asyncio.gather(*store.deliveries, return_exceptions=True)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(fees_ctx)
    bill = PREFIX + "/bills/{bill:[^/]{1,200}}"
    for method, path, handler in (
            ("GET", PREFIX + "/bills", my_bills), ("POST", bill + "/pay", pay),
            ("GET", PREFIX + "/receipts/{bill:[^/]{1,200}}", receipt),
            ("POST", PREFIX + "/notify", notify), ("POST", PREFIX + "/rolls", issue),
            ("POST", PREFIX + "/rolls/import", import_file),
            ("GET", PREFIX + "/compounds", compounds),
            ("POST", PREFIX + "/reconcile", reconcile)):
        app.router.add_route(method, path, handler)
