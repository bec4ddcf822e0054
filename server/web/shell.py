"""Serving the PWA's app shell (`pwa/`) at `/app/`: every file compressed once and kept in memory,
revalidated by ETag, and the service worker stamped with a release that changes whenever any shell
file changes, which is how a phone learns that a new version was deployed."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import json
import mimetypes
from pathlib import Path

from aiohttp import web

SHELL_PREFIX = "/app/"
SERVICE_WORKER = "sw.js"
# What the service worker precaches: the whole shell but the worker itself.
SHELL_SUFFIXES = (".html", ".js", ".css", ".json", ".webmanifest", ".png", ".svg")
TYPES = {".js": "text/javascript", ".webmanifest": "application/manifest+json",
         ".svg": "image/svg+xml", ".html": "text/html", ".css": "text/css"}
COMPRESSIBLE = (".html", ".js", ".css", ".webmanifest", ".svg", ".json")
# What scripts/setup generates into the PWA from schemas/ (scripts/generate-pwa.mjs; not
# committed): without it the app cannot check a record, so it is not served at all.
GENERATED = ("generated/rules.js", "generated/validators.js", "generated/sensitivity.js")
RELEASE_MARK = "__LINLI_RELEASE__"
SHELL_MARK = "__LINLI_SHELL__"


@dataclasses.dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


# Each release's files, at most; more would be a folder changing under a running process.
ASSETS_KEPT = 256


@functools.lru_cache(maxsize=ASSETS_KEPT)
def asset(name: str, body: bytes) -> Asset:
    """A file as served, compressed once per process for each content: every app a process
    builds (the tests build hundreds) reads the folder again, and only a file whose bytes
    changed is compressed again (gzip at level 9 of the shell was 40 ms of CPU an app)."""
    suffix = Path(name).suffix
    content_type = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or \
        "application/octet-stream"
    gzipped = gzip.compress(body, 9, mtime=0) if suffix in COMPRESSIBLE else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, gzipped, content_type, etag)


class Shell:
    """The files of one release of the PWA, read at start. A deployment is a restart."""

    def __init__(self, folder: Path, extra: dict[str, bytes] | None = None) -> None:
        files = {p.relative_to(folder).as_posix(): p.read_bytes()
                 for p in sorted(folder.rglob("*")) if p.is_file()
                 and not any(part.startswith(".") for part in p.relative_to(folder).parts)}
        files.update(extra or {})
        missing = [name for name in GENERATED if name not in files]
        if missing:
            raise FileNotFoundError(f"{folder / missing[0]} is missing: run scripts/setup")
        digest = hashlib.sha256()
        for name, body in sorted(files.items()):
            digest.update(name.encode() + b"\0" + body + b"\0")
        self.release = digest.hexdigest()[:16]
        # "./" is index.html (answered for the folder), so it is not fetched twice.
        shell = sorted(n for n in files if n.endswith(SHELL_SUFFIXES)
                       and n not in (SERVICE_WORKER, "index.html"))
        if SERVICE_WORKER in files:
            files[SERVICE_WORKER] = (
                files[SERVICE_WORKER].decode()
                .replace(RELEASE_MARK, self.release)
                .replace(SHELL_MARK, json.dumps(["./", *shell]))).encode()
        self.assets = {name: asset(name, body) for name, body in files.items()}

    def answer(self, request: web.Request, name: str) -> web.Response:
        asset = self.assets.get(name or "index.html")
        if asset is None:
            raise web.HTTPNotFound(reason="No such file in the app")
        headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if name == SERVICE_WORKER:
            headers["Service-Worker-Allowed"] = SHELL_PREFIX
        body, etag = asset.body, asset.etag
        if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            body, etag = asset.gzipped, asset.etag[:-1] + '-gz"'  # another representation
            headers["Content-Encoding"] = "gzip"
        headers["ETag"] = etag
        wanted = {t.strip().removeprefix("W/") for t in
                  request.headers.get("If-None-Match", "").split(",")}
        if etag in wanted or "*" in wanted:
            return web.Response(status=304, headers=headers)
        charset = "utf-8" if asset.content_type.startswith(("text/", "application/")) else None
        return web.Response(body=body, headers=headers, content_type=asset.content_type,
                            charset=charset)


SHELL = web.AppKey("shell", Shell)


async def shell_file(request: web.Request) -> web.Response:
    return request.app[SHELL].answer(request, request.match_info["name"])


async def to_app(request: web.Request) -> web.Response:
    raise web.HTTPFound(SHELL_PREFIX)


def setup_routes(app: web.Application, folder: Path, extra: dict[str, bytes] | None = None) -> None:
    app[SHELL] = Shell(folder, extra)
    app.router.add_get("/", to_app)
    app.router.add_get("/app", to_app)
    app.router.add_get(SHELL_PREFIX + "{name:.*}", shell_file)
