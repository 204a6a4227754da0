"""StyleGAN2 + ADA from the command line's point of view: ADA's p in metrics.jsonl and in the report, and
``ganforge generate --truncation-psi`` (recorded in the manifest, refused where it cannot apply)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganforge.experiments.runner import start_run
from ganforge.presets import config_from_layers
from ganforge.reporting.html import run_report
from tests.conftest import run_cli, run_cli_in_process

QUIET = {"progress": False, "log": lambda _: None}
TINY = {
    "data": {"name": "mnist5k", "resolution": 8, "limit": 128},
    "model": {"z_dim": 8, "embed_dim": 4, "g_channels": 16, "d_channels": 16},
    "train": {"kimg": 0.096, "batch_size": 16, "tick_kimg": 0.032, "grid_size": 8, "device": "cpu"},
}


pytestmark = pytest.mark.slow  # a short run and four `ganforge generate` processes


@pytest.fixture(scope="module")
def sg2_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("sg2") / "run"
    family = {"w_dim": 16, "mapping_layers": 2, "channel_base": 256, "ada_kimg": 0.1, "ada_interval": 1, "ada_p": 0.5}
    cfg = config_from_layers([{**TINY, "variant": "stylegan2", "family": family}])
    start_run(cfg, str(out), **QUIET)
    return out


def test_ada_p_is_logged_per_tick_and_shown_in_the_report(sg2_run):
    records = [json.loads(line) for line in (sg2_run / "metrics.jsonl").read_text().splitlines()]
    ticks = [r for r in records if "tick" in r]
    assert len(ticks) == 3 and all(0 <= r["ada_p"] <= 1 and -1 <= r["ada_rt"] <= 1 for r in ticks)
    assert len({r["ada_p"] for r in ticks}) == 3  # p moved from its start (0.5) after every D step
    assert "ADA: augmentation probability p per tick" in run_report(sg2_run)
    assert "p 0." in (sg2_run / "log.txt").read_text()  # and in the log line


def test_generate_with_truncation_records_psi_and_pulls_to_the_mean(sg2_run, tmp_path):
    out = tmp_path / "psi0"
    result = run_cli(
        "generate", str(sg2_run), "--n", "6", "--out", str(out), "--truncation-psi", "0", "--format", "npz"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["truncation"] == {"psi": 0.0}
    images = np.load(out / "samples.npz")["images"].astype(np.float64)
    plain = tmp_path / "plain"
    assert run_cli("generate", str(sg2_run), "--n", "6", "--out", str(plain), "--format", "npz").returncode == 0
    manifest = json.loads((plain / "manifest.json").read_text())
    assert manifest["truncation"] is None and "per sample" in manifest["noise_inputs"]
    varied = np.load(plain / "samples.npz")["images"].astype(np.float64)
    assert len({varied[i].tobytes() for i in range(6)}) == 6
    # psi 0: every latent maps to w_avg, so the images differ only by their own noise maps (StyleGAN2's stochastic
    # detail), far less than samples of different latents do
    assert images.std(0).mean() < 0.5 * varied.std(0).mean()


def test_truncation_is_refused_where_it_cannot_apply(sg2_run, tmp_path):
    bad = run_cli_in_process("generate", str(sg2_run), "--n", "2", "--out", str(tmp_path / "a"),
                             "--truncation-psi", "1.5")
    assert bad.returncode == 2 and "--truncation-psi" in bad.stderr and "Traceback" not in bad.stderr
    dcgan = tmp_path / "dcgan"
    start_run(
        config_from_layers([{**TINY, "variant": "gan", "train": {**TINY["train"], "kimg": 0.032}}]), str(dcgan), **QUIET
    )
    refused = run_cli_in_process("generate", str(dcgan), "--n", "2", "--out", str(tmp_path / "b"),
                                 "--truncation-psi", "0.5")
    assert refused.returncode == 2 and "mapping network" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "b").exists()  # refused before anything was written


def test_diffaugments_adaptive_p_is_refused_beside_ada(tmp_path):
    out = tmp_path / "run"
    refused = run_cli("train", "brain-stylegan2-ada", "--set", "augment.diffaugment=cutout",
                      "--set", "augment.diffaugment_target=0.6", "--out", str(out))
    assert refused.returncode == 2 and "family.ada" in refused.stderr and "Traceback" not in refused.stderr
    assert not out.exists()
