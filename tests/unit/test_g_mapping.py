"""model.g_mapping_layers: fully connected layers between z and the convolutional G's first layer (StyleGAN's
mapping network), for the dcgan and resnet archs."""

from __future__ import annotations

import pytest
import torch

from ganforge.data import Dataset
from ganforge.errors import ConfigError
from ganforge.models import Conditioning, build_models
from ganforge.presets import load_config
from ganforge.variants import VARIANTS


@pytest.mark.parametrize(("preset", "cond"), [("mnist-dcgan", ("none", "none")), ("mnist-cgan", ("concat", "concat")),
                                              ("mnist-projection", ("cbn", "projection"))])
def test_the_mapping_folds_z_before_the_first_layer(preset, cond):
    plain = load_config(preset, ["model.g_channels=16", "model.d_channels=8"]).model
    mapped = load_config(preset, ["model.g_channels=16", "model.d_channels=8", "model.g_mapping_layers=3"]).model
    torch.manual_seed(0)
    G0, _ = build_models(plain, (1, 28, 28), 10, Conditioning.named(*cond))
    torch.manual_seed(0)
    G3, _ = build_models(mapped, (1, 28, 28), 10, Conditioning.named(*cond))
    # 0 layers: no new weights, so runs and exported generators from before the option load as they were
    assert not any(k.startswith("mapping") for k in G0.state_dict())
    layers = list(G3.mapping.layers)
    assert [tuple(m.weight.shape) for m in layers] == [(plain.z_dim, plain.z_dim)] * 3
    assert all(m.lr_mul == 0.01 for m in layers)  # StyleGAN's: a mapping at G's full rate collapsed the samples
    z, c = torch.randn(4, plain.z_dim), torch.arange(4)
    assert G3(z, c).shape == (4, 1, 28, 28)
    # the mapping is in the path: changing its last layer changes the samples
    with torch.no_grad():
        before = G3.eval()(z, c)
        layers[-1].bias.add_(1.0)
        assert not torch.allclose(before, G3(z, c))


@pytest.mark.parametrize("lr_mul", [0.01, 1.0])
def test_the_mapping_learns_at_its_share_of_g_rate(lr_mul):
    """One Adam step moves the mapping's effective weights by lr * lr_mul (equalised lr), whatever the stored scale."""
    cfg = load_config("mnist-dcgan", ["model.g_channels=16", "model.d_channels=8", "model.g_mapping_layers=2",
                                      f"model.g_mapping_lr_mul={lr_mul}"]).model
    torch.manual_seed(0)
    G, _ = build_models(cfg, (1, 28, 28), 10, Conditioning.named())
    layer = G.mapping.layers[0]
    assert layer.lr_mul == lr_mul
    effective = lambda: (layer.weight * layer.weight_gain).detach().clone()  # noqa: E731
    before = effective()
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    G(torch.randn(8, cfg.z_dim), None).square().mean().backward()
    opt.step()
    moved = (effective() - before).abs().max().item()
    # Adam's first step is lr * sign(grad) on the stored weight; the run-time scale lr_mul / sqrt(fan_in) follows
    assert moved == pytest.approx(1e-3 * lr_mul / cfg.z_dim ** 0.5, rel=0.05)  # float32: stored weights ~1 / lr_mul


def test_bad_values_and_networks_without_it_are_refused():
    with pytest.raises(ConfigError, match="model.g_mapping_layers must be >= 0"):
        load_config("mnist-dcgan", ["model.g_mapping_layers=-1"])
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match=r"model.g_mapping_lr_mul must be in \(0, 1\]"):
            load_config("mnist-dcgan", [f"model.g_mapping_lr_mul={bad}"])
    cfg = load_config("sine", ["model.g_mapping_layers=2"])
    with pytest.raises(ConfigError, match="model.g_hidden"):
        build_models(cfg.model, (2,), 1, Conditioning.named())
    cfg = load_config("brain-stylegan2-ada", ["model.g_mapping_layers=2"])
    data = Dataset("tiny", torch.zeros(4, 1, 32, 32), torch.zeros(4, dtype=torch.long), num_classes=2,
                   class_names=("a", "b"))
    with pytest.raises(ConfigError, match="ignores model.g_mapping_layers"):
        VARIANTS.get(cfg.variant).check(cfg, data)
