"""The benchmark harness (基准测试): what every `scripts/bench-*` shares, so that each script holds
only its scenario.

- bootstrap: `scripts/setup`, then the script again under the project's virtualenv;
- the common options (`--smoke`, `--timeout`, `--keep`, `--check`, `--json PATH`) and their
  checks; `parse` needs the bench's smoke sizes, so no bench is without `--smoke`;
- the steps of a run (`Steps`): each named, timed and logged, so that a failure is said in one
  line, `bench-x: step seed failed: why`, and the run exits with 1;
- timing and process figures: percentiles, CPU seconds and memory from /proc, a sampler;
- the servers a bench measures: the embedded store and the app in this process, or `linli serve`
  as a process of its own, on free loopback ports in a temp folder, all ended on the way out;
- one run loop (timeout, Ctrl-C, clean-up, exit status) and one report: every bench prints the
  same table (measure | value | unit | baseline | ratio | target | met | note), then its figures
  as one JSON line, and with `--json PATH` writes them to a file that `python -m
  server.demo.bench compare OLD NEW` sets side by side (and `summary RUN...` turns into the
  docs' table of results). A correctness check (a `check(...)` row: counts equal, nothing
  lost, figures equal a recount) fails the run when it is missed, smoke or not; a missed target
  is a result, which only --check turns into exit status 3.

A new bench, in short: `parser(PROG, ...)`, its sizes, `parse(parser, argv, least, smoke=...)`;
a class whose `run(step)` calls `await step("name", self.method)` for each step and returns
its figures, with `report`, `failed` and `stop`; then `sys.exit(run(PROG, argv, parse_args,
Bench))`. scripts/bench-domain is the shortest example.

At import it needs only the standard library (and server.store.embedded, which needs no more):
a script imports it with the system Python to run the bootstrap before the virtualenv exists.
Nothing in server/ imports it (tests/test_layers.py); it may import every layer, as the CLI does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import inspect
import json
import logging
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from server.store.embedded import free_port

if TYPE_CHECKING:
    from aiohttp import web

    from server.store.embedded import EmbeddedStore

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
LINLI = ROOT / ".venv" / "bin" / "linli"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
SAMPLE_SECONDS = 0.05  # the memory sampler's period
COLUMNS = ("measure", "value", "unit", "baseline", "ratio", "target", "met", "note")
SMOKE_TIMEOUT = 600.0  # a --smoke run that takes longer hangs: bench-pwa took 199 s at load 16
REASON_CHARS = 400  # the one line that says why a run failed is cut here (the rest is logged)
__all__ = ["ROOT", "BenchError", "Measure", "Report", "Steps", "Target", "free_port"]


class BenchError(RuntimeError):
    """A run that cannot go on: said in one line, without a traceback."""


def log(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


# -- bootstrap --------------------------------------------------------------------------------

def ready_flag(prog: str) -> str:
    """The variable that tells the script it runs again under the virtualenv (a process the
    bench starts must not inherit it as a LINLI_ setting)."""
    return f"LINLI_{prog.upper().replace('-', '_')}_READY"


def bootstrap(name: str, script: str, *, test: bool = False) -> None:
    """For a script run as __main__ (`name`): run scripts/setup (--test for a bench that drives
    the browser), then execute `script` again with the project's virtualenv Python. `--help`
    needs no set-up once the virtualenv exists."""
    if name != "__main__":
        return  # imported (by a test): the importer's Python is the one
    path = Path(script).resolve()
    prog = path.name
    flag = ready_flag(prog)
    if os.environ.get(flag) == "1":
        return
    again = [str(VENV_PYTHON), str(path), *sys.argv[1:]]
    if any(a in ("-h", "--help") for a in sys.argv[1:]) and VENV_PYTHON.exists():
        os.environ[flag] = "1"
        os.execv(again[0], again)
    setup = [str(ROOT / "scripts" / "setup"), *(["--test"] if test else [])]
    log(prog, f"{' '.join(['scripts/setup', *setup[1:]])} ...")
    started = time.monotonic()
    done = subprocess.run(setup, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        log(prog, f"scripts/setup failed ({done.returncode})")
        sys.exit(1)
    log(prog, f"setup ok ({time.monotonic() - started:.1f} s)")
    os.environ[flag] = "1"
    os.execv(again[0], again)


# -- arguments --------------------------------------------------------------------------------

def parser(prog: str, description: str, *, timeout: float | None = None,
           keep: str = "the temp folder") -> argparse.ArgumentParser:
    """The options every bench has; a bench adds its sizes. `timeout` None: no --timeout."""
    out = argparse.ArgumentParser(prog=f"scripts/{prog}", description=description)
    if timeout is not None:
        out.add_argument("--timeout", type=float, default=timeout,
                         help=f"give up after this many seconds in all ({timeout:.0f})")
    out.add_argument("--smoke", action="store_true",
                     help="the smallest sizes that still go through every step (seconds): "
                          "every correctness check, no target; what CI runs (sizes given "
                          "as well win)")
    out.add_argument("--keep", action="store_true",
                     help=f"keep {keep} and print its path")
    out.add_argument("--check", action="store_true",
                     help="exit with 3 when a target is missed (a missed correctness check "
                          "fails the run with 1 in any case)")
    out.add_argument("--json", type=Path, metavar="PATH",
                     help="also write the measures and every figure to PATH, to compare runs "
                          "(python -m server.demo.bench compare OLD NEW)")
    return out


def at_least(parser: argparse.ArgumentParser, args: argparse.Namespace, least: int,
             *names: str) -> None:
    """A size below `least` is refused with the option's name (exits with argparse's 2)."""
    for name in names:
        if getattr(args, name) < least:
            option = "--" + name.replace("_", "-")
            parser.error(f"{option} cannot be negative" if least == 0
                         else f"{option} must be at least {least}")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str], least: dict[str, int], *,
          smoke: dict[str, Any]) -> argparse.Namespace:
    """The arguments, each size in `least` checked against its least value. `smoke` is the
    bench's --smoke: the sizes (by option's dest) that take every step in seconds; required,
    so that a bench cannot be written without one. With --smoke they replace the defaults
    (a size given on the command line still wins), --check is refused (no targets), and the
    run is bounded by SMOKE_TIMEOUT unless the bench's smoke says otherwise."""
    args = parser.parse_args(argv)
    unknown = sorted(set(smoke) - set(vars(args)))
    if unknown:
        raise ValueError(f"{parser.prog}: smoke sizes for options it does not have: {unknown}")
    if args.smoke:
        if args.check:
            parser.error("--smoke has no targets to --check: run the full sizes with --check")
        defaults = dict(smoke)
        if "timeout" in vars(args):
            defaults.setdefault("timeout", SMOKE_TIMEOUT)
        parser.set_defaults(**defaults)
        args = parser.parse_args(argv)
    for name, value in least.items():
        at_least(parser, args, value, name)
    return args


# -- timing and process figures -----------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median(values: Iterable[float]) -> float:
    values = list(values)
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> dict[str, float]:
    """n, p50, p95, max and mean of `values` multiplied by `scale`."""
    if not values:
        return {"n": 0, "p50": math.nan, "p95": math.nan, "max": math.nan, "mean": math.nan}
    return {"n": len(values), "p50": round(percentile(values, 0.5) * scale, digits),
            "p95": round(percentile(values, 0.95) * scale, digits),
            "max": round(max(values) * scale, digits),
            "mean": round(statistics.mean(values) * scale, digits)}


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def read_status(pid: int | None) -> dict[str, int]:
    """VmRSS and VmHWM of a process in kB ({} once it is gone)."""
    found: dict[str, int] = {}
    if pid is None:
        return found
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    found[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return found


def mb(kb: int) -> float:
    """kB (as /proc counts) in MiB, one decimal."""
    return round(kb / 1024, 1)


def is_node(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() in ("node", "nodejs")
    except OSError:
        return False


def children(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def wait_idle(pids: Iterable[int | None], limit: float = 90,
              quiet: float = 0.08) -> dict[str, float]:
    """Blocks until the processes (a server, its store) spend less than `quiet` CPU seconds in
    a second, or `limit` seconds have passed: what one phase set going in the background (the
    figures' views being built, receipts) must not be paid by the next. The seconds waited and
    the CPU seconds they spent meanwhile."""
    watched = list(pids)
    started, spent = time.monotonic(), 0.0
    while time.monotonic() - started < limit:
        before = sum(cpu_seconds(pid) for pid in watched)
        time.sleep(1.0)
        used = sum(cpu_seconds(pid) for pid in watched) - before
        spent += used
        if used < quiet:
            break
    return {"seconds": round(time.monotonic() - started, 1), "cpu_s": round(spent, 2)}


def load_before() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class MemorySampler(threading.Thread):
    """Peak VmRSS (kB) of the server and of its store every 50 ms, by phase. Without a store pid
    the store is looked for among the server's children (the node process it spawns)."""

    def __init__(self, server_pid: int, store_pid: int | None = None) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.server_pid = server_pid
        self.store_pid = store_pid
        self.find_store = store_pid is None
        self.store_pids: set[int] = set()
        self.phase = "startup"
        self.server_peaks: dict[str, int] = {}
        self.store_peaks: dict[str, int] = {}
        self.samples = 0
        self._halt = threading.Event()

    def _store(self) -> int | None:
        if self.find_store and not (self.store_pid is not None and read_status(self.store_pid)):
            nodes = [p for p in children(self.server_pid) if is_node(p)]
            self.store_pid = nodes[0] if nodes else None
        if self.store_pid is not None:
            self.store_pids.add(self.store_pid)
        return self.store_pid

    def run(self) -> None:
        while not self._halt.is_set():
            phase = self.phase
            server = read_status(self.server_pid).get("VmRSS", 0)
            self.server_peaks[phase] = max(self.server_peaks.get(phase, 0), server)
            store_pid = self._store()
            if store_pid is not None:
                store = read_status(store_pid).get("VmRSS", 0)
                self.store_peaks[phase] = max(self.store_peaks.get(phase, 0), store)
            self.samples += 1
            self._halt.wait(SAMPLE_SECONDS)

    @property
    def server_peak(self) -> int:
        return max(self.server_peaks.values(), default=0)

    @property
    def store_peak(self) -> int:
        return max(self.store_peaks.values(), default=0)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=2)


def proc_status(pid: int, field: str) -> int:
    """A `/proc/PID/status` size field (VmRSS, VmHWM) in bytes; 0 once the process is gone."""
    return read_status(pid).get(field, 0) * 1024


class RssSampler:
    """The peak RSS of a process during a `with` block: sampled every `every` seconds in a
    thread, and its VmHWM (reset at the start through /proc/PID/clear_refs where the kernel
    allows it), so a peak shorter than a sample is still seen."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.before = self.peak = 0
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.before = self.peak = proc_status(self.pid, "VmRSS")
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, proc_status(self.pid, "VmRSS"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, proc_status(self.pid, "VmRSS"))
        if self.hwm_reset:
            self.peak = max(self.peak, proc_status(self.pid, "VmHWM"))

    def figures(self) -> dict[str, Any]:
        return {"before_mib": round(self.before / MIB, 1), "peak_mib": round(self.peak / MIB, 1),
                "growth_mib": round((self.peak - self.before) / MIB, 1),
                "hwm_reset": self.hwm_reset}


# -- the servers a bench measures -------------------------------------------------------------

class LogCollector(logging.Handler):
    """The server's warnings and errors (it runs in this process), counted, kept off stderr."""

    def __init__(self, width: int | None = None) -> None:
        super().__init__(logging.WARNING)
        self.width = width
        self.messages: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.levelname} {record.name}: {record.getMessage()}"
        except Exception:
            text = f"{record.levelname} {record.name}: {record.msg}"
        text = text[:self.width]
        self.messages[text] = self.messages.get(text, 0) + 1


async def start_store(data: Path) -> EmbeddedStore:
    """The embedded store on a free loopback port, its files under `data`."""
    from server.store.embedded import EmbeddedStore

    store = EmbeddedStore(data)
    await store.start()
    return store


async def serve_app(app: web.Application, port: int | None = None) -> tuple[web.AppRunner, str]:
    """`app` on 127.0.0.1 (a free port unless given): its runner (clean it up) and URL. Live
    feeds are held open, so a shutdown does not wait for them."""
    from aiohttp import web

    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def quietly(*closing: Awaitable[Any] | None) -> None:
    """Await each step of a shutdown in turn: one that fails does not keep the next from
    running (None: a step with nothing to close)."""
    for step in closing:
        if step is not None:
            with contextlib.suppress(Exception):
                await step


def problem_lines(text: str, words: Sequence[str] = (" WARNING ", " ERROR ", "Traceback")
                  ) -> list[str]:
    """The lines of a server log that say something went wrong."""
    return [line for line in text.splitlines() if any(word in line for word in words)]


class ServeProcess:
    """`linli serve` on a temp folder, in a session of its own (Ctrl-C reaches it only through
    the bench), with its own embedded store; `env` adds settings to the clean environment."""

    def __init__(self, prog: str, data: Path, env: dict[str, str] | None = None) -> None:
        self.prog, self.data, self.extra_env = prog, data, dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data.parent / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.store_pid: int | None = None
        self.store_url = ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, on_spawn: Callable[[int], None] | None = None, timeout: float = 90) -> None:
        """Until it answers on /couch/; `on_spawn(pid)` at once, to measure its start too."""
        env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"
               and not k.startswith("LINLI_")}
        env.update(self.extra_env)
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                [str(LINLI), "serve", "--data", str(self.data), "--port", str(self.port),
                 "--host", "127.0.0.1"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        if on_spawn is not None:
            on_spawn(self.process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"linli serve exited with {self.process.returncode}:\n"
                                 f"{self.log_tail()}")
            with (contextlib.suppress(OSError, ValueError),
                  urllib.request.urlopen(self.url + "/couch/", timeout=1) as resp):
                if resp.status == 200 and b"couchdb" in resp.read():
                    break
            time.sleep(0.1)
        else:
            raise BenchError(f"linli serve did not answer within {timeout:.0f} s:\n"
                             f"{self.log_tail()}")
        info = json.loads((self.data / "store.json").read_text())
        self.store_url, self.store_pid = info["url"].rstrip("/"), info.get("pid")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60, requests: int = 10) -> str:
        """The server's own messages (errors, tracebacks) and its last requests; then the
        store's stderr, where a crash of the store leaves its trace."""
        all_lines = self.log_text().splitlines()
        access = [line for line in all_lines if " aiohttp.access: " in line]
        other = [line for line in all_lines if " aiohttp.access: " not in line]
        parts = ["\n".join(other[-lines:]) or "(no server messages)",
                 f"-- last {requests} requests:", "\n".join(access[-requests:])]
        with contextlib.suppress(OSError):
            store_err = (self.data / "store" / "stderr.log").read_text(errors="replace")
            if store_err.strip():
                parts += ["-- store stderr.log:", "\n".join(store_err.splitlines()[-20:])]
        return "\n".join(parts)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                process.send_signal(sig)
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    log(self.prog, f"server did not stop on {sig.name}")
        # The store is the server's child: it stops it on the way out. Only if the server died
        # without doing so, end that one process (by its pid) so no LevelDB stays open.
        if self.store_pid is not None and read_status(self.store_pid) and is_node(self.store_pid):
            log(self.prog, f"the store (pid {self.store_pid}) outlived the server; ending it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.store_pid, signal.SIGTERM)
                for _ in range(100):
                    if not read_status(self.store_pid):
                        break
                    time.sleep(0.1)
                else:
                    os.kill(self.store_pid, signal.SIGKILL)


# -- the report -------------------------------------------------------------------------------

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b, "=": lambda a, b: a == b}


@dataclasses.dataclass(frozen=True)
class Target:
    """A bound on a measure's value, or (`of_ratio`) on its ratio to the baseline."""

    op: str
    limit: float
    of_ratio: bool = False

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown comparison {self.op!r}")

    def met(self, value: Any, ratio: float | None) -> bool | None:
        subject = ratio if self.of_ratio else value
        if not isinstance(subject, int | float) or math.isnan(subject):
            return None  # not measured is neither met nor missed here
        return OPS[self.op](subject, self.limit)

    def text(self, unit: str) -> str:
        if self.of_ratio:
            return f"ratio {self.op} {number(self.limit)}"
        return f"{self.op} {number(self.limit)}{' ' + unit if unit else ''}"


@dataclasses.dataclass(frozen=True)
class Measure:
    """One row of a bench's table. `value` is a number in `unit` (or a text where a count is
    not one number); `baseline` is the same quantity measured in the same run without what is
    benchmarked (the store alone, a bare client), and the ratio is value / baseline. `target`
    is a bound (met is then computed), or a text such as "all" with `met` given; `met` given
    always wins (a bench's own check), and None means for information. `check`: a correctness
    check (counts equal, nothing lost, figures equal a recount), which must hold at any size:
    missed, it fails the run; kept in a --smoke run, where the targets are left out."""

    name: str
    value: float | int | str | None
    unit: str = ""
    baseline: float | None = None
    target: Target | str | None = None
    met: bool | None = None
    note: str = ""  # shown after the value, e.g. "p50 12.1, max 40"
    check: bool = False

    @property
    def ratio(self) -> float | None:
        if (not isinstance(self.value, int | float) or self.baseline is None
                or not self.baseline or math.isnan(self.baseline) or math.isnan(self.value)):
            return None
        return round(self.value / self.baseline, 3)

    @property
    def verdict(self) -> bool | None:
        if self.met is not None:
            return self.met
        if isinstance(self.target, Target):
            return self.target.met(self.value, self.ratio)
        return None

    def row(self) -> dict[str, Any]:
        target = (self.target.text(self.unit) if isinstance(self.target, Target)
                  else self.target or "")
        return {"measure": self.name, "value": significant(self.value), "unit": self.unit,
                "baseline": significant(self.baseline), "ratio": self.ratio, "target": target,
                "met": self.verdict, "note": self.note}


def check(name: str, value: Any, met: bool, expected: str = "all",
          note: str = "") -> Measure:
    """A correctness check's row: `value` counted, `expected` in words ("all", "= sum of
    queues"), `met` the bench's verdict. Missed, it fails the run, smoke or not."""
    return Measure(name, value, target=expected, met=bool(met), note=note, check=True)


def significant(x: Any, digits: int = 6) -> Any:
    """A float as JSON keeps it: six significant digits (a quotient's 1.1513499999999999 is
    1.15135); anything else as it is."""
    if isinstance(x, float) and math.isfinite(x) and x:
        return float(f"{x:.{digits}g}")
    return x


def number(x: Any) -> str:
    """A figure as the table shows it: thousands separated, at most three significant
    decimals, no trailing zeros."""
    if x is None:
        return ""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, int) or (float(x).is_integer() and abs(x) >= 1000):
        return f"{int(x):,}"
    digits = 0 if abs(x) >= 1000 else 1 if abs(x) >= 100 else 2 if abs(x) >= 1 else 3
    text = f"{x:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def met_text(met: bool | None) -> str:
    return "" if met is None else "met" if met else "MISSED"


@dataclasses.dataclass
class Report:
    """What a bench prints: a title, its own detail lines (what was run, where the time went),
    the table of measures, and closing lines (server log, total time)."""

    title: str
    measures: list[Measure]
    details: list[str] = dataclasses.field(default_factory=list)
    footer: list[str] = dataclasses.field(default_factory=list)

    @property
    def missed(self) -> list[str]:
        return [m.name for m in self.measures if m.verdict is False]

    @property
    def wrong(self) -> list[Measure]:
        """The correctness checks missed: the run failed, whatever its timings."""
        return [m for m in self.measures if m.check and m.verdict is False]

    def smoke(self) -> Report:
        """The report of a --smoke run: its sizes say nothing of speed, so only the checks keep
        their target."""
        return dataclasses.replace(
            self, title=f"{self.title} [--smoke: every step and check at the smallest sizes; "
                        f"no targets]",
            measures=[m if m.check else dataclasses.replace(m, target=None, met=None)
                      for m in self.measures])


def table(measures: Sequence[Measure]) -> str:
    """The one table shape of every bench."""
    rows = [COLUMNS] + [
        (m.name, number(m.value), m.unit, number(m.baseline),
         "" if m.ratio is None else f"{m.ratio:.2f}x", r["target"], met_text(m.verdict), m.note)
        for m, r in ((m, m.row()) for m in measures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    right = {1, 3, 4}  # numbers line up on the right
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(w) if i in right and n else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def render(report: Report) -> str:
    return "\n".join(["", report.title, "", *report.details,
                      *([""] if report.details else []), table(report.measures), "",
                      *report.footer, ""])


def document(prog: str, argv: Sequence[str], args: argparse.Namespace, report: Report,
             results: dict[str, Any], started: datetime.datetime, load: str) -> dict[str, Any]:
    """What --json writes: the measures as the table shows them, and every figure."""
    return {"bench": prog, "argv": list(argv),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "started": started.isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "load_before": load},
            "title": report.title, "columns": list(COLUMNS),
            "measures": [m.row() for m in report.measures], "missed": report.missed,
            "results": results}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1, default=str) + "\n",
                    encoding="utf-8")


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Two --json files of the same bench, measure by measure: value, ratio, and the change."""
    before = {m["measure"]: m for m in old["measures"]}
    rows = [("measure", "unit", "old", "new", "change", "old ratio", "new ratio", "met")]
    for m in new["measures"]:
        o = before.pop(m["measure"], {})
        a, b = o.get("value"), m["value"]
        change = (f"{(b - a) / a:+.0%}" if isinstance(a, int | float) and
                  isinstance(b, int | float) and a and not math.isnan(a) else "")
        rows.append((m["measure"], m["unit"], number(a), number(b), change,
                     number(o.get("ratio")), number(m["ratio"]),
                     f"{met_text(o.get('met')) or '-'} -> {met_text(m['met']) or '-'}"))
    rows += [(name, o["unit"], number(o["value"]), "(gone)", "", number(o["ratio"]), "", "")
             for name, o in before.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


BOUND = re.compile(r"^(ratio )?[<>=]+ [\d.,]+")  # a target that is a number, not "all"


def summary(runs: Sequence[dict[str, Any]]) -> str:
    """The docs' one table of results, from --json files: per run, its command, each measure
    with a numeric target or a baseline (value, ratio), and how many of its checks were met."""
    lines = ["| benchmark | command | measured | target |", "|---|---|---|---|"]
    for run in runs:
        shown = [m for m in run["measures"]
                 if m["ratio"] is not None or BOUND.match(m["target"] or "")]
        checks = [m for m in run["measures"] if m not in shown and m["met"] is not None]
        measured = [f"{m['measure'].strip()} **{number(m['value'])}"
                    f"{' ' + m['unit'] if m['unit'] else ''}**"
                    + (f" ({number(m['ratio'])}×)" if m["ratio"] is not None else "")
                    for m in shown]
        targets = [(m["target"] or "—") + (" (missed)" if m["met"] is False else "")
                   for m in shown]
        if checks:
            met = sum(1 for m in checks if m["met"])
            measured.append(f"checks met {met} of {len(checks)}")
            targets.append("every check")
        argv = [a for n, a in enumerate(run["argv"]) if not a.startswith("--json")
                and (n == 0 or run["argv"][n - 1] != "--json")]
        command = " ".join(["scripts/" + run["bench"], *argv])
        lines.append(f"| {run['title'].split(':')[0]} | `{command}` | {'; '.join(measured)} | "
                     f"{'; '.join(targets)} |")
    return "\n".join(lines)


# -- the run ----------------------------------------------------------------------------------

class Steps:
    """The steps of one run, in order: each named, timed and logged as it ends, so that a run
    that fails says in which step (`bench-x: step seed failed: why`). A bench's `run` is given
    one and calls `await step("seed", self.seed, ...)` for each of its steps."""

    def __init__(self, prog: str) -> None:
        self.prog = prog
        self.current = "start"  # the step under way, or the last one begun

    async def __call__(self, name: str, do: Callable[..., Any], *args: Any) -> Any:
        """`do(*args)`, awaited when it is a coroutine function, else in a thread (a blocking
        step still leaves the run's timeout and Ctrl-C their loop); its value is returned."""
        self.current = name
        started = time.monotonic()
        if inspect.iscoroutinefunction(do):
            value = await do(*args)
        else:
            value = await asyncio.to_thread(do, *args)
        log(self.prog, f"step {name} done in {time.monotonic() - started:.1f} s")
        return value

    def failed(self, reason: str) -> str:
        """The one line that says what failed: the step and the first line of the reason."""
        first = (reason.strip().splitlines() or ["(no reason given)"])[0]
        if len(first) > REASON_CHARS:
            first = first[:REASON_CHARS] + " ..."
        return f"step {self.current} failed: {first}"


class Bench(Protocol):
    """A scenario: built from the arguments and a temp folder, run step by step, reported,
    stopped."""

    async def run(self, step: Steps) -> dict[str, Any]:
        """Every step through `step`; the figures, with "pass" when the bench decides it."""
        ...

    def report(self, results: dict[str, Any]) -> Report: ...

    def failed(self) -> list[str]:
        """Lines to log when the run failed (the server log's last lines)."""
        ...

    async def stop(self) -> None: ...


def run(prog: str, argv: Sequence[str], parse: Callable[[list[str]], argparse.Namespace],
        make: Callable[[argparse.Namespace, Path], Bench]) -> int:
    """One run of a script: its arguments parsed, a temp folder, the bench within --timeout
    (Ctrl-C and SIGTERM end it cleanly), its table and JSON line on stdout (and --json), every
    process it started stopped. Exit status: 0 when it ran and every check held; 1 when a step
    failed or a correctness check was missed, said last on stderr in one line; 3 with --check
    when a target is missed (argparse's 2 for bad arguments)."""
    args = parse(list(argv))
    return asyncio.run(_run(prog, argv, args, make))


def why(exc: BaseException, limit: float | None) -> str:
    """What went wrong, for the one line: a bench's own errors as they say it, anything else
    with its type (its traceback is printed before)."""
    if isinstance(exc, TimeoutError):
        return (f"global timeout of {limit:.0f} s reached" if limit is not None
                else f"TimeoutError: {exc}")
    if isinstance(exc, BenchError | subprocess.TimeoutExpired):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def checked(report: Report) -> None:
    """Every correctness check held, or the run fails naming each one missed."""
    wrong = report.wrong
    if wrong:
        raise BenchError("; ".join(
            f"{m.name.strip()} {number(m.value)}, expected {m.target or 'met'}"
            + (f" ({m.note})" if m.note else "") for m in wrong))


async def _run(prog: str, argv: Sequence[str], args: argparse.Namespace,
               make: Callable[[argparse.Namespace, Path], Bench]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix=f"linli-{prog}-"))
    started, load = datetime.datetime.now(datetime.UTC), load_before()
    step = Steps(prog)
    bench = make(args, tmp)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in before:
        loop.add_signal_handler(sig, task.cancel)
    smoke = getattr(args, "smoke", False)
    limit = getattr(args, "timeout", SMOKE_TIMEOUT if smoke else None)
    failure = ""
    code = 1
    try:
        results = await asyncio.wait_for(bench.run(step), limit)
        step.current = "report"
        report = bench.report(results)
        if smoke:
            report = report.smoke()
        print(render(report), flush=True)
        print(json.dumps(results, ensure_ascii=False, default=str), flush=True)
        if args.json is not None:
            write_json(args.json, document(prog, argv, args, report, results, started, load))
        step.current = "checks"
        checked(report)
        code = 3 if args.check and not results.get("pass", not report.missed) else 0
    except asyncio.CancelledError:
        failure = f"step {step.current} interrupted"
    except Exception as exc:
        if not isinstance(exc, BenchError | TimeoutError | subprocess.TimeoutExpired):
            traceback.print_exc()
        reason = why(exc, limit)
        for line in reason.strip().splitlines()[1:]:
            log(prog, f"  {line}")  # the rest of a long reason (a server's output), before
        failure = step.failed(reason)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)  # let the clean-up finish
        if code == 1:
            for line in bench.failed():
                log(prog, line)
        try:
            await asyncio.wait_for(bench.stop(), 90)
        except Exception:
            traceback.print_exc()
        if args.keep:
            log(prog, f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        for sig, handler in before.items():
            signal.signal(sig, handler)
        if failure:
            log(prog, failure)  # last, in one line: what CI shows
    return code


def main(argv: Sequence[str]) -> int:
    """python -m server.demo.bench compare OLD.json NEW.json | summary RUN.json..."""
    cli = argparse.ArgumentParser(prog="python -m server.demo.bench",
                                  description="What --json files of the benchmarks hold.")
    sub = cli.add_subparsers(dest="command", required=True)
    pair = sub.add_parser("compare", help="the measures of two runs of one bench side by side")
    pair.add_argument("old", type=Path)
    pair.add_argument("new", type=Path)
    table_of = sub.add_parser("summary", help="one Markdown table of runs, as the docs show them")
    table_of.add_argument("runs", type=Path, nargs="+")
    args = cli.parse_args(argv)
    if args.command == "summary":
        print(summary([json.loads(p.read_text(encoding="utf-8")) for p in args.runs]))
        return 0
    old, new = (json.loads(p.read_text(encoding="utf-8")) for p in (args.old, args.new))
    if old.get("bench") != new.get("bench"):
        cli.error(f"{args.old} is {old.get('bench')}, {args.new} is {new.get('bench')}")
    print(compare(old, new))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
