"""The benchmark harness (server/demo/bench.py, issue 14): every scripts/bench-* prints one table
shape (measure | value | unit | baseline | ratio | target | met | note), computes its ratios
against the baseline measured in the same run, parses the common options the same way, and
writes --json files that two runs can be compared by. The last test runs the cheapest bench for
real."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from server.demo import bench
from server.demo.bench import Measure, Report, Target

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("aggregates", "conflicts", "domain", "load", "pwa", "residents", "sync", "volunteer")


def script(name: str) -> ModuleType:
    """scripts/bench-NAME imported as a module (no suffix; its bootstrap does nothing then)."""
    path = ROOT / "scripts" / f"bench-{name}"
    loader = importlib.machinery.SourceFileLoader(f"bench_{name}", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # its dataclasses look their module up
    loader.exec_module(module)
    return module


def sample() -> Report:
    return Report("a sample bench", [
        Measure("pull through the gateway", 2.5, "s", baseline=2.0,
                target=Target("<=", 1.3, of_ratio=True), note="400 docs/s"),
        Measure("push through the gateway", 3.0, "s", baseline=2.0,
                target=Target("<=", 1.3, of_ratio=True)),
        Measure("peak memory", 120.0, "MiB", target=Target("<", 150)),
        Measure("records stored", 240, target="= sum of queues", met=True, note="of 240"),
        Measure("search p95", 80, "ms", target=Target("<=", 100), met=False),
        Measure("views from scratch", 12.345, "s"),
    ], details=["1. the detail"], footer=["total 1 s"])


def test_ratio_is_value_over_the_baseline_of_the_same_run() -> None:
    pull, push, memory, stored, *_ = sample().measures
    assert pull.ratio == 1.25 and push.ratio == 1.5
    assert memory.ratio is None and stored.ratio is None  # no baseline: no ratio
    assert Measure("x", 1.0, baseline=0.0).ratio is None  # never a division by zero
    assert Measure("x", "not measured", baseline=2.0).ratio is None
    assert Measure("x", math.nan, baseline=2.0).ratio is None


def test_met_comes_from_the_target_unless_the_bench_says() -> None:
    pull, push, memory, stored, search, views = sample().measures
    assert pull.verdict is True  # ratio 1.25 <= 1.3
    assert push.verdict is False  # ratio 1.5 > 1.3
    assert memory.verdict is True  # 120 < 150
    assert stored.verdict is True and search.verdict is False  # the bench's own checks win
    assert views.verdict is None  # information
    assert Target(">=", 0.995).met(0.99, None) is False
    assert Target("=", 0).met(0, None) is True
    assert Target("<=", 5).met("not measured", None) is None
    assert sample().missed == ["push through the gateway", "search p95"]
    with pytest.raises(ValueError):
        Target("~", 1)


def cells(header: str, row: str) -> dict[str, str]:
    """A table row cut where the header's columns start."""
    starts = [header.index(c) for c in bench.COLUMNS] + [len(row) + 1]
    return {c: row[starts[n]:starts[n + 1]].strip() for n, c in enumerate(bench.COLUMNS)}


def test_every_bench_prints_the_same_table() -> None:
    text = bench.render(sample())
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("measure"))
    header = lines[at]
    assert header.split() == list(bench.COLUMNS)
    assert set(lines[at + 1]) == {"-"}
    rows = [cells(header, r) for r in lines[at + 2:at + 2 + len(sample().measures)]]
    assert rows[0] == {"measure": "pull through the gateway", "value": "2.5", "unit": "s",
                       "baseline": "2", "ratio": "1.25x", "target": "ratio <= 1.3",
                       "met": "met", "note": "400 docs/s"}
    assert rows[1]["ratio"] == "1.50x" and rows[1]["met"] == "MISSED"
    assert rows[2] | {"note": ""} == {"measure": "peak memory", "value": "120", "unit": "MiB",
                                      "baseline": "", "ratio": "", "target": "< 150 MiB",
                                      "met": "met", "note": ""}
    assert (rows[3]["target"], rows[3]["met"], rows[3]["note"]) == ("= sum of queues", "met",
                                                                    "of 240")
    assert rows[4]["met"] == "MISSED" and rows[5]["met"] == "" and rows[5]["value"] == "12.35"
    # Numbers end where their column ends, so that they line up.
    ends = {len(r[:header.index("unit")].rstrip()) for r in lines[at + 2:at + 2 + len(rows)]}
    assert len(ends) == 1
    assert lines[0] == "" and lines[1] == "a sample bench" and "1. the detail" in lines
    assert lines[at + 2 + len(rows):] == ["", "total 1 s"]


def test_numbers_read_the_same_everywhere() -> None:
    assert [bench.number(x) for x in (164253, 2738.5, 123.456, 12.345, 0.71649, 5.0, None,
                                      math.nan, math.inf, "n/a text")] == [
        "164,253", "2,738", "123.5", "12.35", "0.716", "5", "", "n/a", "inf", "n/a text"]


def test_json_holds_the_measures_with_their_ratios(tmp_path: Path) -> None:
    args = bench.parser("bench-x", "x", timeout=60).parse_args(["--json", str(tmp_path / "a")])
    results = {"pass": False, "figures": {"p95": 1.5}}
    doc = bench.document("bench-x", ["--json", "a"], args, sample(), results,
                         bench.datetime.datetime(2026, 12, 3, tzinfo=bench.datetime.UTC), "1.00")
    bench.write_json(tmp_path / "out" / "a.json", doc)
    back = json.loads((tmp_path / "out" / "a.json").read_text(encoding="utf-8"))
    assert back["bench"] == "bench-x" and back["results"] == results
    assert back["columns"] == list(bench.COLUMNS)
    assert back["args"]["json"] == str(tmp_path / "a") and back["args"]["timeout"] == 60
    pull = back["measures"][0]
    assert set(bench.COLUMNS) <= set(pull)
    assert pull == {"measure": "pull through the gateway", "value": 2.5, "unit": "s",
                    "baseline": 2.0, "ratio": 1.25, "target": "ratio <= 1.3", "met": True,
                    "note": "400 docs/s"}
    assert back["missed"] == ["push through the gateway", "search p95"]
    assert Measure("x", 1.1513499999999999, baseline=0.1 + 0.2).row()["value"] == 1.15135
    assert Measure("x", 2.0, baseline=0.1 + 0.2).row()["baseline"] == 0.3
    assert back["machine"]["cpus"] == os.cpu_count()


def test_two_runs_compare_measure_by_measure(tmp_path: Path) -> None:
    old = {"bench": "bench-x", "measures": [m.row() for m in sample().measures]}
    faster = [dataclass_replace(m, value=m.value / 2) if m.unit == "s" else m
              for m in sample().measures]
    new = {"bench": "bench-x", "measures": [m.row() for m in faster[:-1]]}
    text = bench.compare(old, new)
    pull = next(line for line in text.splitlines() if line.startswith("pull"))
    assert "-50%" in pull and "1.25" in pull and "0.625" in pull
    assert "(gone)" in text.splitlines()[-1]  # a measure the new run lacks is said
    for path, doc in (("old.json", old), ("new.json", new)):
        (tmp_path / path).write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "server.demo.bench", "compare",
                           str(tmp_path / "old.json"), str(tmp_path / "new.json")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0 and "-50%" in done.stdout


def test_the_docs_table_comes_from_the_json_files(tmp_path: Path) -> None:
    args = bench.parser("bench-x", "x").parse_args(["--json", "a.json"])
    doc = bench.document("bench-x", ["--docs", "500", "--json", "a.json"], args, sample(),
                         {}, bench.datetime.datetime.now(bench.datetime.UTC), "1.00")
    text = bench.summary([doc])
    header, rule, row = text.splitlines()
    assert header == "| benchmark | command | measured | target |" and rule == "|---|---|---|---|"
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["a sample bench", "`scripts/bench-x --docs 500`"]  # no --json
    measured, targets = cells[2].split("; "), cells[3].split("; ")
    assert measured[:3] == ["pull through the gateway **2.5 s** (1.25×)",
                            "push through the gateway **3 s** (1.5×)", "peak memory **120 MiB**"]
    assert targets[:3] == ["ratio <= 1.3", "ratio <= 1.3 (missed)", "< 150 MiB"]
    # A check stated in words ("all", "= sum of queues") is counted, not listed.
    assert measured[-1] == "checks met 1 of 1" and targets[-1] == "every check"
    assert len(measured) == len(targets) and not any("views" in m for m in measured)
    (tmp_path / "a.json").write_text(json.dumps(doc, default=str))
    done = subprocess.run([sys.executable, "-m", "server.demo.bench", "summary",
                           str(tmp_path / "a.json")], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == text


def dataclass_replace(m: Measure, **changes: Any) -> Measure:
    return bench.dataclasses.replace(m, **changes)


def test_the_common_options() -> None:
    parser = bench.parser("bench-x", "x", timeout=900)
    args = parser.parse_args([])
    assert (args.timeout, args.keep, args.check, args.json) == (900, False, False, None)
    args = parser.parse_args(["--json", "out.json", "--check", "--keep", "--timeout", "5"])
    assert (args.json, args.check, args.keep, args.timeout) == (Path("out.json"), True, True, 5)
    assert not hasattr(bench.parser("bench-y", "y").parse_args([]), "timeout")


@pytest.mark.parametrize(("least", "value", "said"), [
    (1, "0", "--batch-size must be at least 1"), (0, "-1", "--batch-size cannot be negative"),
    (10, "9", "--batch-size must be at least 10")])
def test_a_size_too_small_is_refused_by_name(least: int, value: str, said: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    parser = bench.parser("bench-x", "x")
    parser.add_argument("--batch-size", type=int, default=100)
    bench.at_least(parser, parser.parse_args([]), least, "batch_size")  # the default passes
    with pytest.raises(SystemExit) as exit_:
        bench.at_least(parser, parser.parse_args(["--batch-size", value]), least, "batch_size")
    assert exit_.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_takes_the_common_options(name: str) -> None:
    """Each script keeps its sizes and gains --json; its checks still refuse a bad size."""
    module = script(name)
    args = module.parse_args(["--json", "run.json", "--check"])
    assert args.json == Path("run.json") and args.check and not args.keep
    assert f"bench-{name}" == module.PROG and hasattr(module.Bench, "report")
    with pytest.raises(SystemExit):
        module.parse_args(["--no-such-option"])


def test_the_scripts_sizes_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    for name, argv, said in (("sync", ["--docs", "0"], "--docs must be at least 1"),
                             ("load", ["--spray", "-1"], "--spray cannot be negative"),
                             ("conflicts", ["--grids", "100"], "--grids is at most 99"),
                             ("aggregates", ["--households", "9"],
                              "--households must be at least 10"),
                             ("residents", ["--clients", "0"], "--clients must be at least 1"),
                             ("residents", ["--receipts", "-1"],
                              "--receipts cannot be negative")):
        with pytest.raises(SystemExit):
            script(name).parse_args(argv)
        assert said in capsys.readouterr().err, name


def test_the_residents_bench_runs_one_part(tmp_path: Path) -> None:
    """--only picks the parts (the phones need residents signed up first); a part alone is
    reported alone: here the index, which needs no server."""
    module = script("residents")
    assert module.parse_args(["--only", "phones"]).only == ("signup", "phones")
    assert module.parse_args([]).only is None
    env = {**os.environ, "TMPDIR": str(tmp_path), bench.ready_flag("bench-residents"): "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench-residents"), "--smoke", "--only",
         "index", "--timeout", "120"], capture_output=True, text=True, cwd=ROOT, env=env,
        timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["parts"] == ["index"] and figures["index_sizes"]["accounts"] == 300
    assert "allowed-id index built" in done.stdout and "sign-up +" not in done.stdout


def test_the_memory_sampler_follows_a_process_by_phase() -> None:
    sampler = bench.MemorySampler(os.getpid(), store_pid=os.getpid())
    sampler.start()
    try:
        deadline = time.monotonic() + 10
        while sampler.samples < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        sampler.phase = "second"
        seen = sampler.samples
        while sampler.samples < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sampler.stop()
    assert set(sampler.server_peaks) == {"startup", "second"} == set(sampler.store_peaks)
    assert sampler.server_peak == max(sampler.server_peaks.values()) > 0
    assert sampler.server_peak >= bench.read_status(os.getpid())["VmRSS"] // 2
    assert bench.cpu_seconds(os.getpid()) > 0 and bench.cpu_seconds(None) == 0.0
    assert bench.percentile([5, 1, 4, 2, 3], 0.95) == 5 and bench.percentile([], 0.5) != 0
    assert bench.spread([1.0, 2.0, 3.0], 1000, 1) == {"n": 3, "p50": 2000.0, "p95": 3000.0,
                                                      "max": 3000.0, "mean": 2000.0}


def test_wait_idle_waits_out_background_work() -> None:
    """A process still busy (what a run set going: views being built) is waited for, up to the
    limit, and its CPU seconds meanwhile are counted; a quiet one is waited for one second."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        waited = bench.wait_idle([busy.pid, None], limit=2.5, quiet=0.01)  # a busy machine
    finally:
        busy.kill()
        busy.wait()
    assert waited["seconds"] >= 2.5 and waited["cpu_s"] >= 0.03, waited
    quiet = bench.wait_idle([busy.pid], limit=10)  # gone: no CPU at all
    assert quiet == {"seconds": pytest.approx(1.0, abs=0.5), "cpu_s": 0.0}


class Scenario:
    """The smallest scenario the harness runs, in two steps: it says what happened to it, so
    that a test sees the run loop's side (exit status, output, clean-up), with the harness
    itself real. `outcome`: ok, error (a BenchError of two lines), crash (a bug: KeyError),
    slow (past any timeout), lost (a record missing: a correctness check missed)."""

    def __init__(self, args: Any, tmp: Path, *, outcome: str, passed: bool = True) -> None:
        self.args, self.tmp, self.outcome, self.passed = args, tmp, outcome, passed
        self.stopped = False

    async def run(self, step: bench.Steps) -> dict[str, Any]:
        await step("prepare", self.prepare)
        return await step("measure", self.measure)

    def prepare(self) -> None:
        (self.tmp / "work").write_text("made by the run")

    async def measure(self) -> dict[str, Any]:
        if self.outcome == "error":
            raise bench.BenchError("the store did not answer\n(its log: connection refused)")
        if self.outcome == "crash":
            return {}["seconds"]  # type: ignore[no-any-return]
        if self.outcome == "slow":
            await bench.asyncio.sleep(30)
        return {"pass": self.passed, "seconds": 1.5, "store_seconds": 1.0,
                "stored": 4 if self.outcome == "lost" else 5}

    def report(self, r: dict[str, Any]) -> Report:
        return Report("a scenario", [Measure("through the gateway", r["seconds"], "s",
                                             baseline=r["store_seconds"],
                                             target=Target("<=", 1.3, of_ratio=True),
                                             met=r["pass"]),
                                     bench.check("records stored", r["stored"],
                                                 r["stored"] == 5, note="of 5")])

    def failed(self) -> list[str]:
        return ["server log (last lines): the store refused"]

    async def stop(self) -> None:
        self.stopped = True


def run_scenario(argv: list[str], **how: Any) -> tuple[int, Scenario]:
    parser = bench.parser("bench-scenario", "a scenario", timeout=60)
    parser.add_argument("--records", type=int, default=5000)
    made: list[Scenario] = []

    def make(args: Any, tmp: Path) -> Scenario:
        made.append(Scenario(args, tmp, **how))
        return made[-1]

    code = bench.run("bench-scenario", argv,
                     lambda a: bench.parse(parser, a, {"records": 1}, smoke={"records": 5}),
                     make)
    return code, made[0]


def test_a_run_prints_its_table_and_figures_and_cleans_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, scenario = run_scenario(["--json", str(tmp_path / "run.json")], outcome="ok",
                                  passed=False)
    out = capsys.readouterr().out.splitlines()
    assert code == 0  # a missed target is a result, not an error, without --check
    assert json.loads(out[-1]) == {"pass": False, "seconds": 1.5, "store_seconds": 1.0,
                                   "stored": 5}
    assert any(line.startswith("through the gateway") and "1.50x" in line for line in out)
    doc = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert doc["measures"][0]["ratio"] == 1.5 and doc["missed"] == ["through the gateway"]
    assert scenario.stopped and not scenario.tmp.exists()  # stopped, its temp folder gone
    code, scenario = run_scenario(["--check", "--keep"], outcome="ok", passed=False)
    assert code == 3 and scenario.stopped and (scenario.tmp / "work").exists()
    bench.shutil.rmtree(scenario.tmp)
    assert run_scenario(["--check"], outcome="ok")[0] == 0


def test_a_failed_run_says_why_and_still_stops(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, scenario = run_scenario(["--json", str(tmp_path / "run.json")], outcome="error")
    err = capsys.readouterr().err
    assert code == 1 and scenario.stopped and not scenario.tmp.exists()
    assert err.splitlines()[-1] == ("bench-scenario: step measure failed: the store did not "
                                    "answer")
    assert "the store refused" in err  # the scenario's own account of the failure
    assert not (tmp_path / "run.json").exists()
    handlers = [bench.signal.getsignal(s) for s in (bench.signal.SIGINT, bench.signal.SIGTERM)]
    code, scenario = run_scenario(["--timeout", "0.5"], outcome="slow")
    assert code == 1 and scenario.stopped
    assert capsys.readouterr().err.splitlines()[-1] == (
        "bench-scenario: step measure failed: global timeout of 0 s reached")
    # The run's signal handlers (Ctrl-C cancels it) are the caller's again afterwards.
    assert handlers == [bench.signal.getsignal(s)
                        for s in (bench.signal.SIGINT, bench.signal.SIGTERM)]


def test_the_rss_sampler_sees_a_peak_already_gone() -> None:
    """A peak during the block counts even when it has been freed before the block ends."""
    with bench.RssSampler(os.getpid()) as rss:
        held = b"x" * (64 * bench.MIB)  # written, so resident
        time.sleep(0.1)
        del held
    figures = rss.figures()
    assert figures["growth_mib"] >= 48, figures
    assert figures["peak_mib"] - figures["before_mib"] == pytest.approx(figures["growth_mib"],
                                                                         abs=0.11)


@pytest.mark.parametrize(("outcome", "last"), [
    ("error", "step measure failed: the store did not answer"),
    ("crash", "step measure failed: KeyError: 'seconds'"),
    ("lost", "step checks failed: records stored 4, expected all (of 5)")])
def test_a_failing_step_says_which_and_why_in_one_line(
        outcome: str, last: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever fails (the bench's own error, a bug, a record lost), the run exits with 1 and
    its last line on stderr names the step and the reason, once; a reason's further lines and
    a bug's traceback come before it. A missed check fails the run without --check."""
    code, scenario = run_scenario([], outcome=outcome)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 1 and scenario.stopped, err
    assert lines[-1] == f"bench-scenario: {last}"
    assert sum("failed:" in line for line in lines) == 1
    assert "step prepare done in" in err  # the steps before it went through
    if outcome == "error":
        assert "bench-scenario:   (its log: connection refused)" in lines[:-1]
    assert ("Traceback" in err) == (outcome == "crash")  # only a bug is worth a traceback
    # A check is read from the report: the table is printed, then the run fails.
    assert ("records stored" in out) == (outcome == "lost")


def test_smoke_takes_every_check_and_no_target(capsys: pytest.CaptureFixture[str]) -> None:
    """--smoke: the bench's smoke sizes (a size given still wins), its targets left out (a
    missed one is no failure), its checks kept (a missed one is), and no --check."""
    code, scenario = run_scenario(["--smoke"], outcome="ok", passed=False)
    out = capsys.readouterr().out
    assert code == 0 and scenario.args.records == 5
    assert scenario.args.timeout == bench.SMOKE_TIMEOUT  # not the full run's 60
    assert "MISSED" not in out and "ratio <= 1.3" not in out and "[--smoke" in out
    assert run_scenario(["--smoke", "--records", "7"], outcome="ok")[1].args.records == 7
    assert run_scenario(["--smoke"], outcome="lost")[0] == 1
    assert "step checks failed: records stored 4" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        run_scenario(["--smoke", "--check"], outcome="ok")
    assert refused.value.code == 2 and "--smoke has no targets" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not have"):
        bench.parse(bench.parser("bench-y", "y"), [], {}, smoke={"dcos": 1})


@pytest.mark.slow
def test_the_conflicts_bench_runs_and_writes_its_json(tmp_path: Path) -> None:
    """The cheapest real bench, tiny: its own store and app on free ports; the table on stdout,
    every figure in the JSON line and in --json, and the temp folder removed."""
    out = tmp_path / "conflicts.json"
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp),
           bench.ready_flag("bench-conflicts"): "1"}  # the suite's virtualenv is set up
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench-conflicts"), "--conflicts", "12",
         "--grids", "2", "--latency-conflicts", "3", "--gap-min", "10", "--gap-max", "20",
         "--timeout", "240", "--check", "--json", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    figures = json.loads(lines[-1])
    assert figures["pass"] is True and figures["throughput"]["conflicts"] == 12
    header = next(line for line in lines if line.startswith("measure"))
    assert header.split() == list(bench.COLUMNS)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["bench"] == "bench-conflicts" and doc["results"] == figures
    assert doc["args"]["conflicts"] == 12 and doc["missed"] == []
    rows = {m["measure"]: m for m in doc["measures"]}
    resolution = rows["resolution of every conflict"]
    assert resolution["value"] == figures["throughput"]["seconds"]
    assert resolution["baseline"] == figures["throughput"]["baseline"]["with_trails"]["seconds"]
    assert resolution["ratio"] == round(resolution["value"] / resolution["baseline"], 3)
    assert rows["sync -> resolution p95"]["target"] == "<= 5 s"
    assert rows["sync -> resolution p95"]["met"] is True
    assert all(m["measure"] in done.stdout for m in doc["measures"])
    assert not list(temp.glob("linli-bench-conflicts-*"))  # its temp folder is gone


@pytest.mark.slow
def test_the_residents_bench_runs_smoke(tmp_path: Path) -> None:
    """scripts/bench-residents --smoke: its own server on a free loopback port, every resident
    signed up and activated through it, the index built, first syncs and held feeds; its
    figures in the table, the JSON line and --json, and its temp folder removed."""
    out, temp = tmp_path / "residents.json", tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), bench.ready_flag("bench-residents"): "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench-residents"), "--smoke", "--timeout",
         "240", "--json", str(out)], capture_output=True, text=True, cwd=ROOT, env=env,
        timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["signups"] == figures["activated"] == script("residents").SMOKE["signups"]
    assert figures["index_sizes"]["accounts"] == figures["residents"]
    assert figures["hash_per_second"] > 0 and figures["signups_per_second"] > 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    rows = {m["measure"]: m for m in doc["measures"]}
    signups = rows["sign-up + automatic activation"]
    assert signups["baseline"] == figures["hash_per_second"]
    assert signups["ratio"] == round(figures["signups_per_second"] / figures["hash_per_second"],
                                     3)
    assert rows["  activated at once"]["met"] is True
    cpu = rows["  CPU a sign-up, all processes"]
    assert cpu["value"] == figures["signup_cpu_ms"]["all"] > 0
    assert cpu["baseline"] == figures["hash_cpu_ms"] > 0
    # A resident's phone: its first sync through the gateway, and a community notice reaching
    # every held feed of the community and none of the other's.
    assert figures["first_sync_ms"]["n"] == script("residents").SMOKE["first_syncs"]
    assert figures["first_sync_docs"] >= 5 + script("residents").SMOKE["notices"]
    assert figures["notice_reached"] == figures["notice_feeds"] > 0
    assert figures["woken_elsewhere"] == 0 and figures["held_feeds"] > figures["notice_feeds"]
    assert rows["first sync p95"]["baseline"] == figures["first_sync_store_ms"]["p95"]
    assert not list(temp.glob("linli-bench-residents-*"))
