"""model.d_pack: PacGAN (Lin et al. 2018). D scores packs of d_pack samples stacked along the channel axis, all
real or all generated; the GAN family builds D for the packed channels and wraps it."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.data import Dataset
from ganforge.errors import ConfigError
from ganforge.models.layers import DOut, PackedDiscriminator
from ganforge.objectives.regularizers import gradient_penalty
from ganforge.presets import load_config
from ganforge.training.loop import build_training
from ganforge.training.state import seed_everything
from ganforge.variants import VARIANTS

N_DATA = 64


def tiny_digits() -> Dataset:
    gen = torch.Generator().manual_seed(1)
    return Dataset("tiny", torch.rand(N_DATA, 1, 28, 28, generator=gen) * 2 - 1, torch.arange(N_DATA) % 10,
                   num_classes=10, class_names=tuple(map(str, range(10))))


def trainer(overrides: list[str]):
    cfg = load_config("mnist-dcgan", ["variant=gan", "model.g_channels=16", "model.d_channels=8",
                                      "model.d_batchnorm=[false]", "train.batch_size=8", *overrides])
    seed_everything(cfg.train.seed)
    t = build_training(cfg, VARIANTS.get(cfg.variant), tiny_digits(), torch.device("cpu"), None)
    return cfg, t, t.make_step(cfg, torch.device("cpu"))


class Spread(nn.Module):
    """A D that scores a pack by how much its samples differ (channels 0 and 1), and records what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> DOut:
        self.seen.append(x)
        spread = (x[:, 0] - x[:, 1]).abs().flatten(1).sum(1)
        return DOut(spread, None, spread[:, None])


def test_a_pack_is_consecutive_samples_stacked_on_the_channels():
    x = torch.randn(6, 1, 3, 3)
    inner = Spread()
    out = PackedDiscriminator(inner, 2)(x)
    (seen,) = inner.seen
    assert seen.shape == (3, 2, 3, 3) and out.logits.shape == (3,)
    assert torch.equal(seen[1, 0], x[2, 0]) and torch.equal(seen[1, 1], x[3, 0])
    # look-alike samples make packs D can tell apart from varied ones, which one sample at a time could not
    alike = torch.randn(1, 1, 3, 3).repeat(6, 1, 1, 1)
    assert PackedDiscriminator(Spread(), 2)(alike).logits.abs().max() == 0 < out.logits.min()
    with pytest.raises(ConfigError, match="multiple of model.d_pack"):
        PackedDiscriminator(Spread(), 4)(x)


def test_the_family_builds_d_for_the_packed_channels():
    _, t, step = trainer(["model.d_pack=2", "model.d_mbstd=true", "objective.r1_gamma=1"])
    D = t.nets["D"]
    assert isinstance(D, PackedDiscriminator) and D.pack == 2
    inputs = sorted(m.in_channels for m in D.modules() if isinstance(m, nn.Conv2d))
    assert inputs[0] == 2  # the first conv takes two 1-channel digits per pack
    step(0, 0)
    assert all(torch.isfinite(p).all() for p in D.parameters())
    # the point data's MLP D: packs of 4 two-dimensional points are 8 inputs
    cfg = load_config("sine", ["model.d_pack=4"])
    points = Dataset("pts", torch.randn(64, 2), None, num_classes=0, class_names=())
    nets = VARIANTS.get(cfg.variant).build_networks(cfg, points)
    assert next(m for m in nets["D"].modules() if isinstance(m, nn.Linear)).in_features == 8
    assert nets["D"](torch.randn(8, 2)).logits.shape == (2,)


def test_the_d_step_is_the_packed_loss_by_hand():
    """One D step equals the non-saturating loss of the inner D on real and generated packs of 2."""
    cfg, t, step = trainer(["model.d_pack=2", "objective.reuse_fakes=false"])
    D0 = copy.deepcopy(t.nets["D"].inner)
    calls: list[torch.Tensor] = []
    t.nets["G"].register_forward_hook(lambda m, args, out: calls.append(out.detach().clone()))
    real_batches: list[torch.Tensor] = []
    original_next = t.sampler.next
    t.sampler.next = lambda: real_batches.append(original_next()) or real_batches[-1]  # type: ignore[method-assign]
    step(0, 0)
    fake, x = calls[0], t.objective.real_x[real_batches[0]]
    opt = torch.optim.Adam(D0.parameters(), lr=cfg.optim.lr_d, betas=(cfg.optim.beta1, cfg.optim.beta2))
    real_logits, fake_logits = D0(x.reshape(4, 2, 28, 28)).logits, D0(fake.reshape(4, 2, 28, 28)).logits
    (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()).backward()
    opt.step()
    for (name, a), b in zip(t.nets["D"].inner.state_dict().items(), D0.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_the_gradient_penalty_holds_each_packs_norm_at_one():
    """A linear critic of packs of 2, D(pack) = w . x1 + w . x2: each pack's gradient is (w, w), norm sqrt(2) |w|."""
    w = torch.randn(1, 4, 4)
    w = w / w.norm() * 0.5

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(len(x) // 2, 2, -1) * w.flatten()).sum((1, 2))

    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    gp = gradient_penalty(critic, real, fake, torch.rand(4).repeat_interleave(2), pack=2)
    assert gp.item() == pytest.approx((2**0.5 * 0.5 - 1) ** 2, abs=1e-5)
    per_sample = gradient_penalty(critic, real, fake, torch.rand(8))
    assert per_sample.item() == pytest.approx((0.5 - 1) ** 2, abs=1e-5)  # what the per-sample penalty would hold


def test_wgan_gp_trains_on_packs():
    cfg = load_config("mnist-wgan-gp", ["model.g_channels=16", "model.d_channels=8", "train.batch_size=8",
                                        "model.d_pack=2"])
    seed_everything(0)
    t = build_training(cfg, VARIANTS.get(cfg.variant), tiny_digits(), torch.device("cpu"), None)
    assert isinstance(t.nets["D"], PackedDiscriminator)
    t.make_step(cfg, torch.device("cpu"))(0, 0)
    assert all(torch.isfinite(p).all() for p in t.nets["D"].parameters())


@pytest.mark.parametrize(
    ("preset", "overrides", "match"),
    [
        ("mnist-dcgan", ["model.d_pack=0"], "model.d_pack must be >= 1"),
        ("mnist-dcgan", ["model.d_pack=3"], "multiple of model.d_pack=3"),
    ],
)
def test_bad_values_are_refused(preset, overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(preset, overrides)


@pytest.mark.parametrize(
    ("preset", "match"),
    [
        ("mnist-cgan", "PacGAN is for unconditional D"),  # D judges each digit with its label
        ("mnist-infogan", "PacGAN is for unconditional D"),  # Q reads each sample's code
        ("brain-stylegan2-ada", "does not score packs"),  # its own D
    ],
)
def test_variants_that_judge_each_sample_refuse_packs(preset, match):
    cfg = load_config(preset, ["model.d_pack=2"])
    size = 32 if preset.startswith("brain") else 28
    data = Dataset("tiny", torch.zeros(4, 1, size, size), torch.zeros(4, dtype=torch.long), num_classes=10,
                   class_names=tuple(map(str, range(10))))
    with pytest.raises(ConfigError, match=match):
        VARIANTS.get(cfg.variant).check(cfg, data)
