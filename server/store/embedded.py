"""The embedded store (PouchDB Server from npm), started and supervised by whoever owns the
installation: `linli serve`, or a `linli` command when no server is running.

It listens on 127.0.0.1 only and runs in "admin party" mode, so nothing but this machine's own
processes may reach it; clients only ever talk to the gateway. It crashes on some requests (a bad
`_changes` filter, an anonymous database creation once an admin exists): the gateway never forwards
those, and the supervisor restarts it anyway if it dies, logging its last words.

Most of those crashes are one promise nobody waits on: a `_changes` whose filter fails (its design
document deleted or changed after the gateway checked it, a filter that throws) is answered with
its error, and then PouchDB Server's changes wrapper (pouchdb-changeslike-wrapper) re-emits the
error on an emitter without listeners, inside a promise. PouchDB Server 4.2.0 was written for
Node.js before 15, where an unhandled rejection was a warning; since Node.js 15 it ends the
process, and with it every grid's requests. So the store runs with `--unhandled-rejections=warn`,
as it was built to: the request has its answer, and the warning is in stderr.log. No check in the
gateway could close that window (an admin may delete a design document between the gateway's
look and the store's), and uncaught exceptions stay fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout, when run from one
# Where scripts/setup installs PouchDB Server; an installation from a wheel names its own
# (LINLI_POUCHDB_SERVER, server/config.py).
POUCHDB_SERVER_BIN = PROJECT_ROOT / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"
STARTUP_SECONDS = 30.0  # a cold start with many databases opens each LevelDB once
RECYCLE_AFTER_SECONDS = 5.0  # after I/O errors, restart the store at most this often
RECYCLE_FREE_BYTES = 16 * 1024 * 1024  # ... and only once its disk has this much room again
# Preloaded into the store: no `disk_size` measured at every request (the file says why).
NO_DISK_SIZE = Path(__file__).resolve().parent / "no_disk_size.cjs"
STORE_LOG_LEVEL = "warning"  # no line per request in log.txt (quiet_log says why)
LAST_WORDS_CHARS = 4000  # of a dead store's output, logged (and shown in a failing test)


class StoreError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def store_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class StoreLock:
    """An exclusive lock on the installation's store folder: one PouchDB Server per folder, since
    two processes on the same LevelDB files would corrupt them."""

    def __init__(self, data: Path) -> None:
        self.path = data / "store.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def address_file(data: Path) -> Path:
    return data / "store.json"


def running_store_url(data: Path) -> str | None:
    """The URL of the store another process runs for this installation, if it answers."""
    try:
        url = json.loads(address_file(data).read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if store_answers(url) else None


class EmbeddedStore:
    """One PouchDB Server process bound to loopback, restarted if it dies."""

    def __init__(self, data: Path, port: int = 0, server_bin: Path | None = None) -> None:
        self.data = data
        self.server_bin = server_bin or POUCHDB_SERVER_BIN
        self.dir = data / "store"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._lock = StoreLock(data)
        self._stopping = False
        self._io_error = False
        self._torn = False  # an I/O error since this process started: hold writes (note_io_error)
        self._started_at = 0.0
        self._output_from = 0  # where this process's output starts in stderr.log

    def command(self) -> list[str]:
        node = shutil.which("node")
        if node is None or not self.server_bin.exists():
            raise StoreError(f"the embedded store is not installed (no node, or no "
                             f"{self.server_bin}): run scripts/setup, or set "
                             f"LINLI_POUCHDB_SERVER")
        return [node, "--require", str(NO_DISK_SIZE),
                "--unhandled-rejections=warn", str(self.server_bin),  # module docstring
                "--port", str(self.port), "--host", "127.0.0.1",
                "--dir", str(self.dir), "--config", str(self.dir / "config.json"),
                "--no-stdout-logs", "--no-color"]

    def start_sync(self) -> None:
        """Start and wait until the store answers (used by `linli` commands and tests)."""
        if not self._lock.acquire():
            raise StoreError(f"another process already runs the store of {self.data}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._end_orphan()
        self._spawn()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not store_answers(self.url, timeout=0.5):
            if self.process is not None and self.process.poll() is not None:
                self._lock.release()
                raise StoreError(f"the embedded store exited with {self.process.returncode}: "
                                 f"{self.last_words()}")
            if time.monotonic() > deadline:
                self.stop_sync()
                raise StoreError("the embedded store did not answer in time")
            time.sleep(0.05)
        address_file(self.data).write_text(json.dumps({"url": self.url, "pid": self.process.pid}))

    def _end_orphan(self) -> None:
        """End a store whose owner was killed outright (`kill -9` of `linli serve`). The store
        runs in its own session, so it outlives its owner and keeps its LevelDB files locked:
        a new store on the same folder would fail to open them. We hold the installation's lock
        now, so no live process owns that store any more. Only the process that store.json
        names, and only if its command line is this folder's PouchDB Server, is ended."""
        try:
            pid = int(json.loads(address_file(self.data).read_text())["pid"])
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, KeyError, TypeError):
            return
        if str(self.server_bin).encode() not in argv or str(self.dir).encode() not in argv:
            return
        log.warning("ending the store left running by a server that was killed (pid %d)", pid)
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:  # gone, or a zombie its new parent has not reaped yet: its files are closed
                    if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                        return
                except (OSError, IndexError):
                    return
                time.sleep(0.05)

    def quiet_log(self) -> None:
        """The store's own log (log.txt) keeps warnings and errors, never a line per request:
        PouchDB Server logs every request with its database and document id by default, and a
        line per request would join a secret ballot's who to its how by their order and time
        (docs/votes.md), and put ids of people's records in a file nobody reviews. Kept in the
        store's config file, merged with what the store wrote there itself."""
        path = self.dir / "config.json"
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError):
            config = {}
        if not isinstance(config, dict):
            config = {}
        log_section = config.get("log") if isinstance(config.get("log"), dict) else {}
        config["log"] = {**log_section, "level": STORE_LOG_LEVEL}
        path.write_text(json.dumps(config, indent=2) + "\n")

    def _spawn(self) -> None:
        self.quiet_log()
        # Its own process group and cwd (it writes log.txt and its _all_dbs folder there);
        # stdout/stderr to a file so a crash leaves its trace (last_words).
        errlog = open(self.output_file(), "ab")  # noqa: SIM115 - handed to the child
        self._output_from = errlog.tell()
        self.process = subprocess.Popen(
            self.command(), cwd=self.dir, stdout=errlog, stderr=errlog,
            stdin=subprocess.DEVNULL, start_new_session=True)
        errlog.close()
        self._started_at = time.monotonic()
        self._torn = False

    def output_file(self) -> Path:
        return self.dir / "stderr.log"

    def last_words(self, chars: int = LAST_WORDS_CHARS) -> str:
        """The end of what the current (or last) store process wrote: when it died, why."""
        try:
            with open(self.output_file(), "rb") as output:
                output.seek(max(self._output_from, output.seek(0, os.SEEK_END) - chars))
                return output.read().decode(errors="replace").strip() or "(nothing)"
        except OSError as exc:
            return f"(its output is unreadable: {exc})"

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def supervise(self) -> None:
        """Restart the store whenever it dies, with back-off, until `stop` is called."""
        delay = 0.2
        while not self._stopping:
            process = self.process
            if process is None:
                return
            while process.poll() is None:
                await asyncio.sleep(0.2)
                if self._stopping:
                    return
                if self._io_error and self._may_recycle():
                    self._io_error = False
                    log.warning("restarting the embedded store after I/O errors (disk full?), "
                                "now that its disk has room again")
                    await asyncio.to_thread(self._end, process)
            log.error("embedded store exited with %s; restarting. Its last words:\n%s",
                      process.returncode, self.last_words())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
            self._spawn()
            self.restarts += 1
            with contextlib.suppress(OSError):  # its disk may be full
                # the same address, a new pid: store.json keeps naming it (see _end_orphan)
                address_file(self.data).write_text(json.dumps({"url": self.url,
                                                               "pid": self.process.pid}))
            deadline = time.monotonic() + STARTUP_SECONDS
            while time.monotonic() < deadline and not await asyncio.to_thread(
                    store_answers, self.url, 0.5):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                delay = 0.2

    def note_io_error(self) -> None:
        """The store answered with an I/O error (its disk was full). PouchDB Server keeps a
        database whose opening failed broken until it restarts, so once the disk has room again
        the supervisor restarts the store. Until then writes are held (`writes_held`): a
        write that failed on the full disk may have left a torn record in LevelDB's log, and
        the writes the store acknowledges after it are dropped with the rest of that block
        when the log is read at the restart (a receipt acknowledged then was lost so)."""
        self._io_error = True
        self._torn = True

    def writes_held(self) -> bool:
        """Whether writes must wait for the store's restart (an I/O error since it started)."""
        return self._torn

    def _may_recycle(self) -> bool:
        if time.monotonic() - self._started_at < RECYCLE_AFTER_SECONDS:
            return False
        try:
            return shutil.disk_usage(self.dir).free >= RECYCLE_FREE_BYTES
        except OSError:
            return False

    @staticmethod
    def _end(process: subprocess.Popen[bytes]) -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_sync(self) -> None:
        self._stopping = True
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            self._end(process)
        with contextlib.suppress(OSError):
            address_file(self.data).unlink()
        self._lock.release()

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    def kill_for_test(self) -> None:
        """SIGKILL the store, as a crash would (used by the tests of the supervisor)."""
        if self.process is not None:
            self.process.kill()
