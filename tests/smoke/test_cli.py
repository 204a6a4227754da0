"""End-to-end CLI runs on CPU, and the bad-input paths: one clear line, exit code 2, nothing overwritten."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ganforge.training.export import load_generator
from tests.conftest import REPO, run_cli, run_cli_in_process

FAST = ["--set", "train.kimg=1", "--set", "train.tick_kimg=0.5", "--no-progress"]


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sine"
    result = run_cli("train", "sine", "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    return out, result


def test_train_writes_a_complete_run_directory(sine_run):
    out, result = sine_run
    for name in ("config.yaml", "metrics.jsonl", "samples.png", "losses.png", "summary.json", "log.txt",
                 "generator.safetensors", "generator.json", "checkpoints/latest.pt", "grids/tick-0002.png"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in records] == [1, 2]
    for key in ("loss_D", "loss_G", "D_real", "D_fake", "D_acc", "kimg", "time_s"):
        assert key in records[-1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images_seen"] == 1024  # whole batches: 32 steps of 32 reach 1 kimg
    from ganforge.training.checkpoint import sha256_file

    assert summary["generator_sha256"] == sha256_file(out / "generator.safetensors")
    assert "done:" in result.stdout and "samples.png" in result.stdout


def test_checkpoint_loads_without_pickled_code(sine_run):
    out, _ = sine_run
    ck = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert ck["images_seen"] == 1024 and ck["config"]["name"] == "sine" and "G" in ck and "opt_D" in ck


def test_generate_is_deterministic_and_loads_without_training_code(sine_run, tmp_path):
    out, _ = sine_run
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("generate", str(out), "--n", "50", "--out", str(a), "--seed", "7").returncode == 0
    assert run_cli("generate", str(out), "--n", "50", "--out", str(b), "--seed", "7").returncode == 0
    pa, pb = np.load(a / "samples.npz")["points"], np.load(b / "samples.npz")["points"]
    assert pa.shape == (50, 2) and np.array_equal(pa, pb)
    gen = load_generator(out)
    x, _ = gen.sample(50, seed=7, batch=7)  # batch size does not change the samples
    assert np.allclose(x.numpy(), pa, atol=1e-6)


def test_existing_run_directory_is_never_overwritten(sine_run):
    out, _ = sine_run
    before = (out / "generator.safetensors").read_bytes()
    result = run_cli("train", "sine", "--out", str(out), *FAST)
    assert result.returncode == 2
    assert "already exists" in result.stderr and "--resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert (out / "generator.safetensors").read_bytes() == before


def test_unknown_key_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    result = run_cli("train", "sine", "--out", str(out), "--set", "train.kimgs=1")
    assert result.returncode == 2
    assert "train.kimgs" in result.stderr and "Did you mean 'train.kimg'" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_missing_dataset_file_says_where_to_get_it(tmp_path):
    out = tmp_path / "never"
    result = run_cli("train", "pathmnist-dcgan", "--out", str(out), "--set", f"data.path={tmp_path}/nope.npz",
                     "--set", "train.kimg=1")
    assert result.returncode == 2 and "medmnist" in result.stderr.lower() and not out.exists()
    assert "Traceback" not in result.stderr


def test_resume_of_a_missing_directory(tmp_path):
    result = run_cli("train", "--resume", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_resume_rejects_changes_that_break_continuity(sine_run):
    out, _ = sine_run
    result = run_cli("train", "--resume", str(out), "--set", "objective.loss=hinge")
    assert result.returncode == 2 and "cannot change when resuming" in result.stderr


def test_resume_extends_training(sine_run, tmp_path):
    import shutil

    out, _ = sine_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    result = run_cli("train", "--resume", str(copy), "--set", "train.kimg=2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert json.loads((copy / "summary.json").read_text())["images_seen"] == 2016  # 63 whole batches of 32 reach 2 kimg


def test_dry_run_prints_resolved_config(tmp_path):
    result = run_cli("train", "parametric-curve-final", "--dry-run", "--set", "train.kimg=3")
    assert result.returncode == 0
    assert "z_dim: 3" in result.stdout and "kimg: 3.0" in result.stdout


def test_list_shows_registries():
    result = run_cli("list")
    assert result.returncode == 0
    for word in ("presets:", "variants:", "datasets:", "sine", "mnist-dcgan", "bce", "dcgan"):
        assert word in result.stdout
    bad = run_cli("list", "gizmos")
    assert bad.returncode == 2 and "choose one of" in bad.stderr


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["sweep", "--help"]])
def test_help_answers_without_importing_torch(args):
    """`ganforge --help` took 3-5 s when building the CLI imported the metrics package (and torch)."""
    code = (f"import sys\nfrom ganforge.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print('torch imported:', 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "Usage: " in out.stdout and "torch imported: False" in out.stdout, out.stdout + out.stderr


def test_lazily_read_baseline_choices_still_list_and_refuse(tmp_path):
    """--baseline's names are read when needed (above): --help still lists them, a wrong one is still refused."""
    from ganforge.metrics.baselines import BASELINES

    shown = run_cli_in_process("evaluate", "--help")
    assert shown.returncode == 0 and "[" + "|".join(BASELINES) + "]" in shown.stdout
    bad = run_cli_in_process("evaluate", str(tmp_path), "--baseline", "bogus")
    assert bad.returncode == 2 and "'bogus' is not one of 'untrained', 'replay'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_generate_from_a_non_run(tmp_path):
    result = run_cli("generate", str(tmp_path), "--n", "4", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no exported generator" in result.stderr
