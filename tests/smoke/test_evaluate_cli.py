"""`ganforge evaluate` end to end in subprocesses: train a tiny MNIST run, evaluate it, read the table."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_cli_in_process


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("evalcli") / "run"
    r = run_cli("train", "mnist-dcgan", "--set", "train.kimg=0.5", "--set", "data.limit=1000",
                "--set", "model.g_channels=32", "--set", "model.d_channels=16", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    return out


def test_evaluate_prints_a_table_and_writes_eval_json(cli, tiny_run):
    r = cli("evaluate", str(tiny_run), "--n", "500", "--metrics", "fid,kid", "--metric", "precision",
            "--metric", "memorization", "--n-boot", "5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.startswith("metric"))
    assert all(col in header for col in ("value", "95% CI", "real-vs-real", "protocol"))
    assert [line.split()[0] for line in lines if line.split() and line.split()[0] in
            ("fid", "kid", "precision", "memorization")] == ["fid", "kid", "precision", "memorization"]
    assert "test accuracy" in r.stdout and "memorization: not flagged" in r.stdout
    data = json.loads((tiny_run / "eval.json").read_text())
    fid = next(m for m in data["metrics"] if m["name"] == "fid")
    assert fid["value"] > fid["floor"] > 0 and fid["ci"]["low"] <= fid["value"] <= fid["ci"]["high"]
    assert fid["protocol"]["n_generated"] == 500 and fid["protocol_id"][:8] in r.stdout


def test_evaluate_user_errors_exit_2_with_the_fix(tiny_run, tmp_path):
    cli = run_cli_in_process  # refusals before any work: no subprocess (the demo below runs one)
    r = cli("evaluate", str(tiny_run), "--metrics", "fidd")
    assert r.returncode == 2 and "Did you mean 'fid'" in r.stderr and "Traceback" not in r.stderr
    r = cli("evaluate", str(tiny_run), "--metrics", "cas")
    assert r.returncode == 2 and "conditional" in r.stderr
    r = cli("evaluate", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = cli("evaluate", str(tiny_run), "--extractor", "inception", "--metrics", "fid")
    assert r.returncode == 2 and "ganforge weights fetch inception" in r.stderr, r.stderr


def test_demo_trains_evaluates_and_writes_the_report(cli, tmp_path):
    out = tmp_path / "demo"
    r = cli("demo", "--out", str(out), "--set", "train.kimg=0.3", "--set", "train.tick_kimg=0.1",
            "--set", "eval.n=300", "--no-progress")
    assert r.returncode == 0, r.stderr
    for name in ("samples.png", "losses.png", "eval.json", "report.html", "generator.safetensors"):
        assert (out / name).is_file(), name
    assert "done:" in r.stdout and "cas" in r.stdout and "report.html" in r.stdout
    evaluation = json.loads((out / "eval.json").read_text())
    names = [m["name"] for m in evaluation["metrics"]]
    assert {"fid", "cas", "memorization"} <= set(names)
    # mask metrics neither run nor clutter the "skipped" list on plain images
    assert "seg_dice" not in names and "seg_dice" not in evaluation["skipped"] and "seg_dice" not in r.stdout
    r = run_cli_in_process("demo", "--out", str(out), "--set", "train.kimgg=1")
    assert r.returncode == 2 and "Did you mean 'train.kimg'" in r.stderr


@pytest.mark.slow
def test_weights_fetch_then_evaluate_with_torchscript_networks(cli, tiny_run, tmp_path):
    """NVIDIA-interface stand-ins (tests/stand_ins.py): fetch from a file:// URL, then Inception, a user network
    and LPIPS through `ganforge evaluate`; KID printed x 10^3, file digests in the protocols."""
    from ganforge.training.checkpoint import sha256_file
    from tests.stand_ins import save_stand_in

    source = save_stand_in("inception", tmp_path / "published.pt")
    vgg = save_stand_in("vgg16", tmp_path / "vgg16.pt")
    r = cli("weights", "fetch", "inception", "--url", source.as_uri(), "--to", str(tmp_path / "weights"))
    digest = sha256_file(source)
    assert r.returncode == 0 and digest in r.stdout, r.stderr
    inception = tmp_path / "weights" / "inception-2015-12-05.pt"
    r = cli("weights", "fetch", "inception", "--url", source.as_uri(), "--to", str(tmp_path / "w2"), "--sha256",
            "ab" * 32)
    assert r.returncode == 2 and "nothing was kept" in r.stderr and not (tmp_path / "w2" / inception.name).exists()

    # (FID and KID on 2048-d features take minutes on one CPU thread: they run on the user network below.)
    r = cli("evaluate", str(tiny_run), "--n", "200", "--extractor", "inception", "--weights", str(inception),
            "--metrics", "precision,is,lpips", "--lpips-weights", str(vgg), "--n-boot", "0")
    assert r.returncode == 0, r.stderr
    assert "extractor inception:legacy_tensorflow" in r.stdout
    data = json.loads((tiny_run / "eval.json").read_text())
    by_name = {m["name"]: m for m in data["metrics"]}
    assert by_name["precision"]["protocol"]["extractor_file_sha256"] == digest
    assert by_name["precision"]["protocol"]["k"] == 5 and by_name["is"]["protocol"]["is_splits"] == 10
    lp = by_name["lpips"]
    assert lp["value"] > 0 and lp["floor"] > 0 and lp["protocol"]["lpips_net_sha256"] == sha256_file(vgg)

    user = tmp_path / "user-net.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2), torch.nn.Tanh(),
                                         torch.nn.Flatten())).save(str(user))
    r = cli("evaluate", str(tiny_run), "--n", "200", "--extractor", f"torchscript:{user}", "--metrics", "fid,kid",
            "--n-boot", "0")
    assert r.returncode == 0, r.stderr
    assert "kid ×10³" in r.stdout  # printed as papers print it; eval.json keeps the raw MMD^2
    fid, kid = json.loads((tiny_run / "eval.json").read_text())["metrics"]
    assert fid["protocol"]["extractor"] == "torchscript"
    assert fid["protocol"]["extractor_file_sha256"] == sha256_file(user)
    assert kid["display_scale"] == 1000 and f"{kid['value'] * 1000:.3g}"[:3] in r.stdout
    r = cli("evaluate", str(tiny_run), "--metrics", "lpips")
    assert r.returncode == 2 and "ganforge weights fetch vgg16" in r.stderr and "Traceback" not in r.stderr
