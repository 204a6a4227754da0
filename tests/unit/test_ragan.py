"""RaGAN's relativistic average losses against values worked out by hand on fixed logits, and the
direction of G's gradient through the real logits' term."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.models.layers import DOut
from ganforge.presets import load_config
from ganforge.training.setup import prepare
from ganforge.variants import VARIANTS
from ganforge.variants.gan import Batch
from ganforge.variants.ragan import relative_logits

REAL = [2.0, -1.0]  # C(x_r)
GEN = [0.5, -3.0]  # C(x_f)


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def objective(loss: str = "bce"):
    cfg = load_config("mnist-mlp", ["variant=ragan", f"objective.loss={loss}", "train.kimg=1", "data.limit=64"])
    setup = prepare(cfg)
    nets = setup.build_networks()
    return setup.family.objective(cfg, nets, setup.train_set, setup.train_set.x, None)


def out(logits) -> DOut:
    t = torch.tensor(logits, requires_grad=True)
    return DOut(t, None, t[:, None])


def test_relative_logits_by_hand():
    real_rel, gen_rel = relative_logits(torch.tensor(REAL), torch.tensor(GEN))
    # E C(x_f) = -1.25, E C(x_r) = 0.5
    assert real_rel.tolist() == pytest.approx([3.25, 0.25])
    assert gen_rel.tolist() == pytest.approx([0.0, -3.5])


def test_rasgan_d_and_g_losses_by_hand(monkeypatch):
    obj = objective("bce")
    real_rel, gen_rel = [3.25, 0.25], [0.0, -3.5]
    # D: -log sigmoid(real_rel) - log(1 - sigmoid(gen_rel)) = softplus(-real_rel) + softplus(gen_rel), batch means
    hand_d = sum(softplus(-r) for r in real_rel) / 2 + sum(softplus(g) for g in gen_rel) / 2
    assert obj.d_adversarial(out(REAL), out(GEN)).item() == pytest.approx(hand_d, rel=1e-6)
    assert hand_d == pytest.approx(0.66844, abs=1e-4)
    # G: the roles swapped: softplus(-gen_rel) + softplus(real_rel)
    hand_g = sum(softplus(-g) for g in gen_rel) / 2 + sum(softplus(r) for r in real_rel) / 2
    monkeypatch.setattr(obj, "run_D", lambda img, c: out(REAL))  # D's logits on the real batch
    batch = Batch(torch.zeros(2, 1), None, torch.zeros(2, 1), None)
    assert obj.g_adversarial(batch, out(GEN)).item() == pytest.approx(hand_g, rel=1e-6)
    assert hand_g == pytest.approx(4.16844, abs=1e-4)


def test_rahinge_by_hand():
    obj = objective("hinge")
    # max(0, 1 - real_rel) + max(0, 1 + gen_rel): (0 + 0.75) / 2 + (1 + 0) / 2
    assert obj.d_adversarial(out(REAL), out(GEN)).item() == pytest.approx(0.875)


def test_g_gradient_also_flows_through_the_average_fake_logit(monkeypatch):
    obj = objective("bce")
    monkeypatch.setattr(obj, "run_D", lambda img, c: out(REAL))
    gen = out(GEN)
    obj.g_adversarial(Batch(torch.zeros(2, 1), None, torch.zeros(2, 1), None), gen).backward()
    # d/d gen_i of [mean softplus(-(g - mr)) + mean softplus(r - mean g)]:
    #   -sigmoid(-(g_i - mr)) / 2  -  mean_j sigmoid(r_j - mean g) / 2
    mean_g, mean_r = sum(GEN) / 2, sum(REAL) / 2
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    through_real = sum(sig(r - mean_g) for r in REAL) / 2 / 2
    hand = [-sig(-(g - mean_r)) / 2 - through_real for g in GEN]
    assert gen.logits.grad.tolist() == pytest.approx(hand, rel=1e-6)


def test_ragan_refuses_wasserstein():
    cfg = load_config("mnist-mlp", ["variant=ragan", "objective.loss=wasserstein", "train.kimg=1", "data.limit=64"])
    with pytest.raises(ConfigError, match="just WGAN"):
        prepare(cfg)


def test_both_forms_are_registered():
    assert not VARIANTS.get("ragan").needs_labels and VARIANTS.get("cragan").needs_labels


def test_cragan_projection_is_the_relativistic_loss_on_the_projection_d():
    """cragan-projection: cgan-projection's networks (embedded label in G, projection D without a label input)
    trained with the relativistic average loss; its preset is mnist-cgan-projection-progan with that loss."""
    from ganforge.variants.ragan import RelativisticObjective

    cfg = load_config("mnist-cragan-projection", ["train.kimg=1", "data.limit=64", "train.batch_size=8"])
    assert cfg.variant == "cragan-projection" and cfg.objective.loss == "bce"
    base = load_config("mnist-cgan-projection-progan")
    # the same networks, regulariser and optimiser as the projection preset: only the loss's form differs
    assert (cfg.model, cfg.optim, cfg.objective) == (base.model, base.optim, base.objective)
    setup = prepare(cfg)
    nets = setup.build_networks()
    D = nets["D"]
    assert D.embed is None and D.proj is not None and nets["G"].embed is not None
    obj = setup.family.objective(cfg, nets, setup.train_set, setup.train_set.x, setup.train_set.y)
    assert isinstance(obj, RelativisticObjective)
    # D's loss is RaSGAN's on the projection D's logits: checked against the hand formula on fixed logits
    real_rel, gen_rel = [3.25, 0.25], [0.0, -3.5]
    hand_d = sum(softplus(-r) for r in real_rel) / 2 + sum(softplus(g) for g in gen_rel) / 2
    assert obj.d_adversarial(out(REAL), out(GEN)).item() == pytest.approx(hand_d, rel=1e-6)
    # and the label reaches D's logit only through the projection: a wrong label moves it by (e_w - e_y) . phi(x)
    x = setup.train_set.x[:2].float()
    with torch.no_grad():
        a, b = D(x, torch.tensor([1, 1])), D(x, torch.tensor([4, 4]))
    assert torch.equal(a.features, b.features)
    moved = (D.proj.weight[4] - D.proj.weight[1]) @ a.features.T
    assert (b.logits - a.logits).tolist() == pytest.approx(moved.tolist(), rel=1e-4, abs=1e-6)
    assert VARIANTS.get("cragan-projection").needs_labels
