"""ProGAN: the fade-in schedule, what fading means for G and D, and the pieces of section 4."""

from __future__ import annotations

import pytest
import torch

from ganforge.models.conditioning import Conditioning
from ganforge.models.progan import ProGANArch, ProGANDiscriminator, ProGANGenerator, fade_images
from ganforge.variants.progan import progan_schedule

ARCH = ProGANArch(z_dim=8, g_channel_max=16, d_channel_max=16, channel_base=256, embed_dim=4)


@pytest.mark.parametrize(
    ("kimg", "expected"),
    [
        (0.0, (0, 1.0)),
        (9.9, (0, 1.0)),  # the first level trains for stage_kimg = 10
        (10.0, (1, 0.0)),
        (12.5, (1, 0.5)),
        (15.0, (1, 1.0)),
        (24.9, (1, 1.0)),  # 8 px fades in over 5, trains 10
        (25.0, (2, 0.0)),
        (26.0, (2, 0.2)),
        (40.0, (3, 0.0)),  # 16 px, then 32 px
        (55.0, (3, 1.0)),
        (1000.0, (3, 1.0)),  # the last level (32 px here) stays
    ],
)
def test_fade_in_alpha_schedule(kimg, expected):
    level, alpha = progan_schedule(kimg, first=0, levels=3, stage_kimg=10, fade_kimg=5)
    assert (level, pytest.approx(alpha)) == expected


def test_schedule_from_a_later_start_and_without_fading():
    assert progan_schedule(0, first=2, levels=4, stage_kimg=1, fade_kimg=1) == (2, 1.0)
    assert progan_schedule(1.5, first=2, levels=4, stage_kimg=1, fade_kimg=1) == (3, 0.5)
    assert progan_schedule(1.0, first=1, levels=3, stage_kimg=1, fade_kimg=0) == (2, 1.0)
    assert progan_schedule(5, first=3, levels=3, stage_kimg=1, fade_kimg=1) == (3, 1.0)


def _nets(res=32, channels=2):
    torch.manual_seed(0)
    cond = Conditioning.named("concat", "projection")
    shape = (channels, res, res)
    return ProGANGenerator(ARCH, shape, 3, cond).eval(), ProGANDiscriminator(ARCH, shape, 3, cond).eval()


def test_every_stage_makes_full_size_images_at_its_own_resolution():
    G, D = _nets()
    z, c = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    for level in range(4):
        G.set_stage(level, 1.0)
        D.set_stage(level, 1.0)
        x = G(z, c)
        assert x.shape == (4, 2, 32, 32)
        r = 4 * 2**level
        blocks = x.unfold(2, 32 // r, 32 // r).unfold(3, 32 // r, 32 // r)  # [N, C, r, r, k, k]
        assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))  # constant k x k blocks: r x r content
        assert D(x, c).logits.shape == (4,)


def test_a_new_level_at_alpha_zero_reproduces_the_level_below():
    """Fading in starts exactly where the previous stage ended (section 2: no shock to the trained layers)."""
    G, D = _nets()
    z, c = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    x = torch.randn(4, 2, 32, 32)
    G.set_stage(1, 1.0)
    D.set_stage(1, 1.0)
    before_img, before_logits = G(z, c), D(x, c).logits
    G.set_stage(2, 0.0)
    D.set_stage(2, 0.0)
    assert torch.allclose(G(z, c), before_img, atol=1e-6)
    assert torch.allclose(D(x, c).logits, before_logits, atol=1e-5)
    G.set_stage(2, 0.5)  # half way: the average of the two paths
    G.set_stage(2, 1.0)
    full = G(z, c)
    G.set_stage(2, 0.5)
    assert torch.allclose(G(z, c), (before_img + full) / 2, atol=1e-5)


def test_real_images_are_faded_like_the_generators_output():
    x = torch.randn(2, 1, 16, 16)
    low8 = fade_images(x, level=1, alpha=1.0)  # 8x8 content
    low4 = fade_images(x, level=0, alpha=1.0)  # 4x4 content
    assert torch.allclose(fade_images(x, level=1, alpha=0.25), 0.75 * low4 + 0.25 * low8, atol=1e-6)
    assert torch.equal(fade_images(x, level=2, alpha=1.0), x)  # full resolution: untouched


def test_unused_levels_get_no_gradient():
    G, D = _nets()
    G.train(), D.train()
    G.set_stage(1, 0.5)
    D.set_stage(1, 0.5)
    c = torch.tensor([0, 1, 2, 0])
    D(G(torch.randn(4, 8), c), c).logits.sum().backward()
    assert G.torgb[0].weight.grad is not None and G.torgb[1].weight.grad is not None  # fading: both paths
    assert G.blocks[1][0].weight.grad is None and G.torgb[2].weight.grad is None  # 16 px and up: not yet
    assert D.fromrgb[3].weight.grad is None and D.fromrgb[1].weight.grad is not None
