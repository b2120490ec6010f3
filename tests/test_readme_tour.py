"""The README's CLI tour runs as written, in order, in a fresh directory.

Every ``$ command`` of the tour's ``text`` blocks runs in one bash session (so
``source .venv/bin/activate`` carries over) in an empty directory that holds only
links to the clone's ``src/`` and ``.venv/``. Each command must exit 0, and the
lines the README shows that are stable across machines (``wrote ...``, captions, the
command list) must appear in what it printed, times masked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOUR_START = "## The `4dnex` command: a tour"
TOUR_END = "## The library"
_TIME = re.compile(r"\d+(\.\d+)? s\b")
_MARK = "@@fourdnex-tour-step"


def tour_steps(text: str) -> list[tuple[str, list[str]]]:
    """``(command, shown output lines)`` of every ``$`` line of the tour's text blocks."""
    section = text[text.index(TOUR_START) : text.index(TOUR_END)]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```text\n(.*?)```", section, flags=re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            command = lines[i][2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            i += 1
            shown: list[str] = []
            while i < len(lines) and not lines[i].startswith("$ "):
                shown.append(lines[i])
                i += 1
            steps.append((command, shown))
    return steps


def stable(line: str) -> bool:
    """Lines that do not depend on the machine's speed or floating-point details."""
    return line.startswith(("wrote ", "caption: ", "  ", "usage: ", "One image in", "Run `"))


def normalize(line: str) -> str:
    return _TIME.sub("N s", line.rstrip())


def test_tour_parses() -> None:
    steps = tour_steps(README.read_text())
    commands = [c.split()[1] if c.startswith("4dnex") else c for c, _ in steps]
    assert len(steps) >= 12 and "generate" in commands and "train" in commands
    assert all(c.startswith(("4dnex ", "source ")) for c, _ in steps)


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "activate").is_file(), reason="no .venv")
def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    steps = tour_steps(README.read_text())
    (tmp_path / "src").symlink_to(ROOT / "src")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = ["set -u"]
    for n, (command, _) in enumerate(steps):
        script += [f"echo '{_MARK} {n}'", command, f"echo '{_MARK} rc' $?"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    chunks = proc.stdout.split(f"{_MARK} ")[1:]
    outputs: dict[int, tuple[str, int]] = {}
    for head, tail in zip(chunks[0::2], chunks[1::2], strict=False):
        n = int(head.split("\n", 1)[0])
        outputs[n] = (head.split("\n", 1)[1] if "\n" in head else "", int(tail.split()[1]))
    for n, (command, shown) in enumerate(steps):
        assert n in outputs, f"step {n} did not run: {command}\n{proc.stderr[-2000:]}"
        printed, rc = outputs[n]
        assert rc == 0, f"`{command}` exited {rc}:\n{proc.stderr[-2000:]}"
        got = {normalize(line) for line in printed.splitlines()}
        for line in shown:
            if stable(line) and not line.rstrip().endswith("..."):
                assert normalize(line) in got, f"`{command}` no longer prints: {line!r}"
