"""``optim.lr_decay_start``: both learning rates constant until that fraction of the run, then linear to 0 at its
end (SNGAN's and WGAN-GP's CIFAR scripts decay from the start; CycleGAN from half-way)."""

from __future__ import annotations

import json

import pytest
import torch

from ganforge.presets import load_config
from ganforge.training.recovery import lr_decay
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("start", "seen", "factor"),
    [(1.0, 900, 1.0), (0.5, 0, 1.0), (0.5, 500, 1.0), (0.5, 750, 0.5), (0.5, 1000, 0.0), (0.5, 1100, 0.0),
     (0.0, 0, 1.0), (0.0, 250, 0.75), (0.8, 900, 0.5)],
)
def test_factor_is_flat_then_linear_to_zero(start, seen, factor):
    cfg = load_config("sine", [f"optim.lr_decay_start={start}"])
    assert lr_decay(cfg, seen, 1000) == pytest.approx(factor)


def test_training_runs_at_the_decayed_rates(tmp_path):
    """The rates in the optimiser after the last step are the configured ones times the factor at that step's
    start, and each tick's record carries the factor; without the option the rates stay as configured."""
    for start in (0.3, 1.0):
        run = tmp_path / f"r{start}"
        done = run_cli("train", "sine", "--set", "train.kimg=2", "--set", "train.tick_kimg=0.5", "--set",
                       "optim.lr_g=2e-3", "--set", f"optim.lr_decay_start={start}", "--no-progress", "--out", str(run))
        assert done.returncode == 0, done.stderr
        cfg = load_config("sine", ["train.kimg=2", "optim.lr_g=2e-3", f"optim.lr_decay_start={start}"])
        summary = json.loads((run / "summary.json").read_text())
        seen, steps = summary["images_seen"], summary["steps"]
        shown = seen // steps  # real images per iteration
        ck = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
        lrs = {k: v["param_groups"][0]["lr"] for k, v in ck.items() if k.startswith("opt_")}
        factor = lr_decay(cfg, seen - shown, 2000)
        assert sorted(lrs.values()) == pytest.approx(sorted([1e-3 * factor, 2e-3 * factor]))
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        scales = [r.get("lr_scale") for r in records if r.get("type", "tick") == "tick"]
        if start < 1:
            assert 0 < factor < 0.05  # the last step ran near the end of the line
            assert scales[0] == 1.0 and scales[-1] == 0.0 and scales == sorted(scales, reverse=True)
        else:
            assert factor == 1.0 and scales == [None] * len(scales)
