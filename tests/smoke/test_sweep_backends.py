"""Sweep backends on CPU: the same sweep through local processes, a Ray cluster (``ray.init(num_cpus=2)``) and
Slurm (the real submitit Slurm executor against stand-ins for sbatch/srun/sacct in tests/smoke/fake_slurm, which
record each batch script and run it here) gives the same table, number for number; a sweep stopped after its
runs' first tick continues from their checkpoints; wrong backend flags fail with one line and create nothing."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import pytest

from ganforge.errors import GanforgeError
from ganforge.experiments.backends import BackendOptions, check_ray, check_slurm, parse_time
from ganforge.experiments.sweep import load_sweep, run_sweep
from tests.conftest import run_cli, run_cli_in_process


def _final_state(path: Path, timeout: float = 30.0) -> str:
    """The fake job's state once it has left PENDING/RUNNING: submitit sees the job's result file a moment
    before the fake sbatch's background shell writes COMPLETED, as a real sacct can lag too."""
    deadline = time.monotonic() + timeout
    while True:
        state = path.read_text().strip()
        if state not in ("PENDING", "RUNNING") or time.monotonic() > deadline:
            return state
        time.sleep(0.1)

SWEEP = """
name: pair
base: sine
set: {train.kimg: 0.5, train.tick_kimg: 0.25}
seeds: [0, 1]
"""
FAKE_SLURM = Path(__file__).parent / "fake_slurm"


def _numbers(out: Path) -> list[dict[str, str]]:
    """table.csv without the column of run folders (which names the sweep folder)."""
    return [{k: v for k, v in row.items() if k != "runs"} for row in csv.DictReader(open(out / "table.csv"))]


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("backends") / "pair.yaml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def local_table(sweep_file) -> list[dict[str, str]]:
    out = sweep_file.parent / "local"
    result = run_cli("sweep", str(sweep_file), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _numbers(out)
    assert len(rows) == 1 and rows[0]["seeds"] == "0 1" and rows[0]["final_loss_D_n"] == "2"
    return rows


@pytest.mark.slow
def test_ray_backend_continues_a_stopped_sweep_and_gives_the_local_table(sweep_file, local_table):
    ray = pytest.importorskip("ray")  # in the dev extra, so CI has it; skipped only where it cannot install
    out = sweep_file.parent / "ray"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # First pass stops every run after its first tick (as a lost node or a cancelled sweep would, minus
        # the unfinished tick); the rerun must resume each from its checkpoint, not start over.
        first = run_sweep(
            load_sweep(sweep_file, ("train.kimg=0.25",)),
            out,
            backend="ray",
            options=BackendOptions(),
            log=lambda _: None,
        )
        assert [o.action for o in first.outcomes] == ["trained", "trained"] and not first.failed
        lines: list[str] = []
        second = run_sweep(load_sweep(sweep_file), out, backend="ray", options=BackendOptions(), log=lines.append)
    finally:
        ray.shutdown()
    assert [o.action for o in second.outcomes] == ["resumed", "resumed"] and not second.failed
    assert "backend ray, 1 CPU(s) per run" in lines[0] and "ray: 2 CPUs" in lines[1]
    assert _numbers(out) == local_table  # resumed on Ray == uninterrupted local, to the last digit


@pytest.mark.slow
def test_slurm_backend_submits_one_job_per_run_with_the_options_and_gives_the_local_table(
    sweep_file, local_table, tmp_path, monkeypatch
):
    pytest.importorskip("submitit")
    out = sweep_file.parent / "slurm"
    _with_fake_slurm(monkeypatch, tmp_path)
    result = run_cli(
        "sweep",
        str(sweep_file),
        "--out",
        str(out),
        "--backend",
        "slurm",
        "--partition",
        "gpu",
        "--time",
        "1:30:00",
        "--cpus-per-run",
        "1",
        "--slurm-arg",
        "account=proj42",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    scripts = sorted(tmp_path.glob("*.sh"))
    assert len(scripts) == 2  # one job per run
    for script in scripts:
        text = script.read_text()
        for line in ("--partition=gpu", "--time=90", "--cpus-per-task=1", "--account=proj42", "--nodes=1"):
            assert f"#SBATCH {line}\n" in text
    assert {_final_state(s.parent / f"{s.stem}.state") for s in scripts} == {"COMPLETED"}
    assert "slurm: submitted sine-seed0 as job" in result.stdout
    assert _numbers(out) == local_table


def test_slurm_refusal_is_one_line(sweep_file, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    _with_fake_slurm(monkeypatch, tmp_path, FAKE_SLURM_REFUSE="invalid partition specified: nope")
    result = run_cli(
        "sweep", str(sweep_file), "--out", str(tmp_path / "out"), "--backend", "slurm", "--partition", "nope"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Slurm refused the job for sine seed 0: sbatch: error: invalid partition specified: nope" in result.stderr


@pytest.mark.parametrize(
    "args, match",
    [
        (["--partition", "gpu"], "--partition applies to --backend slurm, not local"),
        (["--backend", "ray", "--time", "10"], "--time applies to --backend slurm, not ray"),
        (["--address", "auto"], "--address applies to --backend ray"),
        (["--backend", "ray", "--jobs", "2"], "--jobs is for local processes"),
        (["--backend", "slurm", "--time", "soon"], "is not a Slurm time"),
        (["--backend", "slurm", "--slurm-arg", "account"], "must be KEY=VALUE"),
        (["--backend", "slurm", "--gpus-per-run", "0.5"], "Slurm reserves whole GPUs"),
        (["--backend", "slurm"], "sbatch, srun, sacct not found on PATH"),  # this machine has no Slurm
        (["--backend", "ray", "--address", "auto"], "cannot reach the Ray cluster at 'auto'"),  # none running
    ],
)
def test_wrong_backend_flags_fail_in_one_line_before_anything_is_written(sweep_file, tmp_path, args, match):
    # in-process (no torch import per case), but the case that dials a Ray cluster runs as a user would: it must
    # not leave a Ray client in the test process
    run = run_cli if "auto" in args and "ray" in args else run_cli_in_process
    result = run("sweep", str(sweep_file), "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2 and match in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("90", 90),
        ("30:00", 30),
        ("30:01", 31),
        ("1:30:00", 90),
        ("2-00:00:00", 2880),
        ("1-12", 2160),
        ("0-1:05", 65),
    ],
)
def test_parse_time_reads_slurm_time_formats(text, minutes):
    assert parse_time(text) == minutes


def test_missing_engines_name_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(GanforgeError, match=r"pip install 'ganforge\[ray\]'"):
        check_ray(BackendOptions())
    with pytest.raises(GanforgeError, match=r"pip install 'ganforge\[slurm\]'"):
        check_slurm(BackendOptions())


def _with_fake_slurm(monkeypatch, folder: Path, **extra: str) -> None:
    monkeypatch.setenv("PATH", f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(folder))
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
