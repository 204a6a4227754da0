"""Helpers of the fault-injection suite: run a command in-process, fingerprint a folder, judge the outcome.

Commands run through click's CliRunner (no ~2 s torch import per case); only the concurrency and SIGKILL
cases start subprocesses. A case is *clean* when the command exits with the documented code (2 for a
user error), prints exactly one ``error:`` line and no traceback, and leaves every file as it was.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from ganforge.experiments.runner import start_run
from ganforge.presets import load_config
from tests.conftest import invoke_cli

# Two ticks and a snapshot at each: a finished run whose every artifact exists, in about two seconds.
FAST = ["train.kimg=1", "train.tick_kimg=0.5", "train.snapshot_ticks=1"]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def traceback(self) -> bool:
        """An exception escaped the CLI: a user would have seen a traceback."""
        return self.exception is not None and not isinstance(self.exception, SystemExit)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def invoke(*args: str) -> Outcome:
    result = invoke_cli(*args)
    return Outcome(result.exit_code, result.stdout, result.stderr, result.exception)


def fingerprint(root: Path) -> dict[str, str]:
    """Every file and folder under ROOT (hidden ones too) -> a hash of its bytes ('dir' for folders)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_refused(outcome: Outcome, before: dict[str, str], root: Path, *, code: int = 2) -> str:
    """Exit CODE, one short error line, no traceback, nothing changed under ROOT; return the message."""
    assert not outcome.traceback, f"traceback: {outcome.exception!r}\n{outcome.stderr}"
    assert outcome.code == code, f"exit {outcome.code}, wanted {code}\n{outcome.stdout}\n{outcome.stderr}"
    lines = outcome.error_lines
    assert len(lines) == 1, f"wanted one error line, got:\n{outcome.stderr}"
    assert len(lines[0]) <= 1300, lines[0]
    assert "Traceback" not in outcome.stderr and "Traceback" not in outcome.stdout
    after = fingerprint(root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"files changed by a refused command: {changed[:10]}"
    return lines[0]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished sine run (2 ticks), made once; tests work on copies (``run`` fixture)."""
    out = tmp_path_factory.mktemp("faults") / "sine"
    start_run(load_config("sine", FAST), str(out), progress=False, log=lambda _: None)
    # the second as `evaluate --full-data` writes it, the third as `evaluate --full-data --baseline replay` does
    for name in ("eval.json", "eval-full-data.json", "eval-full-data-baseline-replay.json"):
        (out / name).write_text(
            '{"format": "ganforge-eval/1", "metrics": [{"name": "energy", "value": 0.5, '
            '"protocol_id": "abc", "protocol": {}}], "skipped": {}}\n'
        )
    return out


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, under tmp_path/work (the folder the checks fingerprint)."""
    dst = tmp_path / "work" / "run"
    shutil.copytree(finished_run, dst)
    return dst
