"""model.g_self_modulation: G's batch norms take their gain and bias from the sample's latent (Chen et al. 2019)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.data import Dataset
from ganforge.errors import ConfigError
from ganforge.models import Conditioning, build_models
from ganforge.models.layers import SelfModBatchNorm
from ganforge.presets import load_config
from ganforge.variants import VARIANTS


def test_the_norm_starts_as_a_plain_norm_and_then_follows_the_latent():
    torch.manual_seed(0)
    norm, plain = SelfModBatchNorm(6, 10), nn.BatchNorm2d(6, affine=False)
    x, w = torch.randn(8, 6, 5, 5), torch.randn(8, 10)
    torch.testing.assert_close(norm(x, w), plain(x))  # zero output layer: gain 1, bias 0 for every latent
    with torch.no_grad():
        norm.mlp[2].weight.normal_()
    out = norm(x, w)
    # each sample's channels are scaled and shifted by its own latent: the same image under two latents differs
    twin = norm(x[:1].expand(8, -1, -1, -1).contiguous(), w)
    assert not torch.allclose(twin[0], twin[1])
    assert out.shape == x.shape


@pytest.mark.parametrize("mapping", [0, 2])
def test_every_norm_of_the_dcgan_g_is_self_modulated_and_learns(mapping):
    cfg = load_config("mnist-dcgan", ["model.g_channels=16", "model.d_channels=8", "model.g_self_modulation=true",
                                      f"model.g_mapping_layers={mapping}"]).model
    torch.manual_seed(0)
    G, _ = build_models(cfg, (1, 28, 28), 10, Conditioning.named())
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    modulated = [m for m in G.modules() if isinstance(m, SelfModBatchNorm)]
    assert modulated and len(norms) == len(modulated)  # no plain norm left, each inside a modulated one
    assert all(m.mlp[0].in_features == cfg.z_dim for m in modulated)
    z = torch.randn(6, cfg.z_dim)
    G(z).square().mean().backward()
    # the gains' and biases' output layer gets a gradient from the start (zero weights, non-zero input)
    assert all(m.mlp[2].weight.grad.abs().sum() > 0 for m in modulated)


def test_networks_it_does_not_fit_are_refused():
    with pytest.raises(ConfigError, match="already modulates them by the label"):
        cfg = load_config("mnist-best", ["model.g_self_modulation=true"])
        build_models(cfg.model, (1, 28, 28), 10, Conditioning.named("concat-cbn", "projection"))
    with pytest.raises(ConfigError, match="dcgan arch"):
        cfg = load_config("sine", ["model.g_self_modulation=true"])
        build_models(cfg.model, (2,), 1, Conditioning.named())
    with pytest.raises(ConfigError, match="dcgan arch's G only"):
        cfg = load_config("mnist-projection", ["model.g_self_modulation=true"])
        build_models(cfg.model, (1, 28, 28), 10, Conditioning.named("cbn", "projection"))
    cfg = load_config("brain-stylegan2-ada", ["model.g_self_modulation=true"])
    data = Dataset("tiny", torch.zeros(4, 1, 32, 32), torch.zeros(4, dtype=torch.long), num_classes=2,
                   class_names=("a", "b"))
    with pytest.raises(ConfigError, match="ignores model.g_self_modulation"):
        VARIANTS.get(cfg.variant).check(cfg, data)
