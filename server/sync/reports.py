"""Problem reports in the store (问题上报): reports, their steps and the server's status of each
are kept in the residents database, so the reporter's phone holds its own through the
resident sync (filed under `reporter` by the allowed-ids index) and nobody else's. Staff
reach them through the routes only. The rules are server/domain/reports.py.

Ids make a queued request sent again the same document: a report is `report:<keyed digest
of account and request>`, a step `report_step:<report key>:<keyed digest of actor and
request>` (HMAC with the installation's secret, so staff cannot recompute a reporter);
each is written without a revision, so a replay meets the stored one and changes nothing.
A step's order is the order the server received it (`at`, its time, then its id): the status
(`report_status:<key>`) is the fold of the stored steps in that order, rewritten after each
step, so any process computing it writes the same state.

Every report's row (`ReportRows`) is kept in memory from the residents database's changes,
as the residents' index applies them, and from this server's own writes: the dashboard and
the lists read those rows, never every report.

Photos are re-encoded by Pillow (`clean_photo`), in a worker thread: what is stored holds
pixels only, no EXIF (GPS position included), XMP, comments, colour profiles or text chunks,
whatever the phone sent; bytes that do not decode as the image type their magic says, or
whose header promises too many pixels, are refused before anything is stored."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import io
import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PIL import Image

from server.domain import reports as rules
from server.domain.messages import Refused, bilingual
from server.domain.reports import key_of, status_doc, status_id
from server.domain.scope import DIRECTORY_DB, RESIDENTS_DB, Directory, User
from server.domain.validation import SchemaRegistry
from server.store.couch import Conflict, CouchClient, NotFound, db_path
from server.sync.allowed import ResidentIndex
from server.sync.notices import refused

log = logging.getLogger(__name__)
audit = logging.getLogger("linli.audit")

TRIES = 5
REBUILD_AFTER = datetime.timedelta(minutes=1)
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
SMALL_PIXELS = 1_000_000  # decoded in a few milliseconds, whatever the bytes
MAX_PIXELS_PER_BYTE = 200  # a phone's JPEG holds about 6 pixels a byte, a flat PNG far more
DECODERS = 2  # photos decoded at once per process, off the event loop


def keyed(secret: bytes, *parts: str) -> str:
    """A digest keyed with the installation's secret: staff who know the residents' account
    names and see a request id cannot recompute who filed an anonymous report."""
    return hmac.new(secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def report_id(account: str, request: str, secret: bytes) -> str:
    return f"report:{keyed(secret, 'report', account, request)[:16]}"


def step_id(report: str, actor: str, request: str, secret: bytes) -> str:
    return f"report_step:{key_of(report)}:{keyed(secret, 'step', actor, request)[:16]}"


def stamp(now: datetime.datetime) -> str:
    return now.isoformat(timespec="microseconds")


def no_such_report() -> Refused:
    return Refused(404, "not_found", bilingual("没有这个问题，或您无权查看",
                                               "No such report, or it is not yours to see."))


def place_of(doc: Mapping[str, Any]) -> rules.Place:
    return rules.Place(str(doc.get("grid", "")), str(doc.get("community", "")),
                       str(doc.get("street", "")), str(doc.get("compound", "")),
                       str(doc.get("company", "")))


def clean_photo(index: int, data: Any, max_bytes: int, max_pixels: int) -> tuple[str, bytes]:
    """A photo as sent (`{data: base64}`) checked and re-encoded without metadata: (content
    type by its bytes, clean bytes). Refused by its number when too large, not base64, not an
    allowed image by its bytes, or not decodable as one."""
    raw = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(raw, str):
        raise refused([rules.problem("photos", "photo_data", f"第 {index + 1} 张缺少图片数据",
                                     f"number {index + 1} has no image data")])
    if len(raw) > (max_bytes * 4) // 3 + 4:  # refused before decoding a 20 MB string
        raise refused([rules.problem("photos", "photo_size",
                                     f"第 {index + 1} 张过大（最大 {max_bytes // 1024} KB）",
                                     f"number {index + 1} is too large (at most "
                                     f"{max_bytes // 1024} KB)")])
    try:
        content = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise refused([rules.problem("photos", "photo_data",
                                     f"第 {index + 1} 张的内容不是有效的 base64",
                                     f"number {index + 1} is not valid base64")]) from None
    found = rules.photo_problem(index, content, max_bytes)
    if found is not None:
        raise refused([found])
    content_type = rules.sniff(content) or ""
    undecodable = rules.problem("photos", "photo_type", f"第 {index + 1} 张无法作为图片读取",
                                f"number {index + 1} cannot be read as an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content), formats=[FORMATS[content_type]]) as image:
                too_many_pixels(index, image.size, len(content), max_pixels)
                image.load()
                return content_type, pixels_only(image, FORMATS[content_type])
    except Refused:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        raise refused([undecodable]) from None


async def clean_photos(sent: Sequence[Any], decoding: asyncio.Semaphore, max_bytes: int,
                       max_pixels: int) -> list[tuple[str, bytes]]:
    """`clean_photo` of each, in a worker thread, a few at a time (`decoding`): decoding is
    CPU that would otherwise hold every request of the process. Star-rating evidence too."""
    if not sent:
        return []
    async with decoding:
        return await asyncio.to_thread(lambda: [clean_photo(n, p, max_bytes, max_pixels)
                                                for n, p in enumerate(sent)])


def too_many_pixels(index: int, size: tuple[int, int], length: int, max_pixels: int) -> None:
    """Refused from the header, before decoding: more pixels than the settings allow, or a
    photo that unpacks to absurdly many pixels for its bytes (a one-colour 5000×5000 WebP
    is under 1 KB and costs a second of CPU to decode)."""
    pixels = size[0] * size[1]
    if pixels > max_pixels or (pixels > SMALL_PIXELS and pixels > MAX_PIXELS_PER_BYTE * length):
        raise refused([rules.problem(
            "photos", "photo_pixels", f"第 {index + 1} 张像素过多",
            f"number {index + 1} has too many pixels")])


def pixels_only(image: Image.Image, kind: str) -> bytes:
    """The pixels in a fresh image (no `info`: no comment, ICC profile, text, EXIF or XMP
    can ride along into the writer), encoded again."""
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "L" if image.mode == "L" else "RGBA" if alpha and kind != "JPEG" else "RGB"
    kept = image.convert(mode)
    fresh = Image.frombytes(mode, kept.size, kept.tobytes())
    out = io.BytesIO()
    fresh.save(out, format=kind, **({"quality": 85} if kind != "PNG" else {}))
    return out.getvalue()


def attachments(photos: Sequence[tuple[str, bytes]], prefix: str) -> dict[str, Any]:
    return {f"{prefix}-{n + 1}.{EXTENSIONS[ct]}": {
        "content_type": ct, "data": base64.b64encode(data).decode()}
        for n, (ct, data) in enumerate(photos)}


def step_of(doc: Mapping[str, Any]) -> rules.Step:
    return rules.Step(str(doc["_id"]), str(doc.get("created_by", "")),
                      frozenset(doc.get("parts") or ()), str(doc.get("from")),
                      int(doc.get("round", 0)), str(doc.get("to")),
                      str(doc.get("assignee", "")), doc.get("resolve") is True)


def received(steps: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Steps in the order the server received them."""
    return sorted(steps, key=lambda d: (str(d.get("at", "")), str(d["_id"])))


# what a row needs of a report (no text, no photo)
REPORT_KEPT = ("reporter", "reporter_kind", "assignee", "grid", "community", "street",
               "compound", "company", "category", "submitted_at")


def revision(doc: Mapping[str, Any]) -> int:
    """A revision's number (`3-abc` → 3): a status told twice keeps the later one."""
    number = str(doc.get("_rev", "")).partition("-")[0]
    return int(number) if number.isdecimal() and len(number) < 12 else 0


def kept_row(doc: Mapping[str, Any], held: Mapping[str, Any],
             categories: Sequence[rules.Category], calendar: rules.Calendar) -> rules.Kept:
    """A report and its status as one row (rule 8's figure, rule 6's deadlines)."""
    category = rules.category_of(doc.get("category"), categories)
    submitted, done = parse_time(doc.get("submitted_at")), parse_time(held.get("done_at"))
    hours = (done - submitted).total_seconds() / 3600 if submitted and done else None
    place = place_of(doc)
    figure = rules.Figure(place.street, place.community, place.grid,
                          str(doc.get("category", "")), str(held.get("state", "submitted")),
                          False, hours, rules.counted_rating(doc, held))
    limits = None if category is None or submitted is None else rules.deadlines(
        category, rules.Timing(submitted=submitted, reopened=parse_time(held.get("reopened_at"))),
        calendar)
    return rules.Kept(str(doc["_id"]), str(doc.get("reporter", "")),
                      str(held.get("assignee") or doc.get("assignee", "")), place,
                      str(doc.get("submitted_at", "")), figure,
                      rules.overdue_from(figure.state, limits))


@dataclasses.dataclass
class ReportRows:
    """Every report's row (`rules.Kept`), kept from the residents database's changes as the
    residents' index applies them (server/sync/allowed.py: its first pass, then its feed; the
    volunteers' ledgers are kept the same way) and from this server's own writes at once, one
    report at a time: the dashboard and the lists read these rows, never every report."""

    categories: tuple[rules.Category, ...] = rules.DEFAULT_CATEGORIES
    calendar: rules.Calendar = dataclasses.field(default_factory=rules.Calendar)
    reports: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    statuses: dict[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    rows: dict[str, rules.Kept] = dataclasses.field(default_factory=dict)
    filed: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # scope key -> ids
    # (street, community, grid) -> its reports' tally, so a dashboard adds up areas
    units: dict[tuple[str, str, str], rules.Tally] = dataclasses.field(default_factory=dict)
    version: int = 0  # moves with every row changed

    def take(self, doc: Mapping[str, Any]) -> None:
        """One document of the residents database (a report or its status; others pass)."""
        doc_id = str(doc.get("_id", ""))
        kind, _, key = doc_id.partition(":")
        gone = doc.get("_deleted") is True
        if kind == "report" and rules.REPORT_ID.match(doc_id):
            report = doc_id
            if gone:
                self.reports.pop(report, None)
            else:
                self.reports[report] = {"_id": doc_id, **{
                    k: doc[k] for k in REPORT_KEPT if k in doc}}
        elif kind == "report_status":
            report = f"report:{key}"
            held = self.statuses.get(report)
            if held is not None and revision(held) > revision(doc):
                return  # an older revision read by the feed after this server's write
            if gone:
                self.statuses.pop(report, None)
            else:
                self.statuses[report] = doc
        else:
            return
        self.version += 1
        self.refresh(report)

    def refresh(self, report: str) -> None:
        doc = self.reports.get(report)
        old = self.rows.pop(report, None)
        if old is not None:
            for key in old.scopes():
                self.filed.get(key, set()).discard(report)
            self.count(old, -1)
        if doc is None:
            return
        row = kept_row(doc, self.statuses.get(report, {}), self.categories, self.calendar)
        self.rows[report] = row
        for key in row.scopes():
            self.filed.setdefault(key, set()).add(report)
        self.count(row, 1)

    def count(self, row: rules.Kept, sign: int) -> None:
        unit = (row.place.street, row.place.community, row.place.grid)
        tally = self.units.setdefault(unit, rules.Tally())
        tally.add(row.figure, row.late_from, sign)
        if not tally.reports:
            del self.units[unit]

    def visible(self, user: User) -> list[rules.Kept]:
        """The rows `user` sees (rule 7), read by the scopes they are filed under."""
        keys = rules.scope_keys(user)
        if keys is None:
            found = list(self.rows.values())
        else:
            ids = set().union(*(self.filed.get(k, ()) for k in keys))
            found = [self.rows[i] for i in ids]
        return [row for row in found
                if rules.sees(user, row.reporter, row.assignee, row.place)]


@dataclasses.dataclass
class Reports:
    """The store's side of problem reports; one per app."""

    couch: CouchClient
    directory: Directory
    schemas: SchemaRegistry
    categories: tuple[rules.Category, ...] = rules.DEFAULT_CATEGORIES
    calendar: rules.Calendar = dataclasses.field(default_factory=rules.Calendar)
    max_photo_bytes: int = 1024 * 1024
    max_photo_pixels: int = 4096 * 4096
    secret: bytes = b""  # the installation's: keys the ids (`keyed`)
    # the rows (the app's are told the residents database by its index: web/reports.py)
    rows: ReportRows | None = None
    # (rows' version, when computed) and the dashboards computed then
    boards_at: tuple[int, datetime.datetime] | None = None
    boards: dict[tuple[Any, ...], dict[str, Any]] = dataclasses.field(default_factory=dict)
    decoding: asyncio.Semaphore = dataclasses.field(
        default_factory=lambda: asyncio.Semaphore(DECODERS))

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = ReportRows(self.categories, self.calendar)

    @property
    def kept(self) -> ReportRows:
        assert self.rows is not None  # __post_init__
        return self.rows

    async def _get(self, doc_id: str) -> dict[str, Any] | None:
        with contextlib.suppress(NotFound):
            doc = await self.couch.get(db_path(RESIDENTS_DB, doc_id))
            return doc if isinstance(doc, dict) else None
        return None

    async def _put_once(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Written once: None when written now, else the one stored first (a replay,
        another phone), which stays as it is. Checked against its form first."""
        stated = self.schemas.problems(doc)
        if stated:
            raise Refused(400, "bad_request", "；".join(stated))
        with contextlib.suppress(Conflict):
            written = await self.couch.put(db_path(RESIDENTS_DB, doc["_id"]), doc)
            self.kept.take({**doc, "_rev": written.get("rev")})
            return None
        return await self._get(doc["_id"]) or doc

    async def photos(self, body: Mapping[str, Any]) -> list[tuple[str, bytes]]:
        """Checked and re-encoded in a worker thread, a few at a time: decoding is CPU that
        would otherwise hold every request of the process."""
        return await clean_photos(list(body.get("photos") or []), self.decoding,
                                  self.max_photo_bytes, self.max_photo_pixels)

    # -- where ---------------------------------------------------------------------------

    async def place(self, user: User, body: Mapping[str, Any],
                    index: ResidentIndex) -> rules.Place:
        """A resident's household's place; a worker's grid named in the body (theirs)."""
        if user.role == "resident":
            homes = index.ids.places_of(user.name)
            if not homes:
                raise Refused(403, "forbidden", bilingual("请先激活您的住户，再上报问题",
                                                          "Activate your household first."))
            home = homes[sorted(homes)[0]]
            grid, compound = home.grid, home.building.partition("-")[0]
        else:
            grid, compound = str(body.get("grid", "")), ""
            if grid not in user.grids or grid not in self.directory.grids:
                raise refused([rules.problem("grid", "grid", "不是您负责的网格",
                                             "is not a grid of yours")])
        known = self.directory.grids.get(grid)
        company = await self.company(compound) if compound else ""
        return rules.Place(grid, known.community if known else "",
                           known.street if known else "", compound, company)

    async def company(self, compound: str) -> str:
        """The compound's property company, from the directory's record of it."""
        try:
            doc = await self.couch.get(db_path(DIRECTORY_DB, f"compound:{compound}"))
        except NotFound:
            return ""
        found = doc.get("property_company") if isinstance(doc, dict) else None
        return found if isinstance(found, str) else ""

    # -- reports -------------------------------------------------------------------------

    async def submit(self, user: User, body: Mapping[str, Any], index: ResidentIndex,
                     now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """A new report (rule 3), or the one this request already stored."""
        if user.role not in rules.REPORTER_ROLES or user.disabled:
            raise Refused(403, "forbidden", bilingual("只有居民和网格员可以上报问题",
                                                      "Only residents and grid workers report."))
        sent = {k: v for k, v in body.items() if not (k == "grid" and user.role == "worker")}
        problems = rules.report_problems(sent, self.categories)
        if problems:
            raise refused(problems)
        place = await self.place(user, body, index)
        doc_id = report_id(user.name, str(body["request"]), self.secret)
        held = await self._get(doc_id)
        if held is not None:
            return held, False
        photos = await self.photos(body)
        category = rules.category_of(body["category"], self.categories)
        assert category is not None  # report_problems checked it
        return await self.filed(user, body, place, category, rules.route(category, place),
                                photos, doc_id, now)

    async def filed(self, user: User, body: Mapping[str, Any], place: rules.Place,
                    category: rules.Category, assignee: str,
                    photos: Sequence[tuple[str, bytes]], doc_id: str,
                    now: datetime.datetime) -> tuple[dict[str, Any], bool]:
        """The report written once (a retry gets the one stored first), with its status."""
        doc: dict[str, Any] = {
            "_id": doc_id, "type": "report", "schema_version": 1, "created_by": user.name,
            "reporter": user.name, "reporter_kind": user.role, "category": category.code,
            "description": body["description"], "grid": place.grid,
            "community": place.community, "street": place.street,
            "anonymous": body.get("anonymous") is True,
            "assignee": assignee, "request": body["request"],
            "submitted_at": stamp(now)}
        for name, value in (("compound", place.compound), ("company", place.company),
                            *((n, body.get(n)) for n in ("building", "unit", "spot"))):
            if value:
                doc[name] = value
        if photos:
            doc["_attachments"] = attachments(photos, "photo")
        first = await self._put_once(doc)
        if first is not None:
            return first, False
        await self.write_status(doc, now)
        audit.info("%s reported %s (%s) in %s", user.name, doc_id, category.code, place.grid)
        doc.pop("_attachments", None)
        return doc, True

    async def found_on_patrol(self, officer: User, route: Mapping[str, Any], spot: str,
                              found: Mapping[str, Any], photos: Sequence[tuple[str, bytes]],
                              request: str, now: datetime.datetime) -> dict[str, Any]:
        """A liaison officer's problem found on a patrol (server/domain/liaison.py rule 5):
        a report of the route's grid and compound, routed to the route's department."""
        category = rules.category_of(found["category"], self.categories)
        assert category is not None  # liaison.check_problems checked it
        grid = self.directory.grids.get(str(route["grid"]))
        place = rules.Place(str(route["grid"]), grid.community if grid else "",
                            grid.street if grid else "", str(route["compound"]),
                            await self.company(str(route["compound"])))
        body = {"description": found["description"], "request": request, "spot": spot}
        doc, _ = await self.filed(officer, body, place, category,
                                  f"department:{route['department']}", photos,
                                  report_id(officer.name, request, self.secret), now)
        return doc

    async def state_of(self, report: str) -> str:
        """A report's state as folded (rules.STATES), "" when there is none."""
        status = await self._get(status_id(report)) if rules.REPORT_ID.match(report) else None
        return str((status or {}).get("state", ""))

    async def held(self, user: User, request: Any) -> bool:
        """Whether the user's report of this request id is stored (a retry)."""
        return isinstance(request, str) and rules.REQUEST.match(request) is not None and \
            await self._get(report_id(user.name, request, self.secret)) is not None

    async def report(self, user: User, report: str) -> dict[str, Any]:
        """A report the user sees (rule 7); any other answers as one that does not exist."""
        doc = await self._get(report) if rules.REPORT_ID.match(report) else None
        if doc is None or doc.get("type") != "report":
            raise no_such_report()
        status = await self._get(status_id(report)) or {}
        assignee = str(status.get("assignee") or doc.get("assignee", ""))
        if not rules.sees(user, str(doc.get("reporter")), assignee, place_of(doc)):
            raise no_such_report()
        return doc

    async def steps(self, report: str) -> list[dict[str, Any]]:
        page = await self.couch.get(db_path(RESIDENTS_DB, "_all_docs"), include_docs="true",
                                    startkey=json.dumps(f"report_step:{key_of(report)}:"),
                                    endkey=json.dumps(f"report_step:{key_of(report)}:\ufff0"))
        return received([row["doc"] for row in page.get("rows", [])
                         if isinstance(row.get("doc"), dict)])

    async def write_status(self, report: Mapping[str, Any],
                           now: datetime.datetime) -> dict[str, Any]:
        """The fold of the stored steps, written where it differs (racing writers converge:
        each re-reads the steps after a conflict)."""
        path = db_path(RESIDENTS_DB, status_id(str(report["_id"])))
        for _ in range(TRIES):
            steps = await self.steps(str(report["_id"]))
            folded = rules.fold(step_of(s) for s in steps)
            held = await self._get(status_id(str(report["_id"])))
            doc = status_doc(report, folded, steps, now)
            if held is not None and all(held.get(k) == v for k, v in doc.items()
                                        if k != "updated_at"):
                return held
            if held is not None:
                doc["_rev"] = held["_rev"]
            try:
                written = await self.couch.put(path, doc)
            except Conflict:
                continue
            self.kept.take({**doc, "_rev": written.get("rev")})
            return doc
        raise Conflict(409, {"error": "conflict", "reason": "status kept changing"})

    async def act(self, user: User, report: str, body: Mapping[str, Any],
                  now: datetime.datetime) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """A step (rules 4 and 5): (the step, the status after it, whether stored now)."""
        problems = rules.step_problems(body)
        if problems:
            raise refused(problems)
        doc = await self.report(user, report)
        sid = step_id(report, user.name, str(body["request"]), self.secret)
        held = await self._get(sid)
        if held is not None:
            return held, await self._get(status_id(report)) or {}, False
        steps = await self.steps(report)
        folded = rules.fold(step_of(s) for s in steps)
        parts = rules.part_of(user, str(doc.get("reporter")), folded.assignee or
                              str(doc.get("assignee", "")), place_of(doc))
        step = rules.Step(sid, user.name, parts, str(body["from"]), int(body.get("round", 0)),
                          str(body["to"]), str(body.get("assignee", "")),
                          body.get("resolve") is True)
        found = rules.move_problem(step)
        if found is not None:
            status = 403 if found.code in ("actor", "resolve") else 400
            raise Refused(status, "forbidden" if status == 403 else "bad_request",
                          found.message)
        self.check_base(step, folded, {s["_id"]: step_of(s) for s in steps})
        photos = await self.photos(body)
        record: dict[str, Any] = {
            "_id": sid, "type": "report_step", "schema_version": 1, "created_by": user.name,
            "report": report, "reporter": doc["reporter"], "from": step.base, "to": step.to,
            "round": step.round, "parts": sorted(parts), "request": body["request"],
            "at": stamp(now)}
        for name in ("assignee", "note", "rating", "comment"):
            if body.get(name) not in (None, ""):
                record[name] = body[name]
        if step.resolve:
            record["resolve"] = True
        if photos:
            record["_attachments"] = attachments(photos, "after")
        first = await self._put_once(record)
        status = await self.write_status(doc, now)
        if first is None:
            audit.info("%s moved %s %s -> %s", user.name, report, step.base, step.to)
        record.pop("_attachments", None)
        return first or record, status, first is None

    @staticmethod
    def check_base(step: rules.Step, status: rules.Status,
                   steps: Mapping[str, rules.Step]) -> None:
        """A step is made from a state the report has been in; a resolution to a state in
        dispute (409 otherwise: the phone's copy is not the report's history)."""
        if step.resolve:
            if not status.conflicts or step.target not in rules.resolvable(status, steps):
                raise Refused(409, "conflict", bilingual(
                    "此问题没有待裁定的冲突，或所选状态不在冲突之中",
                    "The report has no conflict to resolve, or that state is not in dispute."))
            return
        if (step.round, step.base) not in [at[:2] for at in status.path]:
            zh, en = rules.STATE_LABELS.get(step.base, (step.base, step.base))
            raise Refused(409, "conflict", bilingual(
                f"此问题从未处于“{zh}”状态，请刷新后再办理",
                f"The report was never {en}: refresh it and act again."))
        after = rules.take(status, step)
        own_later = any(steps[i].actor == step.actor for i in status.applied if i in steps
                        and steps[i].round * 10 + rules.STATES.index(steps[i].base)
                        >= step.round * 10 + rules.STATES.index(step.base))
        if (step.id in after.superseded and step.parts == {"reporter"}) or (
                step.id in after.conflicts and own_later):
            # a reporter's step after the report moved on would only be stored superseded
            # (with its photos, as often as they like); a step after the actor's own later
            # one would put the report in the supervisors' queue again and again. Staff
            # phones' late steps are kept, marked superseded (rule 5).
            raise Refused(409, "conflict", bilingual(
                "此问题已处理到更后的状态，请刷新后再办理",
                "The report has moved on already: refresh it and act again."))

    def tallies(self, user: User, level: str) -> dict[str, rules.Tally]:
        """The tally of each area at `level` of the reports in a supervisor's scope (an
        admin's: all), added up from the kept units: no report is read."""
        groups: dict[str, list[rules.Tally]] = {}
        for (street, community, grid), tally in self.kept.units.items():
            if user.role == "admin" or (user.role == "supervisor" and (
                    community in user.communities or street in user.streets)):
                code = {"city": "", "street": street, "community": community}.get(level, grid)
                groups.setdefault(code, []).append(tally)
        return {code: rules.Tally.of(tallies) for code, tallies in groups.items()}

    def dashboard(self, user: User, level: str, small: int,
                  now: datetime.datetime) -> dict[str, Any]:
        """Rule 8's figures from the kept tallies, computed once per scope and level while
        the rows stay, and again after a minute (overdue flags move with the clock)."""
        at = self.boards_at
        if at is None or at[0] != self.kept.version or now - at[1] > REBUILD_AFTER:
            self.boards.clear()
            self.boards_at = (self.kept.version, now)
        key = (user.role, user.communities, user.streets, level)
        if key not in self.boards:
            self.boards[key] = rules.dashboard_of(self.tallies(user, level), level, small, now)
        return self.boards[key]

    async def statuses_of(self, report: str) -> dict[str, Any]:
        return await self._get(status_id(report)) or {}

    async def photo(self, report: Mapping[str, Any], holder: str,
                    name: str) -> tuple[bytes, str]:
        """A photo of the report (`holder` its id) or of one of its steps (a step's id)."""
        key = key_of(str(report["_id"]))
        if holder != report["_id"] and not (holder.startswith(f"report_step:{key}:")):
            raise no_such_report()
        try:
            doc = await self.couch.get(db_path(RESIDENTS_DB, holder), attachments="true")
        except NotFound:
            raise no_such_report() from None
        stub = doc.get("_attachments", {}).get(name) if isinstance(doc, dict) else None
        if not isinstance(stub, Mapping) or not isinstance(stub.get("data"), str):
            raise no_such_report()
        return base64.b64decode(stub["data"]), str(stub.get("content_type"))

    async def queue(self, user: User, now: datetime.datetime, limit: int, *,
                    after: tuple[str, str] | None = None, offset: int = 0,
                    wanted: Callable[[rules.Kept], bool] | None = None) -> tuple[
                        list[dict[str, Any]], tuple[str, str] | None]:
        """A page of what the user sees (rule 7), newest first, each with its status, overdue
        flags and escalation, and where the next page starts (None: none). Chosen from the
        kept rows filed under the user's scopes (a resident's: their own), never from every
        report; then the page's reports and statuses are read in one request and checked
        again as stored."""
        rows = sorted((row for row in self.kept.visible(user)
                       if (after is None or row.order() < after)
                       and (wanted is None or wanted(row))), key=rules.Kept.order, reverse=True)
        chosen = rows[offset:offset + limit]
        more = len(rows) > offset + limit and bool(chosen)
        return await self.items(user, [row.id for row in chosen], now), \
            chosen[-1].order() if more else None

    async def items(self, user: User, ids: Sequence[str],
                    now: datetime.datetime) -> list[dict[str, Any]]:
        """The reports of `ids` the user sees as stored, in that order, as staff or their
        reporter see them."""
        if not ids:
            return []
        page = await self.couch.post(db_path(RESIDENTS_DB, "_all_docs"),
                                     {"keys": [*ids, *(status_id(i) for i in ids)]},
                                     include_docs="true")
        docs = {str(row["id"]): row["doc"] for row in page.get("rows", [])
                if isinstance(row.get("doc"), dict)}
        found = []
        for report in ids:
            doc, held = docs.get(report), docs.get(status_id(report), {})
            if doc is None or doc.get("type") != "report":
                continue
            assignee = str(held.get("assignee") or doc.get("assignee", ""))
            if not rules.sees(user, str(doc.get("reporter")), assignee, place_of(doc)):
                continue
            shown = doc if user.name == doc.get("reporter") else rules.staff_view(doc)
            found.append({**{k: v for k, v in shown.items() if not k.startswith("_")
                             or k == "_id"}, "status": self.judged(doc, held, now)})
        return found

    def judged(self, doc: Mapping[str, Any], held: Mapping[str, Any],
               now: datetime.datetime) -> dict[str, Any]:
        """A report's status with its overdue flags and escalation level (rule 6)."""
        category = rules.category_of(doc.get("category"), self.categories)
        state = str(held.get("state", "submitted"))
        shown = {k: held.get(k) for k in ("state", "round", "assignee", "conflicts", "rating")
                 if k in held} or {"state": state}
        if category is None:
            return shown
        status = rules.Status(state=state)
        timing = rules.Timing(submitted=parse_time(doc.get("submitted_at")) or now,
                              reopened=parse_time(held.get("reopened_at")))
        shown["overdue"] = list(rules.overdue(category, status, timing, self.calendar, now))
        shown["escalation"] = rules.escalation(category, status, timing, self.calendar, now)
        return shown


def parse_time(value: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
