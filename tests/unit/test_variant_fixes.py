"""The pieces that make the conditional variants train without batch norm in D: minibatch standard deviation,
the ResNet (SNGAN) pair, AC-GAN's D classifying real images only, and the class-accuracy metric."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.metrics.class_accuracy import class_accuracy
from ganforge.metrics.protocol import METRICS
from ganforge.models import build_models
from ganforge.models.conditioning import CondBatchNorm, Conditioning
from ganforge.models.layers import DOut, MinibatchStd
from ganforge.presets import load_config
from ganforge.variants import VARIANTS
from ganforge.variants.gan import wrong_labels
from tests.conftest import stub_objective


def test_minibatch_std_is_the_mean_std_over_each_group():
    x = torch.zeros(4, 2, 1, 1)
    x[:, 0, 0, 0] = torch.tensor([0.0, 1.0, 2.0, 5.0])  # groups of 4: the one group holds all four samples
    x[:, 1, 0, 0] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    out = MinibatchStd(group=4)(x)
    assert out.shape == (4, 3, 1, 1) and torch.equal(out[:, :2], x)
    std0 = torch.tensor([0.0, 1.0, 2.0, 5.0]).std(unbiased=False)  # population std, channel 0; channel 1: 0
    expected = float(((std0**2 + 1e-8).sqrt() + 1e-4) / 2)
    assert out[:, 2].flatten().tolist() == pytest.approx([expected] * 4, abs=1e-6)


def test_minibatch_std_sees_a_collapsed_batch_and_groups_what_divides_the_batch():
    same = torch.randn(1, 3, 4, 4).expand(6, 3, 4, 4)
    varied = torch.randn(6, 3, 4, 4)
    layer = MinibatchStd(group=4)  # 6 samples: groups of 3 (the largest divisor of 6 up to 4)
    assert layer(same)[:, 3].max() < 1e-3 < layer(varied)[:, 3].min()
    # samples i and i + 2 share a group of three (sample i sits in group i % 2): their std channel is equal
    out = layer(varied)[:, 3, 0, 0]
    assert out[0] == out[2] == out[4] and out[1] == out[3] == out[5] and out[0] != out[1]


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_d_mbstd_adds_the_channel_to_d(arch):
    cfg = load_config("mnist-projection", [f"model.arch={arch}", "model.d_mbstd=true"])
    _, D = build_models(cfg.model, (1, 28, 28), 10, Conditioning.named("cbn", "projection"))
    assert any(isinstance(m, MinibatchStd) for m in D.modules())
    cfg = load_config("mnist-projection", [f"model.arch={arch}"])
    _, D = build_models(cfg.model, (1, 28, 28), 10, Conditioning.named("cbn", "projection"))
    assert not any(isinstance(m, MinibatchStd) for m in D.modules())


def test_resnet_pair_has_no_batch_norm_in_d_and_refuses_it():
    cfg = load_config("mnist-projection")
    assert cfg.model.arch == "resnet" and cfg.model.spectral_norm_d and cfg.objective.loss == "hinge"
    G, D = build_models(cfg.model, (1, 28, 28), 10, Conditioning.named("cbn", "projection"))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    z, c = torch.randn(4, cfg.model.z_dim), torch.tensor([0, 1, 2, 3])
    assert G(z, c).shape == (4, 1, 28, 28) and D(G(z, c), c).features.shape == (4, 64)
    with pytest.raises(ConfigError, match="no batch norm in D"):
        build_models(
            load_config("mnist-projection", ["model.d_batchnorm=[true]"]).model,
            (1, 28, 28),
            10,
            Conditioning.named("cbn", "projection"),
        )


@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
def test_resnet_pair_makes_every_size(size):
    cfg = load_config("mnist-projection")
    G, D = build_models(cfg.model, (3, size, size), 4, Conditioning.named("concat", "concat"))
    x = G(torch.randn(2, cfg.model.z_dim), torch.tensor([0, 3]))
    assert x.shape == (2, 3, size, size) and D(x, torch.tensor([0, 3])).logits.shape == (2,)


def test_cgan_projection_embeds_the_label_in_g_and_projects_it_in_d():
    # cgan-projection: the cGAN's G (an embedding concatenated to z, no conditional batch norm) with the
    # projection D (no label input; the label changes D's logit only by (e_c - e_c') . phi(x)).
    cfg = load_config("demo", ["variant=cgan-projection", "model.d_batchnorm=[false]"])
    cond = VARIANTS.get("cgan-projection").conditioning
    torch.manual_seed(0)
    G, D = build_models(cfg.model, (1, 28, 28), 10, cond)
    assert G.embed is not None and not any(isinstance(m, CondBatchNorm) for m in G.modules())
    assert D.embed is None and D.proj is not None
    G.eval()
    z = torch.randn(1, cfg.model.z_dim).expand(2, -1)
    x = G(z, torch.tensor([3, 7]))
    assert not torch.allclose(x[0], x[1])  # the same z draws a different image for another label
    with torch.no_grad():
        out = D(x[:1].expand(2, -1, -1, -1), torch.tensor([3, 7]))  # one image, judged as a 3 and as a 7
        expected = (D.proj.weight[7] - D.proj.weight[3]) @ out.features[0]
    assert torch.equal(out.features[0], out.features[1])  # phi(x) does not see the label
    assert float(out.logits[1] - out.logits[0]) == pytest.approx(float(expected), rel=1e-4, abs=1e-6)


def test_projection_cbn_concat_carries_the_label_both_ways_in_g():
    """projection-cbn-concat (BigGAN-deep's G): the embedding joined to z and per-class gains and biases in every
    batch norm of G, starting at 1 and 0; the projection D as cgan-projection's. Its preset is
    mnist-cgan-projection-progan with only G's conditioning changed."""
    cfg = load_config("mnist-projection-cbn-concat")
    base = load_config("mnist-cgan-projection-progan")
    assert cfg.variant == "projection-cbn-concat"
    # g_batchnorm, the variant's default for the MLP G, is not read by the DCGAN G (its batch norms are fixed)
    assert replace(cfg.model, g_batchnorm=base.model.g_batchnorm) == base.model
    assert (cfg.optim, cfg.objective, cfg.train) == (base.optim, base.objective, base.train)
    cond = VARIANTS.get("projection-cbn-concat").conditioning
    torch.manual_seed(0)
    G, D = build_models(cfg.model, (1, 28, 28), 10, cond)
    cbns = [m for m in G.modules() if isinstance(m, CondBatchNorm)]
    assert G.embed is not None and G.fc.in_features == cfg.model.z_dim + cfg.model.embed_dim
    assert len(cbns) == sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) >= 2  # every batch norm is one
    assert all(torch.equal(b.gamma.weight, torch.ones_like(b.gamma.weight)) for b in cbns)
    assert all(torch.equal(b.beta.weight, torch.zeros_like(b.beta.weight)) for b in cbns)
    assert D.embed is None and D.proj is not None
    # Each route alone changes the image: the label through the embedding (gains still equal) ...
    G.eval()
    z = torch.randn(1, cfg.model.z_dim).expand(2, -1)
    with torch.no_grad():
        x = G(z, torch.tensor([3, 7]))
        assert not torch.allclose(x[0], x[1])
        # ... and through the batch norms: same embedding row for both labels, different gains. Two equal rows of
        # one batch agree to rounding, not bit for bit: on AMD EPYC, MKL's GEMM rounds G.fc's two rows apart (3e-7)
        G.embed.weight[7] = G.embed.weight[3]
        x = G(z, torch.tensor([3, 7]))
        assert torch.allclose(x[0], x[1], rtol=0, atol=1e-5)
        cbns[0].gamma.weight[7] += 0.5
        y = G(z, torch.tensor([3, 7]))
    assert (y[0] - y[1]).abs().max() > 1e-2
    with pytest.raises(ConfigError, match="g_batchnorm"):  # the MLP G must have a batch norm to carry it
        build_models(load_config("mnist-mlp", ["model.g_batchnorm=[false]"]).model, (1, 28, 28), 10, cond)


def test_projection_progan_is_the_papers_g_two_conditional_layers_deeper():
    """mnist-projection-progan: variant projection (the label reaches G through its batch norms only) on
    mnist-cgan-progan's recipe with an R1 D in place of spectral norm and the rates decaying over the second half,
    and G two 3x3 convolutions deeper, each followed by a conditional batch norm that the label drives."""
    cfg = load_config("mnist-projection-progan")
    base = load_config("mnist-cgan-progan")
    assert cfg.variant == "projection"
    # the networks differ only in G's depth; spectral norm stays off (the variant's default is on), R1 is the base's
    assert replace(cfg.model, g_extra_layers=0, g_batchnorm=base.model.g_batchnorm) == base.model
    assert cfg.model.g_extra_layers == 2 and not cfg.model.spectral_norm_d and cfg.objective.r1_gamma > 0
    # and the rates fall linearly to 0 over the second half (SNGAN's schedule); the rest of the optimiser is the base's
    assert cfg.optim.lr_decay_start == 0.5
    assert replace(cfg.optim, lr_decay_start=base.optim.lr_decay_start) == base.optim
    assert (cfg.objective, cfg.train) == (base.objective, base.train)
    cond = VARIANTS.get("projection").conditioning
    torch.manual_seed(0)
    G, D = build_models(cfg.model, (1, 28, 28), 10, cond)
    shallow, _ = build_models(replace(cfg.model, g_extra_layers=0), (1, 28, 28), 10, cond)
    cbns = [m for m in G.modules() if isinstance(m, CondBatchNorm)]
    assert G.embed is None and D.embed is None and D.proj is not None  # the label: G's norms and D's projection
    assert len(cbns) == sum(isinstance(m, CondBatchNorm) for m in shallow.modules()) + 2
    assert not any(isinstance(m, nn.BatchNorm2d) and m.affine for m in G.modules())  # every norm is conditional
    # The extra layers' norms carry the label: equal gains and biases there for two labels (and everywhere else)
    # give one image, a different gain in the last extra layer alone gives two.
    G.eval()
    z = torch.randn(1, cfg.model.z_dim).expand(2, -1)
    with torch.no_grad():
        for b in cbns:
            b.gamma.weight[7], b.beta.weight[7] = b.gamma.weight[3], b.beta.weight[3]
        x = G(z, torch.tensor([3, 7]))
        assert torch.allclose(x[0], x[1], rtol=0, atol=1e-5)  # to rounding: G.fc's GEMM may round rows apart
        cbns[-1].gamma.weight[7] += 0.5
        y = G(z, torch.tensor([3, 7]))
    assert (y[0] - y[1]).abs().max() > 1e-2


# ---- AC-GAN: D's classifier on real images only (family.fake_aux=0) --------------------------------------------


class StubG(nn.Module):
    z_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3, 4))

    def forward(self, z, c=None):
        return z @ self.w  # [N, 4]


class StubD(nn.Module):
    """D(x) = sum(x) as the logit, fixed class logits for the aux head (as tests/unit/test_losses.py)."""

    def __init__(self, aux_logits: torch.Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.aux_logits = aux_logits

    def forward(self, x, c=None):
        return DOut(x.sum(1) * self.scale, self.aux_logits * self.scale, x * self.scale)


@pytest.mark.parametrize("fake_aux", [0.0, 1.0, 0.25])
def test_acgan_fake_aux_weighs_d_classifying_generated_images(fake_aux):
    aux = torch.tensor([[2.0, 0.5, -1.0], [0.1, 3.0, 0.2]])
    over = ["train.kimg=1", "variant=acgan", "objective.loss=hinge", "objective.aux_weight=0.5"]
    cfg = load_config(None, [*over, f"family.fake_aux={fake_aux}"])
    obj = stub_objective("acgan", StubG(), StubD(aux), cfg, 3, (4,), kind="points")
    c = torch.tensor([1, 2])
    stats = obj.step("D", torch.zeros(2, 4), c, torch.zeros(2, 3), c)
    ce = F.cross_entropy(aux, c).item()  # the stub gives the same class logits for real and generated images
    assert stats["loss_aux"].item() == pytest.approx((1 + fake_aux) * ce, rel=1e-6)
    assert stats["loss_D"].item() == pytest.approx(2.0 + 0.5 * (1 + fake_aux) * ce, rel=1e-6)


@pytest.mark.parametrize("g_aux", [1.0, 0.1, 0.0])
def test_acgan_g_aux_weighs_g_classification_term(g_aux):
    aux = torch.tensor([[2.0, 0.5, -1.0], [0.1, 3.0, 0.2]])
    over = ["train.kimg=1", "variant=acgan", "objective.loss=hinge", "objective.aux_weight=0.5"]
    obj = stub_objective(
        "acgan", StubG(), StubD(aux), load_config(None, [*over, f"family.g_aux={g_aux}"]), 3, (4,), kind="points"
    )
    z, c = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), torch.tensor([1, 2])
    stats = obj.step("G", torch.zeros(2, 4), c, z, c)
    adversarial = -(z @ torch.ones(3, 4)).sum(1).mean().item()  # hinge G loss: -mean(D(G(z))), D(x) = sum(x)
    assert stats["loss_G"].item() == pytest.approx(adversarial + 0.5 * g_aux * F.cross_entropy(aux, c).item())


def test_acgan_fake_aux_is_range_checked_and_the_paper_by_default():
    with pytest.raises(ConfigError, match="family.fake_aux must be in"):
        load_config("mnist-acgan", ["family.fake_aux=-1"])
    with pytest.raises(ConfigError, match="family.g_aux must be in"):
        load_config("mnist-acgan", ["family.g_aux=-0.5"])
    assert load_config("mnist-dcgan", ["variant=acgan"]).family == {"fake_aux": 1.0, "g_aux": 1.0}  # the paper's
    preset = load_config("mnist-acgan")
    assert preset.family["fake_aux"] == 0.0 and preset.model.d_mbstd and not preset.model.d_batchnorm[0]
    # AC-WGAN-GP: mnist-cwgan-gp's critic and recipe with the classifier head in place of the label map
    assert preset.objective.loss == "wasserstein" and preset.objective.gp_weight == 10.0
    assert preset.model == load_config("mnist-cwgan-gp").model and preset.optim == load_config("mnist-cwgan-gp").optim


# ---- the matching-aware term (objective.mismatch_weight) -------------------------------------------------------


class LabelStubD(nn.Module):
    """D(x, c) = x[c] * scale: a critic that scores an image by the coordinate of the label it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, c=None):
        return DOut(x.gather(1, c[:, None])[:, 0] * self.scale, None, x * self.scale)


def test_wrong_labels_are_every_other_class_and_never_the_right_one():
    torch.manual_seed(0)
    c = torch.arange(4).repeat(2000)
    wrong = wrong_labels(c, 4)
    assert not (wrong == c).any()
    for k in range(4):  # each class's wrong labels: the three others, about a third each
        counts = torch.bincount(wrong[c == k], minlength=4).float() / 2000
        assert counts[k] == 0 and ((counts[torch.arange(4) != k] - 1 / 3).abs() < 0.05).all()


@pytest.mark.parametrize("variant", ["cwgan-gp", "cragan", "cgan"])
@pytest.mark.parametrize("weight", [0.0, 1.0, 2.5])
def test_mismatch_ranks_the_right_label_above_a_wrong_one(variant, weight):
    loss = "bce" if variant == "cragan" else "wasserstein"  # RaGAN refuses a Wasserstein loss
    over = ["train.kimg=1", f"variant={variant}", "objective.gp_weight=0", f"objective.loss={loss}",
            f"objective.mismatch_weight={weight}"]
    cfg = load_config(None, over)
    obj = stub_objective(variant, StubG(), LabelStubD(), cfg, 4, (4,), kind="points")
    real, c = 6.0 * torch.eye(4)[:2], torch.tensor([0, 1])  # each real image shows its own label's coordinate
    stats = obj.step("D", real, c, torch.zeros(2, 3), c)
    if weight == 0:
        assert "mismatch" not in stats  # off: no extra pass of D
        return
    # D(x, y) = 6 and D(x, wrong) = 0 (G(0) is zeros, so D(G(z)) = 0 too): softplus(0 - 6) per image
    assert stats["mismatch"].item() == pytest.approx(F.softplus(torch.tensor(-6.0)).item(), rel=1e-5)
    if variant != "cragan":  # Wasserstein critic: 0 - 6, plus the weighted term
        assert stats["loss_D"].item() == pytest.approx(-6.0 + weight * stats["mismatch"].item(), rel=1e-5)
    # a label-blind D cannot rank: the term is log 2, and its gradient is the push to look at the label
    blind = stub_objective(variant, StubG(), StubD(torch.zeros(2, 4)), cfg, 4, (4,), kind="points")
    assert blind.step("D", real, c, torch.zeros(2, 3), c)["mismatch"].item() == pytest.approx(math.log(2))


def test_mismatch_is_off_by_default_and_refused_where_d_has_no_label_to_mismatch():
    assert load_config("mnist-dcgan", ["variant=cwgan-gp"]).objective.mismatch_weight == 0
    with pytest.raises(ConfigError, match="objective.mismatch_weight must be >= 0"):
        load_config("mnist-cwgan-gp", ["objective.mismatch_weight=-1"])
    over = ["train.kimg=1", "objective.mismatch_weight=1"]
    for variant, why in [("acgan", "needs a D that is given the label"), ("gan", "needs a D that is given"),
                         ("cyclegan", "has its own training steps")]:
        cfg = load_config(None, [*over, f"variant={variant}"])
        data = Dataset("stub", torch.zeros(2, 4), torch.arange(2), num_classes=2, kind="points")
        with pytest.raises(ConfigError, match=why):
            VARIANTS.get(variant).check(cfg, data)
    cfg = load_config(None, [*over, "variant=cgan"])  # one class: no wrong label to draw
    with pytest.raises(ConfigError, match="at least 2 classes"):
        VARIANTS.get("cgan").check(cfg, Dataset("stub", torch.zeros(2, 4), torch.zeros(2).long(), num_classes=1,
                                                kind="points"))


# ---- class accuracy --------------------------------------------------------------------------------------------


def test_class_accuracy_by_hand():
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [3.0, 0, 0], [0, 0, 3.0], [0, 3.0, 0]])  # predicts 0 1 0 2 1
    asked = torch.tensor([0, 1, 1, 2, 2])
    value, per_class = class_accuracy(logits, asked, 4)
    assert value == pytest.approx(3 / 5)
    assert per_class[:3] == pytest.approx([1.0, 0.5, 0.5]) and per_class[3] != per_class[3]  # class 3: never asked
    spec = METRICS.get("class_acc")
    assert spec.cheap and spec.higher_is_better and set(spec.requires) == {"conditional", "labels"}


def test_minibatch_std_with_labels_is_the_spread_within_each_class():
    gen = torch.Generator().manual_seed(0)
    per_class = torch.randn(3, 2, 4, 4, generator=gen)  # one image per class: a conditional collapse
    c = torch.tensor([0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2])  # plain groups of 4 (i, i+3, i+6, i+9) mix classes
    collapsed = per_class[c]
    layer = MinibatchStd()
    assert layer(collapsed)[:, 2].min() > 0.3  # mixed-class groups look varied to the plain statistic
    assert layer(collapsed, c)[:, 2].max() < 1e-3  # within each class there is no spread at all
    varied = torch.randn(10, 2, 4, 4, generator=gen)
    out = layer(varied, torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 3]))[:, 2, 0, 0]  # class 3 appears once
    expect = [(varied[r].var(0, unbiased=False) + 1e-8).sqrt().mean() for r in ([0, 1, 2], [3, 4, 5, 6], [7, 8])]
    assert out[:3].tolist() == pytest.approx([float(expect[0])] * 3, rel=1e-5)
    assert float(out[9]) == pytest.approx(float(torch.stack(expect).mean()), rel=1e-5)  # alone: the mean of the rest
    distinct = layer(varied[:4], torch.tensor([3, 0, 2, 1]))[:, 2, 0, 0]  # no class twice: the whole batch's spread
    batch = (varied[:4].var(0, unbiased=False) + 1e-8).sqrt().mean()
    assert distinct.tolist() == pytest.approx([float(batch)] * 4, rel=1e-5)


@pytest.mark.parametrize("arch", ["dcgan", "resnet", "mlp"])
def test_spectral_norm_wraps_the_initialised_weights(arch):
    # SN must be applied after the architecture's init: an in-place init on an SN'd layer's ``weight`` changes a
    # recomputed temporary, and the layer silently keeps PyTorch's default init (the DCGAN D did, before).
    overrides = [f"model.arch={arch}", "model.d_batchnorm=[false]"]
    if arch == "mlp":
        overrides += ["model.g_hidden=[32]", "model.d_hidden=[32]"]
    shape = (1, 28, 28)
    cond = Conditioning.named("concat", "aux")

    def build_d(sn: bool) -> nn.Module:
        torch.manual_seed(0)
        cfg = load_config("mnist-acgan", [*overrides, f"model.spectral_norm_d={str(sn).lower()}"])
        return build_models(cfg.model, shape, 10, cond)[1]

    plain, sn = build_d(False), build_d(True)
    wrapped = {n.replace(".parametrizations.weight.original", ".weight"): p for n, p in sn.named_parameters()}
    checked = 0
    for name, p in plain.named_parameters():
        if name.endswith("weight") and p.dim() > 1 and name in wrapped and not name.startswith("embed"):
            assert torch.equal(wrapped[name], p), name
            checked += 1
    assert checked >= 2 and any(".parametrizations." in n for n, _ in sn.named_parameters())
