"""StyleGAN2's training details around the losses: lazy regularisation's optimizer correction (StyleGAN2,
Appendix B), the G EMA ramp-up (StyleGAN2-ADA), and families with networks of their own refusing ``model.arch``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.presets import config_from_layers
from ganforge.training.loop import build_training
from ganforge.training.setup import prepare
from ganforge.training.state import BatchSampler
from ganforge.training.stats import StatsAccumulator
from ganforge.training.step import EagerStep
from ganforge.variants import Objective, OptimizerSpec, Phase
from tests.conftest import run_cli

TINY = {
    "data": {"name": "mnist5k", "resolution": 8, "limit": 64},
    "model": {"z_dim": 8, "embed_dim": 4, "g_channels": 16, "d_channels": 16},
    "family": {"w_dim": 16, "mapping_layers": 2, "channel_base": 256},
    "train": {"kimg": 1, "batch_size": 8, "device": "cpu"},
}


def _config(variant: str = "stylegan2", **layer):
    top = {k: {**TINY.get(k, {}), **v} if isinstance(v, dict) else v for k, v in layer.items()}
    return config_from_layers([{**TINY, "variant": variant, **top}])


def _adam(cfg):
    setup = prepare(cfg)
    torch.manual_seed(0)
    t = build_training(cfg, setup.family, setup.train_set, torch.device("cpu"))
    return {name: (opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]) for name, opt in t.opts.items()}


def test_lazy_regularisation_scales_each_regularised_optimizers_lr_and_betas():
    cfg = _config(
        objective={"r1_gamma": 1.0, "r1_interval": 16},
        family={"pl_interval": 4},
        optim={"lr_g": 0.002, "lr_d": 0.003, "beta1": 0.5, "beta2": 0.99},
    )
    got = _adam(cfg)
    c_d, c_g = 16 / 17, 4 / 5  # c = k / (k + 1)
    assert got["D"][0] == pytest.approx(0.003 * c_d, rel=1e-12)
    assert got["D"][1] == pytest.approx((0.5**c_d, 0.99**c_d), rel=1e-12)
    assert got["G"][0] == pytest.approx(0.002 * c_g, rel=1e-12)
    assert got["G"][1] == pytest.approx((0.5**c_g, 0.99**c_g), rel=1e-12)
    # no regulariser, no extra optimizer steps: no correction
    plain = _adam(
        _config(
            objective={"r1_gamma": 0.0},
            family={"pl_weight": 0.0},
            optim={"lr_g": 0.002, "lr_d": 0.003, "beta1": 0.5, "beta2": 0.99},
        )
    )
    assert plain == {"G": (0.002, (0.5, 0.99)), "D": (0.003, (0.5, 0.99))}


def test_other_families_keep_the_configs_rates_with_lazy_r1():
    cfg = config_from_layers(
        [
            {
                "variant": "gan",
                "data": TINY["data"],
                "train": TINY["train"],
                "objective": {"r1_gamma": 1.0, "r1_interval": 4},
            }
        ]
    )
    got = _adam(cfg)
    assert got["D"] == (cfg.optim.lr_d, (cfg.optim.beta1, cfg.optim.beta2))


class _Nothing(Objective):
    phases = [Phase("G", "G")]

    def draw(self, phase, idx):
        return None

    def accumulate_gradients(self, phase, batch):
        return {}

    def grid(self, G):
        return torch.zeros(1), None


def _ema_step(ema_kimg: float, rampup: float, batch: int = 32):
    cfg = config_from_layers([{"train": {"kimg": 1, "batch_size": batch, "ema_kimg": ema_kimg, "ema_rampup": rampup}}])
    G = nn.Linear(2, 2)
    with torch.no_grad():
        G.weight.zero_(), G.bias.zero_()
    G_ema = copy.deepcopy(G)
    with torch.no_grad():
        G.weight.fill_(1.0), G.bias.fill_(1.0)  # G jumps from 0 to 1
    opt = torch.optim.SGD(G.parameters(), lr=0.0)
    step = EagerStep(
        cfg,
        _Nothing(),
        {"G": opt},
        {"G": OptimizerSpec(("G",), 0.0)},
        {"G": G},
        {"G": G_ema},
        BatchSampler(64, batch, torch.device("cpu"), seed=0),
        StatsAccumulator(),
        torch.device("cpu"),
    )
    return step, G_ema


def test_ema_rampup_caps_the_half_life_by_the_images_seen():
    step, G_ema = _ema_step(ema_kimg=10, rampup=0.05)
    assert step.ema_beta(0) == 0.0  # nothing seen yet: the average is G itself
    assert step.ema_beta(1000) == pytest.approx(0.5 ** (32 / 50))  # half-life 0.05 * 1000 images
    assert step.ema_beta(10**6) == pytest.approx(0.5 ** (32 / 10_000))  # the ramp passed ema_kimg: capped there
    step(0, 0)
    assert torch.equal(G_ema.weight, torch.ones(2, 2))  # beta 0: a copy of G
    # without the ramp-up, the same step moves G_ema by 1 - 0.5 ** (32 / 10000) only
    step, G_ema = _ema_step(ema_kimg=10, rampup=0.0)
    step(0, 0)
    assert G_ema.weight.mean().item() == pytest.approx(1 - 0.5 ** (32 / 10_000), rel=1e-5)
    # the ramp reads the images seen that the loop passes in, so a resumed run continues it exactly
    a, ema_a = _ema_step(ema_kimg=10, rampup=0.05)
    b, ema_b = _ema_step(ema_kimg=10, rampup=0.05)
    for i in range(5):
        a(i, 4000 + 32 * i)
    for i in range(5):
        b(i, 4000 + 32 * i)
    assert torch.equal(ema_a.weight, ema_b.weight) and 0 < ema_a.weight.mean().item() < 1


def test_stylegan2_family_turns_the_rampup_on_and_the_config_range_checks_it():
    assert _config().train.ema_rampup == 0.05
    assert config_from_layers([{"train": {"kimg": 1}}]).train.ema_rampup == 0.0  # other families: off
    with pytest.raises(ConfigError, match="ema_rampup"):
        config_from_layers([{"train": {"kimg": 1, "ema_rampup": 2}}])


@pytest.mark.parametrize("variant", ["stylegan2", "cprogan"])
def test_a_family_with_its_own_networks_refuses_model_arch(variant):
    family = TINY["family"] if variant == "stylegan2" else {"channel_base": 256}

    def config(**model):
        return config_from_layers([{**TINY, "variant": variant, "family": family, "model": {**TINY["model"], **model}}])

    with pytest.raises(ConfigError, match=f"variant {variant} builds its own networks and ignores model.arch=resnet"):
        prepare(config(arch="resnet"))
    prepare(config())  # the default arch passes


def test_translation_families_refuse_model_arch():
    cfg = config_from_layers(
        [
            {
                "variant": "pix2pix",
                "model": {"arch": "mlp"},
                "train": {"kimg": 1},
                "data": {"name": "brain-contrasts", "resolution": 32, "limit": 16},
            }
        ]
    )
    with pytest.raises(ConfigError, match="variant pix2pix builds its own networks"):
        prepare(cfg)


def test_cli_refuses_model_arch_for_stylegan2_with_exit_2(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "train", "brain-stylegan2-ada", "--out", str(out), "--set", "model.arch=resnet", "--set", "train.kimg=0.01"
    )
    assert result.returncode == 2, result.stderr
    assert "ignores model.arch=resnet" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
