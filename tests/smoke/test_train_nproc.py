"""``ganforge train --nproc N`` as a user runs it: torchrun starts N gloo processes on this CPU, one run folder
comes out (written by rank 0), the summary is printed once; mistakes fail in one line before any process starts."""

from __future__ import annotations

import json

import pytest

from ganforge.training.distributed import launch_command
from tests.conftest import run_cli, run_cli_in_process


@pytest.mark.slow
def test_train_with_two_processes_writes_one_run_and_resumes_with_one(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "sine",
        "--nproc",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "train.kimg=0.128",
        "--set",
        "train.tick_kimg=0.064",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("done: 0.1 kimg") == 1  # rank 0 alone reports
    assert "launching 2 processes" in result.stderr
    ticks = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [t["tick"] for t in ticks] == [1, 2]  # one record per tick, not one per rank
    assert json.loads((out / "summary.json").read_text())["images_seen"] == 128
    result = run_cli("train", "--resume", str(out), "--set", "train.kimg=0.192", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "written by 2 process(es) with 1" in result.stderr  # allowed, with a warning
    assert json.loads((out / "summary.json").read_text())["images_seen"] == 192


@pytest.mark.parametrize(
    "args, match",
    [
        (["train", "sine", "--nproc", "3"], "train.batch_size=32 cannot be split over 3 processes"),
        (["train", "sinee", "--nproc", "2"], "Did you mean 'sine'"),
    ],
)
def test_nproc_mistakes_fail_in_one_line_before_launching(tmp_path, args, match):
    result = run_cli_in_process(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and match in result.stderr and "Traceback" not in result.stderr
    assert "launching" not in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_generate_and_evaluate_with_two_processes_write_once(tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "sine", "--out", str(run), "--no-progress", "--set", "train.kimg=0.064")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_cli("generate", str(run), "--nproc", "2", "--n", "9", "--out", str(tmp_path / "synth"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "launching 2 processes" in result.stderr and result.stdout.count("wrote 9") == 1
    assert json.loads((tmp_path / "synth" / "manifest.json").read_text())["n"] == 9
    result = run_cli("evaluate", str(run), "--nproc", "2", "--n", "64", "--metrics", "energy", "--n-boot", "0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("energy") == 1  # the table is printed by rank 0 alone
    assert json.loads((run / "eval.json").read_text())["n_generated"] == 64


@pytest.mark.parametrize(
    "args, match",
    [
        (["generate", "no-such-run", "--nproc", "2", "--out", "x"], "has no exported generator"),
        (["evaluate", "no-such-run", "--nproc", "2"], "has no exported generator"),
    ],
)
def test_generate_and_evaluate_mistakes_fail_in_one_line_before_launching(tmp_path, args, match):
    result = run_cli_in_process(*args, cwd=tmp_path)
    assert result.returncode == 2 and match in result.stderr and "Traceback" not in result.stderr
    assert "launching" not in result.stderr


def test_launch_command_drops_nproc_and_keeps_everything_else():
    cmd = launch_command(4, ["train", "mnist-dcgan", "--nproc", "4", "--set", "train.kimg=1", "--nproc=4"])
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m"]
    assert cmd[6:] == ["--", "ganforge", "train", "mnist-dcgan", "--set", "train.kimg=1"]
