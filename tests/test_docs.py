"""The docs are a newcomer's path. The README names the two commands and stays short; the
reference is in docs/, every page reachable from the README. docs/settings.md is the output of
`linli settings --markdown` (a setting added to server/config.py and not to the page fails here).
Every link and #anchor resolves, and every command shown exists with the options shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.cli import build_parser, main
from server.config import SETTINGS
from server.store.embedded import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
SETTINGS_PAGE = DOCS / "settings.md"


def pages() -> list[Path]:
    return [PROJECT_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_settings_page_is_the_commands_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "--markdown"]) == 0
    printed = capsys.readouterr().out
    assert SETTINGS_PAGE.read_text(encoding="utf-8") == printed, (
        "docs/settings.md is stale: .venv/bin/linli settings --markdown > docs/settings.md")


def test_every_setting_is_documented() -> None:
    """Each setting has its row, with its name, a default and a meaning."""
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \| (.+) \|$",
                      SETTINGS_PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    documented = {env: (default.strip(), meaning.strip()) for env, default, meaning in rows}
    assert sorted(documented) == sorted(s.env for s in SETTINGS)
    for env, (default, meaning) in documented.items():
        assert default and len(meaning) > 10, env


def test_the_two_commands_and_ci() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "scripts/serve" in readme and "scripts/test" in readme
    assert "scripts/test" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_every_command_is_documented() -> None:
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages())
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        actions = [a for a in sub._actions if a.dest == "action"]
        verbs = list(actions[0].choices) if actions else [""]
        for verb in verbs:
            assert f"linli {name} {verb}".strip() in text, (name, verb)


# -- links and commands ---------------------------------------------------------------------------

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
SHELL = {"sh", "bash", "shell", "console"}


def prose(text: str) -> str:
    """The text outside code blocks and code spans, where a link is a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for match in LINK.finditer(prose(page.read_text(encoding="utf-8"))):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto: are not ours to check
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def doc_pages() -> list[Path]:
    return [*pages(), PROJECT_ROOT / "SECURITY.md"]


def test_every_link_resolves() -> None:
    broken = [problem for page in doc_pages() for problem in broken_links(page)]
    assert not broken, broken


def test_the_reference_is_reachable_from_the_readme() -> None:
    """README → docs/README.md → every page of docs/, so no page is an orphan."""
    readme = prose((PROJECT_ROOT / "README.md").read_text(encoding="utf-8"))
    assert "(docs/README.md)" in readme
    index = prose((DOCS / "README.md").read_text(encoding="utf-8"))
    orphans = [p.name for p in DOCS.glob("*.md") if p.name != "README.md"
               and f"]({p.name})" not in index]
    assert not orphans, f"pages missing from docs/README.md: {orphans}"


def test_the_readme_stays_the_way_in() -> None:
    """The README holds what a newcomer needs first; the reference grows in docs/ instead (it
    was 64 KB, half of it a lab notebook). Every screenshot in docs/screenshots is shown in it."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 16_000, "move the reference into docs/"
    unshown = [png.name for png in (DOCS / "screenshots").glob("*.png")
               if f"docs/screenshots/{png.name}" not in readme]
    assert not unshown, f"screenshots the README does not show: {unshown}"


def shown_commands(page: Path) -> list[list[str]]:
    """Every command a page shows: the lines of its shell blocks, and code spans that start with
    one of our commands; each split into words, comments and placeholders' brackets dropped."""
    text = page.read_text(encoding="utf-8")
    lines = [line for lang, body in FENCE.findall(text) if lang in SHELL
             for line in body.splitlines()]
    lines += [span for span in INLINE_CODE.findall(FENCE.sub("", text))
              if re.match(r"(scripts/|\.venv/bin/|linli |python -m server)", span)]
    commands = []
    for line in lines:
        line = re.split(r"\s#\s|^#", line)[0]
        for part in re.split(r"\|\s|&&|;", line):
            words = [w.strip("[]") for w in part.split()]
            while words and re.match(r"[A-Z_]+=", words[0]):
                words.pop(0)  # an environment variable set for the command
            if words:
                commands.append(words)
    return commands


def check_linli(words: list[str]) -> None:
    """`linli SUB [VERB] --option...`: the subcommand, verb and options exist in the parser."""
    parser = build_parser()
    known = set(parser._option_string_actions)
    rest = [w for w in words if not w.startswith("-")]
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    if rest:
        assert rest[0] in commands, f"no subcommand linli {rest[0]}"
        sub = commands[rest[0]]
        known |= set(sub._option_string_actions)
        verbs = [a for a in sub._actions if a.dest == "action"]
        if verbs:
            assert len(rest) > 1 and rest[1] in verbs[0].choices, f"linli {' '.join(rest[:2])}"
            known |= set(verbs[0].choices[rest[1]]._option_string_actions)
    unknown = [w.split("=")[0] for w in words if w.startswith("-")
               and w.split("=")[0] not in known]
    assert not unknown, f"linli {' '.join(words)}: unknown options {unknown}"


def script_options(script: Path) -> str:
    """What a script accepts: a Python script's --help, or a shell script's own text (its
    comment lists the options it passes on)."""
    text = script.read_text(encoding="utf-8")
    if not text.startswith("#!/usr/bin/env python3"):
        return text
    shown = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=180,
                           cwd=PROJECT_ROOT)
    assert shown.returncode == 0, f"{script.name} --help: {shown.stderr[-500:]}"
    return shown.stdout


def test_every_command_shown_exists() -> None:
    """A command in the docs runs: scripts/X is an executable file that takes the options shown;
    `linli SUB VERB` is a real subcommand with those options; `.venv/bin/X` is a program the
    virtualenv has."""
    shown = [(page, words) for page in doc_pages() for words in shown_commands(page)]
    assert any(words[0] == "scripts/serve" for _, words in shown)
    scripts = {words[0] for _, words in shown if words[0].startswith("scripts/")}
    missing = [s for s in scripts if not os.access(PROJECT_ROOT / s, os.X_OK)]
    assert not missing, f"not executable files: {missing}"
    with ThreadPoolExecutor() as pool:  # the --help of each Python script takes seconds
        options = dict(zip(scripts, pool.map(lambda s: script_options(PROJECT_ROOT / s), scripts),
                           strict=True))
    for page, words in shown:
        program, args = words[0], words[1:]
        if program in ("linli", ".venv/bin/linli"):
            check_linli(args)
        elif program == "python" and args[:2] == ["-m", "server"]:
            check_linli(args[2:])
        elif program in options:
            unknown = [w for w in args if w.startswith("--") and w.split("=")[0]
                       not in options[program]]
            assert not unknown, f"{page.name}: {' '.join(words)}: not options of it: {unknown}"
        elif program.startswith(".venv/bin/"):
            assert (Path(sys.executable).parent / program.removeprefix(".venv/bin/")).exists(), (
                f"{page.name}: {' '.join(words)}")
