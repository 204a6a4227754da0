"""Exact resume of the high-resolution families on CPU: ProGAN stopped in the middle of a fade-in and resumed past
the next stage change, and StyleGAN2 + ADA with p moving, continue bit for bit like an uninterrupted run. So does a
cGAN whose DiffAugment probability adapts (augment.diffaugment_target) while its top-k fraction falls."""

from __future__ import annotations

import json

import pytest
import torch

from ganforge.experiments.runner import resume_run, start_run
from ganforge.presets import config_from_layers

TINY = {
    "data": {"name": "mnist5k", "resolution": 8, "limit": 128},
    "model": {"z_dim": 8, "embed_dim": 4, "g_channels": 16, "d_channels": 16},
    "train": {"batch_size": 16, "tick_kimg": 0.032, "grid_size": 8, "device": "cpu", "ema_kimg": 0.05, "seed": 5},
}
FAMILY = {
    # 4x4 for 64 images, 8x8 fades in over the next 64 and then trains: the stop at 96 is mid-fade.
    "cprogan": {"start_res": 4, "stage_kimg": 0.064, "fade_kimg": 0.064, "channel_base": 256},
    # p may cross [0, 1] in 0.2 kimg, so it moves at every update (every 2 D steps of 16 images)
    "cstylegan2": {
        "w_dim": 16,
        "mapping_layers": 2,
        "channel_base": 256,
        "ada_kimg": 0.2,
        "ada_interval": 2,
        "pl_interval": 2,
    },
    "cgan": {},
}
EXTRA = {  # p starts at 0 and may cross [0, 1] in 0.2 kimg; a low target, so that it rises. Top-k training's
    # fraction falls from 1 by half per epoch of 128 images, so the resume lands where it is still moving.
    "cgan": {"augment": {"diffaugment": "translation,cutout", "diffaugment_target": 0.05, "diffaugment_kimg": 0.2},
             "objective": {"topk": 0.25, "topk_decay": 0.5}},
}


def _config(variant: str, kimg: float):
    return config_from_layers(
        [
            {
                **TINY,
                "name": f"resume-{variant}",
                "variant": variant,
                "family": FAMILY[variant],
                "train": {**TINY["train"], "kimg": kimg},
                **EXTRA.get(variant, {}),
            }
        ]
    )


def _records(run):
    """The per-tick records (a resume also logs what it changed)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "tick" in r]


@pytest.mark.slow  # four short runs: ~10 s each on a quiet 2-core machine
@pytest.mark.parametrize("variant", ["cprogan", "cstylegan2", "cgan"])
def test_resume_across_a_stage_change_is_bit_identical(variant, tmp_path):
    torch.set_num_threads(1)
    quiet = {"progress": False, "log": lambda _: None}
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    start_run(_config(variant, 0.224), str(straight), **quiet)
    start_run(_config(variant, 0.096), str(stopped), **quiet)
    resume_run(stopped, ["train.kimg=0.224"], **quiet)

    assert (straight / "generator.safetensors").read_bytes() == (stopped / "generator.safetensors").read_bytes()
    a = torch.load(straight / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(stopped / "checkpoints" / "latest.pt", weights_only=True)
    for net in ("G", "D", "G_ema"):
        for key, value in a[net].items():
            assert torch.equal(value, b[net][key]), (net, key)
    history = _records(straight)
    assert [r["kimg"] for r in _records(stopped)] == [r["kimg"] for r in history]
    if variant == "cgan":  # top-k's fraction (a tick's mean) fell across the stop, the same in both runs
        fractions = [r["topk"] for r in history]
        assert fractions == [r["topk"] for r in _records(stopped)]
        assert fractions[0] > 0.5 > fractions[-1]
    if variant == "cprogan":
        assert a["D"]["level"].item() == 1 and a["D"]["images_seen"].item() == 224
        assert history[1]["res"] == 4 and history[-1]["res"] == 8  # it grew from 4 to 8 px within the run
        assert 0 < history[2]["alpha"] < 1  # the stop (tick 3, 96 images) fell inside the fade-in
    else:
        state = "augment" if variant == "cstylegan2" else "diffaugment"
        assert torch.equal(a[state]["p"], b[state]["p"]) and a[state]["p"].item() > 0
        assert len({r["ada_p"] for r in history}) > 2  # p moved from tick to tick, and is logged per tick
