"""StyleGAN2's building blocks against the paper: equalised learning rate, modulation/demodulation on a case
computed by hand, the skip G's and residual D's shapes, truncation, style mixing and the lazy regularisers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.models.conditioning import Conditioning
from ganforge.models.equalized import EqConv2d, EqLinear, minibatch_stddev, pixel_norm
from ganforge.models.stylegan2 import (
    FIRDown,
    ModulatedConv2d,
    StyleGAN2Arch,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
)
from ganforge.presets import config_from_layers
from ganforge.training.setup import prepare
from ganforge.variants import VARIANTS

SMALL = StyleGAN2Arch(
    z_dim=8, w_dim=16, mapping_layers=2, g_channel_max=16, d_channel_max=16, channel_base=256, embed_dim=4
)


def test_equalised_linear_scales_weights_at_run_time():
    torch.manual_seed(0)
    layer = EqLinear(400, 300, lr_mul=0.01, bias_init=1.0)
    # stored N(0, 1) / lr_mul; used as W * lr_mul / sqrt(fan_in), so the effective weight is N(0, 1 / fan_in)
    assert layer.weight.std().item() == pytest.approx(100, rel=0.02)
    x = torch.randn(7, 400)
    expected = x @ (layer.weight * 0.01 / math.sqrt(400)).t() + layer.bias * 0.01
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert torch.allclose(layer.bias * layer.lr_mul, torch.ones(300))  # bias_init is the used value
    # He's constant keeps the second moment: unit-variance inputs give unit-variance outputs (before the bias)
    plain = EqLinear(512, 512, bias=False)
    assert plain(torch.randn(256, 512)).var().item() == pytest.approx(1.0, rel=0.1)


def test_equalised_conv_uses_the_he_constant_of_its_fan_in():
    torch.manual_seed(0)
    conv = EqConv2d(6, 5, 3)
    x = torch.randn(2, 6, 8, 8)
    expected = F.conv2d(x, conv.weight / math.sqrt(6 * 9), conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    # The gradient reaching the stored weight is scaled by the same constant: with Adam the update per step is
    # the same in stored units for every layer, which is the point of the equalised learning rate.
    conv.weight.grad = None
    conv(x).sum().backward()
    raw = torch.nn.Parameter(conv.weight.detach() / math.sqrt(54))
    F.conv2d(x, raw, conv.bias.detach(), padding=1).sum().backward()
    assert torch.allclose(conv.weight.grad, raw.grad / math.sqrt(54), atol=1e-5)


def test_modulation_and_demodulation_on_a_hand_computed_case():
    conv = ModulatedConv2d(2, 1, 1, w_dim=3)
    with torch.no_grad():
        conv.affine.weight.zero_()
        conv.affine.bias.copy_(torch.tensor([2.0, 3.0]))  # styles s = (2, 3) whatever w is
        conv.weight.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1, 1))  # used as (1, 2) / sqrt(2)
    x = torch.ones(1, 2, 1, 1)
    w = torch.randn(1, 3)
    # modulated: w' = (2 * 1, 3 * 2) / sqrt(2); y = x . w' = 8 / sqrt(2); demodulated by sqrt(4/2 + 36/2) = sqrt(20)
    assert conv(x, w).item() == pytest.approx(8 / math.sqrt(2) / math.sqrt(20), rel=1e-5)
    conv.demodulate = False
    assert conv(x, w).item() == pytest.approx(8 / math.sqrt(2), rel=1e-5)


def test_modulated_conv_equals_the_papers_per_sample_weights():
    """conv(x * s, w) * d is the paper's equation 1-3 with one weight tensor per sample (a grouped conv)."""
    torch.manual_seed(1)
    conv = ModulatedConv2d(4, 3, 3, w_dim=5)
    with torch.no_grad():
        conv.affine.weight.normal_()
    x, w = torch.randn(2, 4, 6, 6), torch.randn(2, 5)
    s = conv.affine(w)  # [N, I]
    weight = conv.weight * conv.weight_gain  # [O, I, 3, 3]
    w1 = weight[None] * s[:, None, :, None, None]  # w'_oik = s_i w_oik: [N, O, I, 3, 3]
    w2 = w1 / torch.sqrt(w1.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)  # w''
    ref = F.conv2d(x.reshape(1, 8, 6, 6), w2.reshape(6, 4, 3, 3), padding=1, groups=2).reshape(2, 3, 6, 6)
    assert torch.allclose(conv(x, w), ref, atol=1e-5)
    # demodulation gives unit output variance for unit-variance inputs, whatever the style's scale
    big = conv(torch.randn(64, 4, 16, 16), 100 * torch.randn(64, 5))
    assert big.var().item() == pytest.approx(1.0, rel=0.15)


@pytest.mark.parametrize(("res", "channels"), [(8, 1), (32, 2), (64, 3)])
def test_generator_and_discriminator_shapes(res, channels):
    torch.manual_seed(0)
    cond = Conditioning.named("concat", "projection")
    G = StyleGAN2Generator(SMALL, (channels, res, res), 3, cond)
    D = StyleGAN2Discriminator(SMALL, (channels, res, res), 3, cond)
    assert G.num_ws == 2 * int(math.log2(res)) - 2  # two styles per resolution, one fewer at 4x4, plus the last tRGB
    c = torch.tensor([0, 1, 2, 0])
    x = G(torch.randn(4, 8), c)
    assert x.shape == (4, channels, res, res)
    out = D(x, c)
    assert out.logits.shape == (4,) and out.features.shape == (4, 16)
    # the label changes G's output for the same z (it enters the mapping network)
    z = torch.randn(1, 8).expand(2, 8)
    G.eval()
    two = G(z, torch.tensor([0, 1]))
    assert not torch.allclose(two[0], two[1])


def test_stylegan2_refuses_shapes_and_label_pieces_it_cannot_use():
    with pytest.raises(ConfigError, match="power of two"):
        StyleGAN2Generator(SMALL, (1, 28, 28), 1, Conditioning())
    with pytest.raises(ConfigError, match="mapping network"):
        StyleGAN2Generator(SMALL, (1, 32, 32), 3, Conditioning.named("cbn", "none"))


def test_noise_is_random_in_training_and_fixed_in_eval():
    torch.manual_seed(0)
    G = StyleGAN2Generator(SMALL, (1, 16, 16), 1, Conditioning())
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(1.0)
    z = torch.randn(2, 8)
    G.train()
    assert not torch.allclose(G(z), G(z))
    G.eval()
    assert torch.equal(G(z), G(z))


def test_eval_noise_seeds_give_each_sample_its_own_noise_whatever_the_batch():
    torch.manual_seed(0)
    G = StyleGAN2Generator(SMALL, (1, 16, 16), 1, Conditioning()).eval()
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(1.0)
    z = torch.randn(1, 8).expand(4, 8)  # one latent: any difference between the rows is noise
    seeds = torch.tensor([11, 12, 11, 13])
    x = G(z, noise_seeds=seeds)
    assert torch.equal(x[0], x[2])  # the same seed, the same noise
    assert not torch.allclose(x[0], x[1]) and not torch.allclose(x[1], x[3])
    # the fixed maps (no seeds) are what the seeds replace: every row alike, and unlike the seeded rows
    fixed = G(z)
    assert torch.equal(fixed[0], fixed[3]) and not torch.allclose(fixed[0], x[0])
    # a sample's noise depends on its seed alone, not on the batch it is drawn in or its place there
    assert torch.allclose(G(z[:1], noise_seeds=seeds[3:]), x[3:], atol=1e-6)
    # training draws fresh noise whatever the seeds
    G.train()
    assert not torch.allclose(G(z, noise_seeds=seeds)[0], G(z, noise_seeds=seeds)[0])


def test_truncation_pulls_towards_the_mean_w():
    torch.manual_seed(0)
    G = StyleGAN2Generator(SMALL, (1, 16, 16), 1, Conditioning()).eval()
    G.mapping.w_avg.copy_(torch.randn(16))
    z = torch.randn(5, 8)
    w = G.mapping(z)
    assert torch.allclose(G.mapping(z, truncation_psi=0.5), G.mapping.w_avg + 0.5 * (w - G.mapping.w_avg), atol=1e-6)
    at_mean = G(z, truncation_psi=0.0)  # every sample is the image of w_avg
    assert torch.allclose(at_mean, at_mean[:1].expand_as(at_mean), atol=1e-5)


def test_fir_downsampling_is_the_normalised_1331_filter():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = 1.0
    y = FIRDown()(x)
    assert y.shape == (1, 1, 4, 4)
    assert y.sum().item() == pytest.approx(1 / 4)  # a unit impulse keeps its mass spread over 4x fewer pixels
    assert FIRDown()(torch.ones(1, 2, 8, 8)).allclose(torch.ones(1, 2, 4, 4))  # constants pass unchanged


def test_pixel_norm_and_minibatch_stddev():
    x = torch.randn(8, 5, 4, 4) * 7
    assert torch.allclose(pixel_norm(x).square().mean(1), torch.ones(8, 4, 4), atol=1e-4)
    y = minibatch_stddev(x, group=4)
    assert y.shape == (8, 6, 4, 4)
    # sample i belongs to group {i, i + 2, i + 4, i + 6}; its extra map is that group's mean standard deviation
    group = x[[1, 3, 5, 7]]
    assert y[1, 5, 0, 0].item() == pytest.approx(group.std(0, unbiased=False).mean().item(), rel=1e-4)
    assert torch.equal(y[:, :5], x)


def _objective(variant: str = "stylegan2", **family):
    cfg = config_from_layers(
        [
            {
                "variant": variant,
                "data": {"name": "mnist5k", "resolution": 8, "limit": 64},
                "model": {"z_dim": 8, "embed_dim": 4, "g_channels": 16, "d_channels": 16},
                "family": {"w_dim": 16, "mapping_layers": 2, "channel_base": 256, **family},
                "train": {"kimg": 1, "batch_size": 8, "device": "cpu"},
            }
        ]
    )
    setup = prepare(cfg)
    torch.manual_seed(0)
    family_obj = VARIANTS.get(cfg.variant)
    nets = family_obj.build_networks(cfg, setup.train_set)
    return family_obj.objective(cfg, nets, setup.train_set, setup.train_set.x, setup.train_set.y), nets


def test_style_mixing_takes_later_layers_from_a_second_latent():
    objective, nets = _objective(style_mixing=1.0)
    G = nets["G"]
    torch.manual_seed(3)
    ws = objective.mapped(torch.randn(16, 8), None)  # [N, num_ws, w_dim]
    same_as_first = (ws - ws[:, :1]).abs().amax(2) < 1e-6  # [N, num_ws]
    assert same_as_first[:, 0].all()  # layer 0 always from the first latent
    assert (~same_as_first[:, -1]).all()  # mixing probability 1: the last layer always from the second
    # the switch is a single cutoff per sample: first-latent layers, then second-latent layers
    assert all(row.long().diff().le(0).all() for row in same_as_first)
    objective, _ = _objective(style_mixing=0.0)
    ws = objective.mapped(torch.randn(4, 8), None)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))
    assert G.num_ws == 4


def test_phases_are_lazy_regularised_and_path_length_penalises_deviation():
    objective, nets = _objective(pl_interval=4)
    phases = {p.name: p for p in objective.phases}
    assert phases["Dreg"].interval == 16 and phases["Greg"].interval == 4 and phases["Greg"].opt == "G"
    batch = objective.draw(phases["Greg"], torch.arange(8))
    stats = objective.accumulate_gradients(phases["Greg"], batch)
    assert stats["pl"].item() >= 0
    assert nets["G"].pl_mean.item() > 0  # the running mean of the path lengths moved from 0
    assert nets["G"].synthesis.blocks[0].conv1.conv.weight.grad is not None  # G gets the penalty's gradient
    objective, _ = _objective(pl_weight=0.0)
    assert "Greg" not in {p.name for p in objective.phases}
