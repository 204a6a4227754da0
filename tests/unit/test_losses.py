"""Every adversarial loss against values worked out by hand on fixed logits, and the objective's
AC-GAN, feature-matching and label-smoothing terms against their formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError
from ganforge.models.layers import DOut
from ganforge.objectives import LOSSES
from ganforge.presets import load_config
from tests.conftest import stub_objective

REAL = [2.0, -1.0]  # D's logits on a real batch
GEN = [0.5, -3.0]  # D's logits on a generated batch


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def d_loss(name: str, smoothing: float = 0.0) -> float:
    return LOSSES.get(name).d_loss(torch.tensor(REAL), torch.tensor(GEN), smoothing).item()


def g_loss(name: str) -> float:
    return LOSSES.get(name).g_loss(torch.tensor(GEN)).item()


def test_every_registered_loss_has_a_hand_computed_case():
    assert set(LOSSES.names()) <= set(HAND_D) and set(LOSSES.names()) <= set(HAND_G), "add the new loss below"


# -log D(x) - log(1 - D(G(z))), D = sigmoid(logit)
HAND_D = {
    "bce": mean(-math.log(sigmoid(r)) for r in REAL) + mean(-math.log(1 - sigmoid(g)) for g in GEN),
    "minimax": mean(-math.log(sigmoid(r)) for r in REAL) + mean(-math.log(1 - sigmoid(g)) for g in GEN),
    "ls": 0.5 * mean((r - 1) ** 2 for r in REAL) + 0.5 * mean(g**2 for g in GEN),  # 0.5*2.5 + 0.5*4.625
    "hinge": mean(max(0.0, 1 - r) for r in REAL) + mean(max(0.0, 1 + g) for g in GEN),  # (0+2)/2 + (1.5+0)/2
    "wasserstein": mean(GEN) - mean(REAL),  # -1.25 - 0.5
}
HAND_G = {
    "bce": mean(-math.log(sigmoid(g)) for g in GEN),  # non-saturating
    "minimax": mean(math.log(1 - sigmoid(g)) for g in GEN),  # saturating: G minimises log(1 - D(G(z)))
    "ls": 0.5 * mean((g - 1) ** 2 for g in GEN),  # 0.5 * (0.25 + 16) / 2
    "hinge": -mean(GEN),
    "wasserstein": -mean(GEN),
}


@pytest.mark.parametrize("name", sorted(HAND_D))
def test_d_loss_matches_hand_computation(name):
    assert d_loss(name) == pytest.approx(HAND_D[name], rel=1e-6)


@pytest.mark.parametrize("name", sorted(HAND_G))
def test_g_loss_matches_hand_computation(name):
    assert g_loss(name) == pytest.approx(HAND_G[name], rel=1e-6)


def test_hand_values_written_out():
    # The closed forms above, as numbers, so a wrong formula in the test itself would show up too.
    assert HAND_D["ls"] == pytest.approx(3.5625)
    assert HAND_G["ls"] == pytest.approx(4.0625)
    assert HAND_D["hinge"] == pytest.approx(1.75)
    assert HAND_D["wasserstein"] == pytest.approx(-1.75)
    assert HAND_D["bce"] == pytest.approx(1.2314266, rel=1e-6)


def test_bce_agrees_with_torch_binary_cross_entropy():
    real, gen = torch.tensor(REAL), torch.tensor(GEN)
    expected = F.binary_cross_entropy_with_logits(real, torch.ones(2)) + F.binary_cross_entropy_with_logits(
        gen, torch.zeros(2)
    )
    assert d_loss("bce") == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name", ["bce", "minimax"])
def test_one_sided_label_smoothing_moves_only_the_real_target(name):
    s = 0.1
    t = 1 - s  # real target 0.9, fake target stays 0
    real_term = mean(-(t * math.log(sigmoid(r)) + (1 - t) * math.log(1 - sigmoid(r))) for r in REAL)
    fake_term = mean(-math.log(1 - sigmoid(g)) for g in GEN)
    assert d_loss(name, s) == pytest.approx(real_term + fake_term, rel=1e-6)
    # The generated half of the loss is the same with and without smoothing.
    loss = LOSSES.get(name)
    zero_real = torch.full((2,), 50.0)  # real term ~0 without smoothing
    diff = loss.d_loss(zero_real, torch.tensor(GEN), s) - loss.d_loss(zero_real, torch.tensor(GEN), 0.0)
    assert diff.item() == pytest.approx(s * 50.0, rel=1e-4)  # only -(1-t) log(1 - sigmoid(50)) = s * ~50 is added


def test_ls_label_smoothing_moves_the_real_target():
    s = 0.2
    expected = 0.5 * mean((r - (1 - s)) ** 2 for r in REAL) + 0.5 * mean(g**2 for g in GEN)
    assert d_loss("ls", s) == pytest.approx(expected, rel=1e-6)


def test_losses_are_stable_on_extreme_logits():
    big = torch.tensor([1e4, -1e4])
    for entry in LOSSES:
        assert torch.isfinite(entry.obj.d_loss(big, big, 0.1 if entry.obj.smoothing else 0.0))
        assert torch.isfinite(entry.obj.g_loss(big))


# ---------------------------------------------------------------------------------------------
# the objective's extra terms, on a stub D whose outputs are fixed


class StubG(nn.Module):
    z_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3, 4))

    def forward(self, z, c=None):
        return z @ self.w  # [N, 4]


class StubD(nn.Module):
    """D(x) = sum(x) as the logit, x itself as the features, fixed class logits for the aux head."""

    def __init__(self, aux_logits: torch.Tensor | None = None) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.aux_logits = aux_logits

    def forward(self, x, c=None):
        aux = self.aux_logits * self.scale if self.aux_logits is not None else None
        return DOut(x.sum(1) * self.scale, aux, x * self.scale)


def objective(overrides, variant="gan", aux_logits=None, num_classes=3):
    cfg = load_config(None, ["train.kimg=1", *overrides])
    return stub_objective(variant, StubG(), StubD(aux_logits), cfg, num_classes, (4,), kind="points")


def test_acgan_aux_loss_is_cross_entropy_on_logits_not_softmax():
    aux = torch.tensor([[2.0, 0.5, -1.0], [0.1, 3.0, 0.2]])
    gen_c = torch.tensor([0, 2])
    obj = objective(["objective.loss=wasserstein"], "acgan", aux)
    gen_z = torch.randn(2, 3)
    stats = obj.step("G", torch.zeros(2, 4), gen_c, gen_z, gen_c)
    adv = -(gen_z @ torch.ones(3, 4)).sum(1).mean()  # wasserstein G loss on D(x) = sum(x)
    ce = F.cross_entropy(aux, gen_c)
    # by hand: -log softmax(aux)[i, c_i], averaged
    by_hand = mean(-(aux[i, gen_c[i]] - torch.logsumexp(aux[i], 0)).item() for i in range(2))
    assert ce.item() == pytest.approx(by_hand, rel=1e-6)
    assert stats["loss_G"].item() == pytest.approx((adv + ce).item(), rel=1e-5)
    buggy = F.cross_entropy(torch.softmax(aux, 1), gen_c)  # softmax applied twice: a widely copied bug
    assert abs(stats["loss_G"].item() - (adv + buggy).item()) > 0.1


def test_acgan_d_loss_adds_aux_on_real_and_generated():
    aux = torch.tensor([[2.0, 0.5, -1.0], [0.1, 3.0, 0.2]])
    c = torch.tensor([1, 2])
    obj = objective(["objective.loss=hinge", "objective.aux_weight=0.5"], "acgan", aux)
    stats = obj.step("D", torch.zeros(2, 4), c, torch.zeros(2, 3), c)
    ce = F.cross_entropy(aux, c)
    assert stats["loss_aux"].item() == pytest.approx(2 * ce.item(), rel=1e-6)  # same stub logits for both halves
    hinge = 1.0 + 1.0  # D(x) = 0 on both halves: relu(1 - 0) + relu(1 + 0)
    assert stats["loss_D"].item() == pytest.approx(hinge + 0.5 * 2 * ce.item(), rel=1e-6)


def test_feature_matching_matches_mean_features():
    obj = objective(["objective.feature_matching=true"])
    real = torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 2.0, 1.0, 0.0]])
    gen_z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # G(z) rows: [1,1,1,1] and [0,0,0,0]
    stats = obj.step("G", real, None, gen_z, None)
    # E f(real) = [2, 2, 2, 2]; E f(gen) = [0.5] * 4; sum of squared differences = 4 * 1.5^2
    assert stats["loss_G"].item() == pytest.approx(9.0)


def test_label_smoothing_reaches_the_d_loss():
    obj = objective(["objective.label_smoothing=0.1"])
    real = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.0, -0.25, 0.0, 0.0]])  # D(x) = 2.0 and -0.25
    stats = obj.step("D", real, None, torch.zeros(2, 3), None)
    expected = LOSSES.get("bce").d_loss(torch.tensor([2.0, -0.25]), torch.zeros(2), 0.1)
    assert stats["loss_D"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_smoothing_with_a_loss_that_cannot_use_it_is_refused():
    with pytest.raises(ConfigError, match="label_smoothing"):
        objective(["objective.loss=hinge", "objective.label_smoothing=0.1"])


def test_phases_carry_n_critic_and_lazy_r1():
    obj = objective(["objective.n_critic=5", "objective.r1_gamma=1", "objective.r1_interval=4"])
    phases = {p.name: p for p in obj.phases}
    assert [p.name for p in obj.phases] == ["D", "Dreg", "G"]
    assert phases["D"].repeats == 5 and phases["Dreg"].interval == 4 and phases["G"].opt == "G"
    assert phases["D"].shows_real and not phases["Dreg"].shows_real and not phases["G"].shows_real
