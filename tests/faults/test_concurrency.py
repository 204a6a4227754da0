"""Two writers never share a folder, a dead writer's lock is taken over, and SIGKILL at random points loses
nothing. The lock cases run in-process (a held lock is refused even within one process: flock locks belong
to open files); the races and kills need real processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ganforge.training.lock import LOCK_FILE, acquire, read_owner
from tests.conftest import REPO
from tests.faults.conftest import FAST, assert_refused, fingerprint, invoke

SETS = [f"--set={s}" for s in FAST] + ["--no-progress"]


@pytest.mark.parametrize(
    "cmd",
    [["train", "--resume", "{R}", "--set", "train.kimg=2", "--no-progress"], ["evaluate", "{R}", "--n", "50"]],
    ids=["resume", "evaluate"],
)
def test_a_second_writer_is_refused_with_the_owner(run, cmd):
    with acquire(run, "ganforge train sine", log=lambda _: None):
        before = fingerprint(run.parent)
        message = assert_refused(invoke(*[a.replace("{R}", str(run)) for a in cmd]), before, run.parent)
    assert f"PID {os.getpid()}" in message and "being written by" in message
    assert not (run / LOCK_FILE).exists()  # released: the folder is as the run left it


def test_a_stale_lock_is_taken_over_with_a_message(run):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a PID that no longer runs
    (run / LOCK_FILE).write_text(
        json.dumps({"pid": dead.pid, "host": os.uname().nodename, "since": "earlier", "command": "ganforge train sine"})
    )
    outcome = invoke("train", "--resume", run, "--set", "train.kimg=1.5", "--no-progress")
    assert outcome.code == 0, outcome.stderr
    assert f"took over a stale lock on {run} left by PID {dead.pid}" in outcome.stdout
    assert not (run / LOCK_FILE).exists()


def test_lock_records_owner(tmp_path):
    with acquire(tmp_path, "ganforge generate x", log=lambda _: None):
        owner = read_owner(tmp_path)
        assert owner["pid"] == os.getpid() and owner["command"] == "ganforge generate x" and owner["host"]


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    return subprocess.Popen(
        [sys.executable, "-m", "ganforge", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_trainings_into_one_folder(tmp_path):
    out = tmp_path / "same"
    procs = [_start("train", "sine", "--out", str(out), *SETS) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    assert "Traceback" not in loser[2] and len([x for x in loser[2].splitlines() if x.startswith("error:")]) == 1
    assert "being written by" in loser[2] or "already exists" in loser[2]
    ticks = [json.loads(line)["tick"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert ticks == [1, 2]  # one writer's history, no duplicated ticks
    assert not (out / LOCK_FILE).exists()


def test_two_generates_into_one_folder(finished_run, tmp_path):
    out = tmp_path / "same"
    procs = [_start("generate", str(finished_run), "--n", "2000", "--out", str(out), "--seed", str(s)) for s in (1, 2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert sorted(r[0] for r in results) == [0, 2], results
    winner = next(r for r in results if r[0] == 0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "--seed" not in winner[1] and manifest["seed"] in (1, 2) and not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_sigkill_at_random_points_then_finish(tmp_path):
    """Kill a run four times at random moments (some before its first tick, some mid-write), continuing it
    each time the way the messages say; it must finish cleanly with one record per tick and no temp files."""
    out = tmp_path / "r"
    args = ["--set=train.kimg=3", "--set=train.tick_kimg=0.25", "--no-progress"]
    rng = random.Random(14)
    for _ in range(4):
        resumable = (out / "checkpoints" / "latest.pt").is_file()
        cmd = ["train", "--resume", str(out), *args] if resumable else ["train", "sine", "--out", str(out), *args]
        proc = _start(*cmd)
        time.sleep(rng.uniform(1.0, 4.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    resumable = (out / "checkpoints" / "latest.pt").is_file()
    cmd = ["train", "--resume", str(out), *args] if resumable else ["train", "sine", "--out", str(out), *args]
    proc = _start(*cmd)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images_seen"] >= 3000
    ticks = [
        json.loads(line)["tick"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"type"' not in line
    ]
    assert ticks == list(range(1, len(ticks) + 1))
    assert not list(Path(out).rglob("*.tmp")) and not (out / LOCK_FILE).exists()
