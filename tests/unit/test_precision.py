"""train.amp: which autocast a run gets on which device, and that bf16 on a CPU trains like fp32."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from benchmarks.train_speed import build_trainer, synthetic_images
from ganforge.errors import ConfigError
from ganforge.models import build_models
from ganforge.presets import load_config
from ganforge.training import precision
from ganforge.training.precision import autocast_for, resolve_amp
from ganforge.variants import VARIANTS
from tests.numerics.test_fast_path import _ganforge_losses

CPU = torch.device("cpu")


@pytest.fixture(params=[True, False], ids=["cpu-has-bf16", "cpu-lacks-bf16"])
def native(request, monkeypatch):
    monkeypatch.setattr(precision, "cpu_runs_bf16_natively", lambda: request.param)
    return request.param


def test_off_is_fp32_everywhere(native):
    assert resolve_amp("off", CPU) is None


def test_auto_is_bf16_exactly_where_the_cpu_runs_it_natively(native):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns: it is the demo's default on every laptop
        assert resolve_amp("auto", CPU) == (torch.bfloat16 if native else None)


def test_bf16_on_a_cpu_without_it_warns_once_and_trains_in_fp32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_runs_bf16_natively", lambda: False)
    with pytest.warns(RuntimeWarning, match="no native bfloat16.*train.amp=auto"):
        assert resolve_amp("bf16", CPU) is None


def test_autocast_runs_convolutions_in_bf16_only_when_resolved(native):
    conv = torch.nn.Conv2d(1, 4, 3)
    x = torch.randn(2, 1, 8, 8)
    with autocast_for("auto", CPU):
        y = conv(x)
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    with autocast_for("off", CPU):
        assert conv(x).dtype == torch.float32


def test_unknown_amp_value_is_a_config_error():
    with pytest.raises(ConfigError, match="train.amp.*off, bf16, auto"):
        load_config("demo", ["train.amp=fp16"])


def test_bf16_step_on_cpu_follows_the_fp32_step(monkeypatch):
    """The demo's conditional DCGAN, 12 steps from the same weights and seed: bf16 losses track fp32's.

    bf16 keeps ~3 significant digits, so the losses differ by ~1e-2 relative, not 1e-5; a broken cast
    (e.g. bf16 weights, or BN statistics in bf16) or a different data / latent order moves them far more.
    """
    monkeypatch.setattr(precision, "cpu_runs_bf16_natively", lambda: True)  # emulated where not native: slow, exact
    shape, k, n = (1, 28, 28), 10, 320
    base = ["train.batch_size=32", "train.seed=3", "train.device=cpu", "train.ema_kimg=0.5"]
    cfg32, cfg16 = load_config("demo", base + ["train.amp=off"]), load_config("demo", base + ["train.amp=auto"])
    x = synthetic_images(n, shape, seed=1)
    y = torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(123)
    models = build_models(cfg32.model, shape, k, VARIANTS.get(cfg32.variant).conditioning)
    runs = []
    for cfg in (cfg32, cfg16):
        trainer = build_trainer(cfg, x, y, k, CPU, copy.deepcopy(models))
        runs.append((_ganforge_losses(trainer, 12), trainer))
    (ref, t32), (got, t16) = runs
    assert torch.isfinite(got).all() and ref.std(0).min() > 0
    assert not torch.equal(got, ref)  # bf16 really ran (fp32 would match bit for bit)
    rel = ((got - ref).abs() / ref.abs()).max().item()
    print(f"bf16 vs fp32 max relative loss difference: {rel:.4f}")
    assert rel < 0.03, f"bf16 losses drift {rel:.3f} relative from fp32"
    # Weights and the EMA stay fp32 (autocast casts inside the ops only).
    assert all(p.dtype == torch.float32 for p in [*t16.G.parameters(), *t16.D.parameters(), *t16.G_ema.parameters()])


def test_amp_off_from_the_command_line_is_the_string_off():
    # YAML 1.1 reads a bare `off` as False; the config maps it back for choices that include "off".
    assert load_config("demo", ["train.amp=off"]).train.amp == "off"
    assert load_config("demo", ["train.amp=auto"]).train.amp == "auto"
