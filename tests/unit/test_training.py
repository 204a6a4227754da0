"""Training-loop behaviour that needs no subprocess: divergence handling, sampler, stats, EMA."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.errors import TrainingDiverged
from ganforge.experiments.runner import start_run
from ganforge.presets import load_config
from ganforge.training.checkpoint import load_checkpoint
from ganforge.training.state import BatchSampler
from ganforge.training.stats import StatsAccumulator
from ganforge.variants.gan import GANObjective


def test_nan_losses_stop_training_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = load_config("sine", ["train.kimg=3", "train.tick_kimg=0.5"])
    original = GANObjective.accumulate_gradients
    calls = {"n": 0}

    def poisoned(self, phase, *args):
        stats = original(self, phase, *args)
        calls["n"] += 1
        if calls["n"] > 80:  # after about 1.2 kimg: NaN from then on
            stats = {k: v * float("nan") for k, v in stats.items()}
        return stats

    monkeypatch.setattr(GANObjective, "accumulate_gradients", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="NaN or infinite.*last good checkpoint"):
        start_run(cfg, str(out), progress=False, log=lambda s: None)
    ck = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert ck["images_seen"] == 1024  # tick 2 (1 kimg) was the last finite one
    assert all(torch.isfinite(v).all() for v in ck["G"].values() if v.is_floating_point())


def test_sampler_is_a_permutation_per_epoch_and_resumes_exactly():
    s = BatchSampler(10, 4, torch.device("cpu"), seed=1)
    first = [s.next() for _ in range(2)]
    assert len(set(torch.cat(first).tolist())) == 8  # no repeats inside an epoch
    state = s.state_dict()
    rest = [s.next() for _ in range(5)]
    t = BatchSampler(10, 4, torch.device("cpu"), seed=1)
    t.load_state_dict(state)
    assert all(torch.equal(a, t.next()) for a in rest)


def test_sampler_batch_larger_than_dataset():
    s = BatchSampler(3, 7, torch.device("cpu"), seed=0)
    idx = s.next()
    assert len(idx) == 7 and set(idx.tolist()) == {0, 1, 2}


def test_stats_accumulator_means():
    acc = StatsAccumulator()
    acc.add({"a": torch.tensor(1.0), "b": torch.tensor(4.0)})
    acc.add({"a": torch.tensor(3.0)})
    out = acc.read_and_reset()
    assert out == {"a": 2.0, "b": 4.0}
    assert acc.read_and_reset() == {}


def test_ema_generator_is_exported_and_differs_from_raw(tmp_path):
    cfg = load_config("sine", ["train.kimg=1", "train.ema_kimg=0.5"])
    result = start_run(cfg, str(tmp_path / "ema"), progress=False, log=lambda s: None)
    ck = load_checkpoint(tmp_path / "ema" / "checkpoints" / "latest.pt")
    raw, ema = ck["G"], ck["G_ema"]
    diffs = [(raw[k] - ema[k]).abs().max().item() for k in raw if raw[k].is_floating_point()]
    assert max(diffs) > 0 and result.summary["ema"] is True
    assert math.isfinite(result.summary["final"]["loss_G"])


def test_atomic_writes_replace_whole_files_with_normal_permissions(tmp_path):
    import os
    import stat

    from ganforge.training.checkpoint import atomic_write_bytes, atomic_write_text

    path = tmp_path / "report.html"
    atomic_write_text(path, "old")
    mask = os.umask(0o022)
    try:
        atomic_write_text(path, "new")
    finally:
        os.umask(mask)
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o644

    def crash(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, crash)
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.html"]
