"""Every benchmark runs, and CI proves it (issue 24): each scripts/bench-* has a --smoke mode (its
smallest sizes through every step, every correctness check, no target), .ci/run runs them all
after the tests, and a bench that fails says in one line which step failed and why. The
contract is read from the scripts themselves, so a new bench without a smoke mode fails here."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench_harness import script

from server.demo import bench

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.name.removeprefix("bench-") for p in (ROOT / "scripts").glob("bench-*"))


def sizes(args: argparse.Namespace) -> dict[str, float]:
    """The numeric options of a run (its sizes), the common ones left out."""
    return {k: v for k, v in vars(args).items() if isinstance(v, int | float)
            and not isinstance(v, bool) and k != "timeout"}


def test_the_benches_are_found() -> None:
    assert {"sync", "domain", "pwa", "conflicts", "aggregates", "load", "residents"} <= set(
        BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_has_a_smoke_mode(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--smoke is in the bench's --help, parses, makes the run smaller (never larger) than the
    full one in every size, and bounds it; --smoke --check is refused (no targets to check)."""
    module = script(name)
    with pytest.raises(SystemExit) as shown:
        module.parse_args(["--help"])
    assert shown.value.code == 0 and "--smoke" in capsys.readouterr().out
    full, smoke = module.parse_args([]), module.parse_args(["--smoke"])
    assert smoke.smoke and not full.smoke
    smaller = {k: (v, sizes(full)[k]) for k, v in sizes(smoke).items() if v != sizes(full)[k]}
    assert smaller, f"bench-{name} --smoke runs the full sizes"
    # A smaller size, or a shorter wait (--wait-window 0, a held gap of 0.2 s).
    assert all(s <= f for s, f in smaller.values()), smaller
    assert getattr(smoke, "timeout", bench.SMOKE_TIMEOUT) <= bench.SMOKE_TIMEOUT
    with pytest.raises(SystemExit) as refused:
        module.parse_args(["--smoke", "--check"])
    assert refused.value.code == 2 and "--smoke has no targets" in capsys.readouterr().err


def test_ci_runs_every_bench_smoke_after_the_tests() -> None:
    """.ci/run runs scripts/test, then every scripts/bench-* with --smoke (a glob: a new bench
    is in without an edit here), and fails when one of them does."""
    ci = "\n".join(line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
                   .splitlines() if not line.lstrip().startswith("#"))
    tests, smoke = ci.index("scripts/test"), ci.index("scripts/bench-*")
    assert tests < smoke and "--smoke" in ci[smoke:]
    assert "exec scripts/test" not in ci  # it would never come back to the benches
    assert "exit 1" in ci[smoke:] or "failed" in ci[smoke:]


def test_a_real_bench_that_fails_says_which_step_in_one_line(tmp_path: Path) -> None:
    """scripts/bench-domain --smoke on a machine without node: the validation step runs (pure
    Python), the import step cannot start the embedded store. The run exits with 1 and its
    last line names that step and why; its temp folder is gone."""
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "PATH": str(tmp_path), "TMPDIR": str(temp),  # no node on the PATH
           bench.ready_flag("bench-domain"): "1"}  # the suite's virtualenv is set up
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench-domain"), "--smoke"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr[-3000:]
    assert "bench-domain: step validation done in" in done.stderr
    assert lines[-1].startswith("bench-domain: step import failed: StoreError: the embedded "
                                "store is not installed"), lines[-1]
    assert sum("failed:" in line for line in lines) == 1
    assert "measure" not in done.stdout  # no table: the run did not get that far
    assert not list(temp.glob("linli-bench-domain-*"))
