"""The image-to-image families and their pieces: losses on hand-computed values, the history pool, the translation
metrics' math, the checks that refuse data a family cannot use, and exact resume with the pool in D's buffers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.experiments.runner import resume_run, start_run
from ganforge.metrics.translation import histogram_match, mae_per_image, psnr_per_image, ssim_per_image
from ganforge.models.translation import PatchDiscriminator, ResnetGenerator, Translator, UNetGenerator
from ganforge.objectives.history import ImagePool
from ganforge.presets import config_from_layers
from ganforge.variants import VARIANTS
from ganforge.variants.base import Phase
from ganforge.variants.cyclegan import CycleGANObjective, CycleGANOptions
from ganforge.variants.pix2pix import Pix2PixObjective, Pix2PixOptions
from ganforge.variants.two_domain import PairBatch


def scale_conv(factor: float, channels: int = 1) -> nn.Conv2d:
    """A 1x1 conv that multiplies its input by ``factor`` (0: a D that scores every patch 0)."""
    conv = nn.Conv2d(channels, channels, 1)
    with torch.no_grad():
        conv.weight.copy_(factor * torch.eye(channels).view(channels, channels, 1, 1))
        conv.bias.zero_()
    return conv


def two_domain(n: int = 4, paired: bool = True) -> Dataset:
    x = torch.full((n, 1, 8, 8), 0.25)
    return Dataset("toy", x, x_b=torch.full((n, 1, 8, 8), 0.25 if paired else -0.25), paired=paired)


def config(variant: str, **family):
    return config_from_layers([{"variant": variant, "family": family, "train": {"kimg": 1, "batch_size": 4}}])


def test_cyclegan_losses_on_hand_computed_values():
    """G doubles, D scores 0: a = b = 0.25. adv: 2 x 2 x 0.5 (0 - 1)^2 = 2 (the paper's (D - 1)^2 per domain);
    cycle: |G(G(a)) - a| = 0.75 per domain -> 10 x 1.5 = 15; identity: |G(a) - a| = 0.25 per domain -> 5 x 0.5
    = 2.5. D: LSGAN 1/2 (0 - 1)^2 + 1/2 0^2 = 0.5 per domain."""
    data = two_domain()
    G = Translator(scale_conv(2.0), scale_conv(2.0))
    D = nn.Module()
    D.D_A, D.D_B = scale_conv(0.0), scale_conv(0.0)
    D.pool_A, D.pool_B = ImagePool(2, (1, 8, 8)), ImagePool(2, (1, 8, 8))
    cfg = config("cyclegan")
    obj = CycleGANObjective(cfg, CycleGANOptions(), G, D, data, data.x)
    batch = PairBatch(data.x, data.x_b)
    stats = obj.accumulate_gradients(Phase("G", "G"), batch)
    assert stats["adv_G"].item() == pytest.approx(2.0)
    assert stats["cycle"].item() == pytest.approx(1.5)
    assert stats["identity"].item() == pytest.approx(0.5)
    assert stats["loss_G"].item() == pytest.approx(2.0 + 15.0 + 2.5)
    stats = obj.accumulate_gradients(Phase("D", "D"), batch)
    assert stats["loss_D"].item() == pytest.approx(1.0)
    assert int(D.pool_A.count) == 2  # the fakes went through the pools


def test_cyclegan_drops_identity_when_channels_differ():
    data = Dataset("toy", torch.zeros(2, 1, 8, 8), x_b=torch.zeros(2, 3, 8, 8))
    G = Translator(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 1, 1))
    D = nn.Module()
    D.D_A, D.D_B = nn.Conv2d(1, 1, 1), nn.Conv2d(3, 1, 1)
    obj = CycleGANObjective(config("cyclegan"), CycleGANOptions(), G, D, data, data.x)
    assert obj.identity == 0.0
    assert "identity" not in obj.accumulate_gradients(Phase("G", "G"), PairBatch(data.x, data.x_b))


def test_pix2pix_losses_on_hand_computed_values():
    """G is the identity, D scores 0, a = 0.25 and b = -0.25: G: softplus(0) = log 2 plus 100 x |a - b| = 50;
    D: 1/2 (softplus(0) + softplus(0)) = log 2 (halved, as the paper)."""
    x = torch.full((4, 1, 8, 8), 0.25)
    data = Dataset("toy", x, x_b=-x, paired=True)
    obj = Pix2PixObjective(
        config("pix2pix"), Pix2PixOptions(), Translator(scale_conv(1.0)), scale_conv(0.0, 2), data, data.x
    )
    batch = obj.draw(Phase("G", "G"), torch.arange(4))
    assert torch.equal(batch.real_b, -batch.real_a)  # paired rows
    stats = obj.accumulate_gradients(Phase("G", "G"), batch)
    assert stats["L1"].item() == pytest.approx(0.5)
    assert stats["loss_G"].item() == pytest.approx(math.log(2) + 50.0)
    assert obj.accumulate_gradients(Phase("D", "D"), batch)["loss_D"].item() == pytest.approx(math.log(2))


def test_translation_families_refuse_data_they_cannot_use():
    pix2pix, cyclegan = VARIANTS.get("pix2pix"), VARIANTS.get("cyclegan")
    unpaired = Dataset("folders", torch.zeros(4, 1, 32, 32), x_b=torch.zeros(5, 1, 32, 32), paired=False)
    with pytest.raises(ConfigError, match="needs paired data.*variant=cyclegan"):
        pix2pix.check(config("pix2pix"), unpaired)
    cyclegan.check(config("cyclegan"), unpaired)  # unpaired is what CycleGAN is for
    one_domain = Dataset("mnist5k", torch.zeros(4, 1, 32, 32))
    for family in (pix2pix, cyclegan):
        with pytest.raises(ConfigError, match="two domains"):
            family.check(config(family.name), one_domain)
    with pytest.raises(ConfigError, match="eval.every_ticks=0"):
        cyclegan.check(
            config_from_layers([{"variant": "cyclegan", "train": {"kimg": 1}, "eval": {"every_ticks": 2}}]), unpaired
        )
    with pytest.raises(ConfigError, match="family.pool_size"):
        config("cyclegan", pool_size=-1)
    with pytest.raises(ConfigError, match="family.cycle_weight"):
        config("pix2pix", cycle_weight=10.0)  # another family's option: the strict section names the valid ones


def test_image_pool_returns_new_or_stored_images_and_keeps_them():
    torch.manual_seed(0)
    pool = ImagePool(3, (1, 2, 2))
    first = torch.arange(2).float().view(2, 1, 1, 1).expand(2, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 2  # filling: returned as they are
    seen = {0.0, 1.0}
    for step in range(2, 12):
        new = torch.full((2, 1, 2, 2), float(step))
        before = {float(v) for v in pool.images[: int(pool.count), 0, 0, 0]}
        out = pool.query(new)
        after = {float(v) for v in pool.images[: int(pool.count), 0, 0, 0]}
        for v in out[:, 0, 0, 0].tolist():
            assert v == step or v in before  # the new image or an older one
        assert after <= before | {float(step)} and int(pool.count) == 3
        seen |= {float(v) for v in out[:, 0, 0, 0]}
    assert any(v < 10 for v in seen - {0.0, 1.0})  # older images do come back
    assert torch.equal(ImagePool(0, (1, 2, 2)).query(first), first)  # size 0: no history


def test_translation_metrics_on_known_values():
    x = torch.zeros(3, 1, 16, 16)
    y = x + 0.2  # 0.1 on the [0, 1] scale
    np.testing.assert_allclose(mae_per_image(x, y), 0.1, rtol=1e-6)
    np.testing.assert_allclose(psnr_per_image(x, y), 20.0, rtol=1e-5)  # 10 log10(1 / 0.01)
    img = torch.rand(2, 3, 16, 16) * 2 - 1
    np.testing.assert_allclose(ssim_per_image(img, img), 1.0, rtol=1e-5)
    assert (ssim_per_image(img, -img) < 0.5).all()


def test_histogram_matching_takes_the_reference_distribution_and_keeps_the_order():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 16, generator=gen) * 0.2  # dark, narrow
    ref = torch.randn(50, 1, 16, 16, generator=gen).clamp(-3, 3) * 0.3  # wide
    out = histogram_match(x, ref)
    assert torch.equal(out[0].flatten().argsort(), x[0].flatten().argsort())  # a monotone map of each image
    q = torch.tensor([0.1, 0.5, 0.9])
    np.testing.assert_allclose(torch.quantile(out[0].flatten(), q), torch.quantile(ref.flatten(), q), atol=0.05)


@pytest.mark.parametrize("side", [16, 32, 64])
def test_translation_networks_keep_the_size(side):
    x = torch.zeros(2, 1, side, side)
    assert UNetGenerator(1, 3, 8, depth=max(2, side.bit_length() - 2))(x).shape == (2, 3, side, side)
    assert ResnetGenerator(1, 3, 8, n_blocks=1)(x).shape == (2, 3, side, side)
    patches = PatchDiscriminator(1, 8, n_layers=2)(x)
    assert patches.shape[:2] == (2, 1) and patches.shape[-1] > 1  # a grid of patch scores


@pytest.mark.slow
def test_cyclegan_resume_is_bit_identical(tmp_path):
    """The history pools live in D's buffers and the G step's fakes only within an iteration: a run resumed after
    its first tick ends with the same generator as one run straight through (it fails when the pool is left out of
    the checkpoint)."""
    torch.set_num_threads(1)
    layers = [
        {
            "variant": "cyclegan",
            "data": {"name": "mnist-styles", "domains": ["mnist", "inverted"], "resolution": 16, "limit": 64},
            "model": {"g_channels": 4, "d_channels": 4},
            "family": {"pool_size": 3, "n_blocks": 1},
            "train": {"kimg": 0.064, "tick_kimg": 0.032, "batch_size": 4, "grid_size": 3, "device": "cpu"},
        }
    ]
    straight = start_run(config_from_layers(layers), out=str(tmp_path / "a"), progress=False, log=lambda _: None)
    short = config_from_layers(layers + [{"train": {"kimg": 0.032}}])
    start_run(short, out=str(tmp_path / "b"), progress=False, log=lambda _: None)
    resumed = resume_run(tmp_path / "b", ["train.kimg=0.064"], progress=False, log=lambda _: None)
    assert resumed.summary["images_seen"] == straight.summary["images_seen"]
    assert resumed.summary["generator_sha256"] == straight.summary["generator_sha256"]
