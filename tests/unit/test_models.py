"""Models: output shapes for every preset, conditioning paths, spectral norm, and G's EMA."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ganforge.config import ModelConfig, preset_names
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models import ARCHS, build_models
from ganforge.models.conditioning import CondBatchNorm, Conditioning
from ganforge.models.dcgan import DCGANGenerator
from ganforge.presets import config_from_layers, load_config
from ganforge.variants import VARIANTS
from ganforge.variants.two_domain import TwoDomainFamily

# (shape, num_classes) of each dataset a preset may name, so presets build without reading data files.
DATASET_SHAPES = {
    "sine": ((2,), 0),
    "parametric-curve": ((2,), 0),
    "ring8": ((2,), 8),
    "grid25": ((2,), 25),
    "mnist5k": ((1, 28, 28), 10),
    "mnist": ((1, 28, 28), 10),
    "digits": ((1, 8, 8), 10),
    "medmnist": ((3, 28, 28), 9),  # PathMNIST
    "brain-phantom": ((2, 64, 64), 2),  # 1 image + 1 mask channel
    "folder": ((3, 64, 64), 0),  # e.g. AFHQ cats (afhq-cat-stylegan2-512 reads the user's folder)
}
MASKS = {"brain-phantom": 1}  # mask channels, added to data.channels
# Two-domain datasets of the translation presets: (domain A image shape, domain B image shape).
TWO_DOMAIN_SHAPES = {
    "brain-contrasts": ((1, 64, 64), (1, 64, 64)),
    "brain-labels": ((6, 64, 64), (1, 64, 64)),
    "digits-to-mnist": ((1, 28, 28), (1, 28, 28)),
    "mnist-styles": ((1, 28, 28), (1, 28, 28)),
}


def preset_shape(cfg) -> tuple[tuple[int, ...], int]:
    if cfg.data.name not in DATASET_SHAPES:
        pytest.fail(f"add dataset {cfg.data.name!r} (shape, classes) to DATASET_SHAPES in {__file__}")
    shape, classes = DATASET_SHAPES[cfg.data.name]
    if len(shape) == 3:
        channels = (cfg.data.channels + MASKS.get(cfg.data.name, 0)) if cfg.data.channels else shape[0]
        res = cfg.data.resolution or shape[1]
        shape = (channels, res, res)
    return shape, classes


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_builds_models_with_the_right_shapes(name):
    cfg = load_config(name)
    family = VARIANTS.get(cfg.variant)
    if isinstance(family, TwoDomainFamily):  # a translator: A images in, B images out, each way it has
        (ca, side, _), (cb, _, _) = TWO_DOMAIN_SHAPES[cfg.data.name]
        res = cfg.data.resolution or side
        G = family.build_translator(cfg.model, (ca, res, res), (cb, res, res), family.settings(cfg))
        x = G(torch.rand(4, ca, res, res) * 2 - 1, "AtoB")
        assert x.shape == (4, cb, res, res) and x.min() >= -1 and x.max() <= 1
        if "BtoA" in G.directions:
            assert G(x, "BtoA").shape == (4, ca, res, res)
        return
    if family.export_info().get("coupled"):  # CoGAN: one z, an image in each domain; a D per domain
        (ca, side, _), (cb, _, _) = TWO_DOMAIN_SHAPES[cfg.data.name]
        res = cfg.data.resolution or side
        stand_in = Dataset(name, torch.zeros(1, ca, res, res), x_b=torch.zeros(1, cb, res, res))
        nets = family.build_networks(cfg, stand_in)
        a, b = nets["G"].pair(torch.randn(3, cfg.model.z_dim))
        assert a.shape == (3, ca, res, res) and b.shape == (3, cb, res, res)
        assert nets["D"](a, "A").shape[0] == 3 and nets["D"](b, "B").shape[0] == 3
        return
    shape, classes = preset_shape(cfg)
    family = VARIANTS.get(cfg.variant)
    cond = family.conditioning
    # Through the family: the GAN families build from the architecture registry, others (stylegan2, progan) their own
    stand_in = Dataset(name, torch.zeros(1, *shape), num_classes=classes, kind="image" if len(shape) == 3 else "points")
    # The StyleGAN2 GPU study presets (128-512 px): shapes only, on the meta device (a CPU forward at 512 px takes
    # minutes). ProGAN's start at 4x4 px, cheap on CPU.
    device = "meta" if len(shape) == 3 and shape[-1] >= 128 and "stylegan2" in cfg.variant else "cpu"
    with torch.device(device):
        nets = family.build_networks(cfg, stand_in)
        G, D = nets["G"], nets["D"]
        n = 2
        z = torch.randn(n, cfg.model.z_dim)
        c = torch.arange(n) % max(classes, 1)
    x = G(z, c if cond.g.conditional else None)
    assert x.shape == (n, *shape)
    if len(shape) == 3 and isinstance(G, DCGANGenerator):
        assert x.min() >= -1 and x.max() <= 1  # tanh images
    out = D(x, c if cond.d.conditional else None)
    assert out.logits.shape == (n,)
    assert out.features.dim() == 2 and len(out.features) == n
    assert (out.aux_logits is not None) == (cond.d.name == "aux")
    if out.aux_logits is not None:
        assert out.aux_logits.shape == (n, classes)


def small(arch: str, **model) -> ModelConfig:
    base = {
        "arch": arch,
        "z_dim": 8,
        "embed_dim": 4,
        "g_hidden": [16],
        "d_hidden": [16],
        "g_channels": 16,
        "d_channels": 8,
        "g_batchnorm": [True],
    }
    return config_from_layers([{"model": {**base, **model}, "train": {"kimg": 1}}]).model


SHAPES = {"mlp": (1, 8, 8), "dcgan": (1, 8, 8), "resnet": (1, 8, 8)}
ALL_CONDITIONINGS = [
    Conditioning.named(g, d)
    for g in ("none", "concat", "cbn", "concat-cbn")
    for d in ("none", "concat", "aux", "projection")
]


@pytest.mark.parametrize("arch", ARCHS.names())
@pytest.mark.parametrize("cond", ALL_CONDITIONINGS, ids=lambda c: f"{c.g.name}-{c.d.name}")
def test_every_arch_supports_every_conditioning(arch, cond):
    torch.manual_seed(0)
    shape = SHAPES[arch]
    G, D = build_models(small(arch), shape, 3, cond)
    G.eval(), D.eval()
    z = torch.randn(1, 8).expand(3, 8)
    c = torch.tensor([0, 1, 2])
    with torch.no_grad():
        x = G(z, c)  # conditional batch norm's per-class gains and biases differ from the start
        out = D(x[:1].expand(3, *shape), c)
    assert x.shape == (3, *shape)
    # Same latent, different labels: G's output depends on the label exactly when G is conditional.
    assert (not torch.allclose(x[0], x[1])) == cond.g.conditional
    # Same image, different labels: D's score depends on the label when the label enters D.
    assert (not torch.allclose(out.logits[0], out.logits[1])) == (cond.d.name in ("concat", "projection"))


def test_dcgan_d_stacks_the_label_as_an_embedded_map():
    _, D = build_models(small("dcgan"), (3, 28, 28), 9, Conditioning.named("concat", "concat"))
    assert D.embed.weight.shape == (9, 28 * 28)  # one 28x28 map per class
    first = next(m for m in D.body.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 3 + 1  # RGB + label map


def test_concat_g_uses_an_embedding_of_embed_dim():
    G, D = build_models(small("mlp", embed_dim=50), (1, 8, 8), 10, Conditioning.named("concat", "concat"))
    assert G.embed.weight.shape == (10, 50) and D.embed.weight.shape == (10, 50)
    G, _ = build_models(small("dcgan", embed_dim=50), (1, 28, 28), 10, Conditioning.named("concat", "none"))
    assert G.embed.weight.shape == (10, 50) and G.fc.in_features == 8 + 50


def resnet_d_with_dead_last_block(act: str) -> nn.Module:
    torch.manual_seed(0)
    cfg = small("resnet", resnet_d_act=act, d_batchnorm=[False])
    _, D = build_models(cfg, (1, 16, 16), 3, Conditioning.named("cbn", "projection"))
    with torch.no_grad():
        D.last.c2.bias.fill_(-1e3)  # every unit of the last block negative: what a dying ReLU D reaches
    return D


def test_resnet_d_keeps_sngan_relu_by_default_and_leaky_relu_keeps_a_dead_d_alive():
    assert small("resnet").resnet_d_act == "relu"  # SNGAN's, and what runs written before the option trained
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    c = torch.tensor([0, 1, 2, 0])
    relu = resnet_d_with_dead_last_block("relu")
    # A dead ReLU D scores every image the same and passes G no gradient; leaky ReLU still does.
    (grad_relu,) = torch.autograd.grad(relu(x, c).logits.sum(), x)
    leaky = resnet_d_with_dead_last_block("leaky_relu")
    (grad_leaky,) = torch.autograd.grad(leaky(x, c).logits.sum(), x)
    assert grad_relu.abs().max() == 0 and grad_leaky.abs().max() > 0


def test_mlp_cbn_without_batch_norm_is_refused():
    with pytest.raises(ConfigError, match="g_batchnorm"):
        build_models(small("mlp", g_batchnorm=[False]), (2,), 3, Conditioning.named("cbn", "projection"))


def largest_singular_value(module: nn.Module) -> float:
    w = module.weight  # the normalised weight W / sigma
    if isinstance(module, nn.ConvTranspose2d):
        w = w.transpose(0, 1)  # spectral_norm normalises ConvTranspose weights along dim 1
    return torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item()


@pytest.mark.parametrize("arch", ARCHS.names())
def test_spectral_norm_brings_the_largest_singular_value_to_one(arch):
    torch.manual_seed(0)
    cfg = small(arch, spectral_norm_d=True, spectral_norm_g=True, d_batchnorm=[False])
    G, D = build_models(cfg, SHAPES[arch], 3, Conditioning.named("cbn", "projection"))
    G.train(), D.train()
    c = torch.tensor([0, 1, 2, 0])
    for _ in range(30):  # one power iteration per training-mode forward pass
        with torch.no_grad():
            D(G(torch.randn(4, 8), c), c)
    normalised = [m for m in list(G.modules()) + list(D.modules()) if nn.utils.parametrize.is_parametrized(m)]
    assert any(isinstance(m, nn.Linear) for m in normalised)
    assert arch != "dcgan" or any(isinstance(m, nn.ConvTranspose2d) for m in normalised)
    assert D.proj in normalised  # the projection embedding too
    assert not any(isinstance(m, nn.Embedding) and m is not D.proj for m in normalised)  # label inputs stay
    for m in normalised:
        assert largest_singular_value(m) == pytest.approx(1.0, abs=0.02), m
    # Switched off, nothing is parametrised.
    G, D = build_models(small(arch, d_batchnorm=[False]), SHAPES[arch], 3, Conditioning())
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in D.modules())


def test_ema_of_g_lags_g_with_the_configured_half_life():
    from ganforge.training.state import BatchSampler
    from ganforge.training.stats import StatsAccumulator
    from ganforge.training.step import EagerStep
    from ganforge.variants import Objective, OptimizerSpec, Phase

    class Jump(Objective):
        """An objective with one G phase that does nothing: G's weights stay where the test puts them."""

        phases = [Phase("G", "G")]

        def draw(self, phase, idx):
            return None

        def accumulate_gradients(self, *args):
            return {}

        def grid(self, G):
            raise NotImplementedError

    batch, half_life_kimg = 32, 0.32  # half-life = 10 steps of 32 images
    cfg = load_config(None, ["train.kimg=1", f"train.batch_size={batch}", f"train.ema_kimg={half_life_kimg}"])
    G = nn.Linear(2, 2)
    G.z_dim = 2
    with torch.no_grad():
        G.weight.zero_(), G.bias.zero_()
    G_ema = copy.deepcopy(G)
    with torch.no_grad():
        G.weight.fill_(1.0), G.bias.fill_(1.0)  # G jumps from 0 to 1; G_ema must follow with half-life 10 steps
    opt = torch.optim.SGD(G.parameters(), lr=0.0)
    step = EagerStep(
        cfg,
        Jump(),
        {"G": opt},
        {"G": OptimizerSpec(("G",), 0.0)},
        {"G": G},
        {"G": G_ema},
        BatchSampler(64, batch, torch.device("cpu"), seed=0),
        StatsAccumulator(),
        torch.device("cpu"),
    )
    for i in range(10):
        step(i, i * batch)
    assert G_ema.weight.mean().item() == pytest.approx(0.5, abs=1e-5)  # halfway after one half-life
    for i in range(10, 20):
        step(i, i * batch)
    assert G_ema.weight.mean().item() == pytest.approx(0.75, abs=1e-5)
    assert torch.equal(G.weight, torch.ones(2, 2))  # G itself is untouched by the EMA


def test_conditional_batch_norm_starts_class_dependent():
    """Equal per-class gains and biases at init make G draw one image for every label until D breaks the symmetry
    (issue 11, MNIST: class accuracy 0.15 against 0.53 after 30 kimg); each class starts with its own."""
    torch.manual_seed(0)
    bn = CondBatchNorm(64, 10)
    assert not torch.allclose(bn.gamma.weight[0], bn.gamma.weight[1])
    assert not torch.allclose(bn.beta.weight[0], bn.beta.weight[1])
    assert abs(bn.gamma.weight.mean().item() - 1.0) < 0.1 and abs(bn.beta.weight.mean().item()) < 0.1
    bn.eval()
    x = torch.randn(2, 64, 4, 4)
    assert not torch.allclose(bn(x, torch.tensor([0, 0])), bn(x, torch.tensor([1, 1])))
