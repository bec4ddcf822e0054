"""No block of six or more lines is repeated in server/, pwa/ or scripts/ (issue 14, "one of
each"): a piece of logic written twice drifts apart, and the next feature copies the copy. This
checker is self-contained (the `duplicates` tool is not installed on CI machines) and stricter in
one way and looser in another: it flags only runs of identical lines, once blank lines, comments
and imports are dropped and whitespace is folded, but it flags every such run, thin ones too."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = 6  # the shortest repeated run that fails
FOLDERS = ("server", "pwa", "scripts")
# Not written by hand: third-party code vendored as it comes, and what scripts/setup generates
# from schemas/ (Ajv's standalone validators repeat themselves by design).
SKIPPED = ("pwa/vendor", "pwa/generated")
SHEBANG = re.compile(r"^#!.*\b(python3?|bash)\b")

Line = tuple[int, str]  # (line number in the file, the normalised text)


def fold(text: str) -> str:
    return " ".join(text.split())


def python_lines(source: str) -> list[Line]:
    """Python's lines without blanks, comment lines and import statements (found by the parser,
    so a multi-line `from x import (...)` goes whole and a docstring saying "import" stays)."""
    imports: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return [(n, fold(text)) for n, text in enumerate(source.splitlines(), 1)
            if n not in imports and text.strip() and not text.strip().startswith("#")]


def javascript_lines(source: str) -> list[Line]:
    """JavaScript's lines without blanks, `//` and `/* */` comment lines and import statements
    (which may run over several lines until their `from "..."`)."""
    kept: list[Line] = []
    in_comment = in_import = False
    for n, text in enumerate(source.splitlines(), 1):
        line = text.strip()
        if in_comment:
            in_comment = "*/" not in line
            continue
        if in_import:
            in_import = not re.search(r"""\bfrom\s*["']|;\s*$""", line)
            continue
        if line.startswith("/*"):
            in_comment = "*/" not in line
            continue
        if re.match(r"import\b(?!\s*\()", line):
            in_import = not re.search(r"""\bfrom\s*["']|^import\s*["']|;\s*$""", line)
            continue
        if line and not line.startswith("//"):
            kept.append((n, fold(line)))
    return kept


def shell_lines(source: str) -> list[Line]:
    return [(n, fold(text)) for n, text in enumerate(source.splitlines(), 1)
            if text.strip() and not text.strip().startswith("#")]


def normalised(path: Path) -> list[Line]:
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".js":
        return javascript_lines(source)
    if path.suffix == ".py" or "python" in source.split("\n", 1)[0]:
        return python_lines(source)
    return shell_lines(source)


def sources(root: Path, folders: Iterable[str]) -> list[Path]:
    """The files held to the rule: server/'s Python, pwa/'s JavaScript (not what is vendored or
    generated), and scripts/ with a Python or bash shebang."""
    found: list[Path] = []
    for folder in folders:
        base = root / folder
        if folder == "server":
            found += base.rglob("*.py")
        elif folder == "pwa":
            found += base.rglob("*.js")
        else:
            found += (p for p in base.rglob("*") if p.is_file() and is_script(p))
    return sorted(p for p in found
                  if not any(p.relative_to(root).as_posix().startswith(s + "/") for s in SKIPPED))


def is_script(path: Path) -> bool:
    with path.open("rb") as handle:
        first = handle.readline(200).decode("utf-8", "replace")
    return bool(SHEBANG.match(first))


def repeats(root: Path, folders: Iterable[str], run: int = RUN) -> list[str]:
    """Every pair of places where `run` or more normalised lines stand the same, as
    `a.py:10-24 ~ b.py:40-54` (each repeat against its first place), longest first."""
    lines = {p.relative_to(root).as_posix(): normalised(p) for p in sources(root, folders)}
    places: defaultdict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
    for name, kept in lines.items():
        for i in range(len(kept) - run + 1):
            places[tuple(text for _, text in kept[i:i + run])].append((name, i))
    # Windows that repeat, grouped by the pair of files and the shift between them, so that the
    # overlapping windows of one long repeated block are told once, as one range.
    shifts: defaultdict[tuple[str, str, int], list[int]] = defaultdict(list)
    for found in places.values():
        (first, i), later = found[0], found[1:]
        for other, j in later:
            if other != first or j - i >= run:  # not the same lines seen one step further
                shifts[(first, other, j - i)].append(i)
    report: list[tuple[int, str]] = []
    for (first, other, shift), starts in shifts.items():
        starts.sort()
        begin = prev = starts[0]
        for i in [*starts[1:], None]:
            if i is not None and i == prev + 1:
                prev = i
                continue
            a, b = lines[first], lines[other]
            end = prev + run - 1
            report.append((end - begin + 1, f"{first}:{a[begin][0]}-{a[end][0]} ~ "
                                            f"{other}:{b[begin + shift][0]}-{b[end + shift][0]}"))
            if i is not None:
                begin = prev = i
    return [text for _, text in sorted(report, key=lambda r: (-r[0], r[1]))]


# -- the checker, on a small tree made for it --------------------------------------------------

BLOCK = [f"value_{n} = compute({n}, limit={n * 10})" for n in range(6)]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_six_repeated_lines_across_files_are_found(tmp_path: Path) -> None:
    write(tmp_path / "server/a.py", "\n".join(["x = 1", *BLOCK, "y = 2"]) + "\n")
    write(tmp_path / "server/web/b.py", "\n".join(["def f():", *("    " + s for s in BLOCK)]))
    assert repeats(tmp_path, ["server"]) == ["server/a.py:2-7 ~ server/web/b.py:2-7"]


def test_five_lines_are_not_a_repeat(tmp_path: Path) -> None:
    write(tmp_path / "server/a.py", "\n".join(BLOCK[:5]) + "\nz = 0\n")
    write(tmp_path / "server/b.py", "\n".join(BLOCK[:5]) + "\nz = 1\n")
    assert repeats(tmp_path, ["server"]) == []


def test_a_repeat_within_one_file_is_found_and_told_once(tmp_path: Path) -> None:
    longer = [*BLOCK, "value_6 = compute(6, limit=60)"]
    write(tmp_path / "server/a.py", "\n".join([*longer, "print(1)", *longer]) + "\n")
    assert repeats(tmp_path, ["server"]) == ["server/a.py:1-7 ~ server/a.py:9-15"]


def test_a_line_repeated_in_a_row_is_not_a_repeated_block(tmp_path: Path) -> None:
    write(tmp_path / "server/a.py", "x = 1\n" * 8)
    assert repeats(tmp_path, ["server"]) == []


def test_comments_blanks_imports_and_spacing_do_not_hide_a_repeat(tmp_path: Path) -> None:
    python = ["import os", "from json import (", "    dumps,", "    loads,", ")", *BLOCK[:3],
              "", "    # a comment", BLOCK[3].replace(" ", "  "), *BLOCK[4:]]
    write(tmp_path / "server/a.py", "\n".join(BLOCK) + "\n")
    write(tmp_path / "server/b.py", "\n".join(python) + "\n")
    js = ['import {', '  a,', '} from "./x.js";', "/* a", " comment */",
          *(s + ";" for s in BLOCK[:3]), "// a comment", *(s.replace(" ", "  ") + ";"
                                                         for s in BLOCK[3:])]
    write(tmp_path / "pwa/one.js", "\n".join(s + ";" for s in BLOCK) + "\n")
    write(tmp_path / "pwa/two.js", "\n".join(js) + "\n")
    assert repeats(tmp_path, ["server", "pwa"]) == [
        "pwa/one.js:1-6 ~ pwa/two.js:6-12", "server/a.py:1-6 ~ server/b.py:6-13"]


def test_imports_and_comments_alone_are_not_a_repeat(tmp_path: Path) -> None:
    imports = "\n".join(["from typing import (", *(f"    Name{n}," for n in range(8)), ")"])
    comments = "\n".join(f"# {n} what this does" for n in range(8))
    for name in ("a", "b"):
        write(tmp_path / f"server/{name}.py", f"{imports}\n{comments}\nx = '{name}'\n")
        write(tmp_path / f"pwa/{name}.js",
              "\n".join(["import {", *(f"  name{n}," for n in range(8)), '} from "./x.js";',
                         *(f"// {n} what this does" for n in range(8)), f"x = '{name}';"]))
    assert repeats(tmp_path, ["server", "pwa"]) == []


def test_which_files_are_read(tmp_path: Path) -> None:
    for path in ("pwa/vendor/lib.js", "pwa/generated/validators.js", "pwa/app.js",
                 "scripts/bench", "scripts/serve", "scripts/notes.txt", "server/x.js"):
        write(tmp_path / path, "\n".join(BLOCK) + "\n")
    write(tmp_path / "scripts/bench", "#!/usr/bin/env python3\n" + "\n".join(BLOCK) + "\n")
    write(tmp_path / "scripts/serve", "#!/bin/bash\nset -e\n" + "\n".join(BLOCK) + "\n")
    read = [p.relative_to(tmp_path).as_posix() for p in sources(tmp_path, FOLDERS)]
    assert read == ["pwa/app.js", "scripts/bench", "scripts/serve"]
    assert repeats(tmp_path, FOLDERS) == ["pwa/app.js:1-6 ~ scripts/bench:2-7",
                                          "pwa/app.js:1-6 ~ scripts/serve:3-8"]


# -- the real tree --------------------------------------------------------------------------------

def test_no_block_is_repeated() -> None:
    """Within and across the folders held to the rule."""
    found = repeats(ROOT, sorted(FOLDERS))
    assert not found, f"{len(found)} repeated blocks of {RUN} or more lines:\n" + "\n".join(found)
