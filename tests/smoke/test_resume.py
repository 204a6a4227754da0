"""Exact resume: straight to N kimg == SIGKILL part-way, then --resume to N kimg, bit for bit on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

ARGS = ["train", "sine", "--set", "train.kimg=6", "--set", "train.tick_kimg=1", "--set", "train.ema_kimg=0.5",
        "--set", "train.seed=3", "--no-progress"]


def _ticks(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("extra", [[], ["--set", "optim.lr_decay_start=0.2"]], ids=["constant-lr", "lr-decay"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, extra):
    """With optim.lr_decay_start the rates are a function of the images seen, so the resumed run stays on the line."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = [*ARGS, *extra]
    done = run_cli(*args, "--out", str(straight))
    assert done.returncode == 0, done.stderr

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", *args, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _ticks(killed) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; lengthen it"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((killed / "metrics.jsonl").read_text().splitlines()[-1])["kimg"]
    assert killed_at < 6

    resumed = run_cli("train", "--resume", str(killed), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout

    a = json.loads((straight / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    assert a["images_seen"] == b["images_seen"] == 6016  # 188 whole batches of 32
    assert a["generator_sha256"] == b["generator_sha256"]
    assert (straight / "generator.safetensors").read_bytes() == (killed / "generator.safetensors").read_bytes()
    # The metric history has one record per tick, none duplicated by the resume.
    kimgs = [json.loads(line)["kimg"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert kimgs == sorted(set(kimgs)) and len(kimgs) == 6
