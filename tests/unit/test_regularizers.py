"""Gradient penalty and R1 against their analytic values, and their wiring into the objective."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.models.layers import DOut
from ganforge.objectives.regularizers import gradient_penalty, r1_penalty
from ganforge.presets import load_config
from tests.conftest import stub_objective


def linear_critic(w: torch.Tensor):
    return lambda x: (x.flatten(1) * w.flatten()).sum(1)  # D(x) = w . x, so grad_x D = w everywhere


@pytest.mark.parametrize("norm", [0.5, 1.0, 3.0])
def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared(norm):
    torch.manual_seed(0)
    w = torch.randn(1, 3, 4, 4)
    w = (w / w.norm() * norm).requires_grad_(True)
    real, fake = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4)
    gp = gradient_penalty(linear_critic(w), real, fake, torch.rand(8))
    assert gp.item() == pytest.approx((norm - 1.0) ** 2, abs=1e-5)  # (||w|| - 1)^2
    # and its gradient with respect to the critic's weights: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    (grad_w,) = torch.autograd.grad(gp, w)
    assert torch.allclose(grad_w, 2 * (norm - 1.0) * w.detach() / norm, atol=1e-5)


def test_gradient_penalty_is_taken_on_interpolates():
    real, fake = torch.zeros(4, 2), torch.ones(4, 2)
    eps = torch.tensor([0.0, 0.25, 0.5, 1.0])
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return (x**2).sum(1)  # grad = 2x: the penalty depends on where x_hat lies

    gp = gradient_penalty(critic, real, fake, eps)
    x_hat = seen[0]
    assert torch.allclose(x_hat, (1 - eps)[:, None].expand(4, 2))  # eps * real + (1 - eps) * fake
    norms = 2 * x_hat.norm(dim=1)
    assert gp.item() == pytest.approx(((norms - 1) ** 2).mean().item(), rel=1e-6)


def test_gradient_penalty_does_not_backpropagate_into_g():
    fake = torch.randn(4, 3, requires_grad=True)
    gp = gradient_penalty(linear_critic(torch.ones(3) * 2), torch.randn(4, 3), fake, torch.rand(4))
    assert not gp.requires_grad or torch.autograd.grad(gp, fake, allow_unused=True)[0] is None


def test_r1_of_known_critics():
    w = torch.tensor([3.0, 4.0])
    assert r1_penalty(linear_critic(w), torch.randn(5, 2)).item() == pytest.approx(25.0)  # ||w||^2
    real = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    quad = r1_penalty(lambda x: 0.5 * (x**2).sum(1), real)  # grad = x -> mean ||x||^2 = (5 + 9) / 2
    assert quad.item() == pytest.approx(7.0)


# ---------------------------------------------------------------------------------------------
# wiring into the GAN family's objective


class LinearD(nn.Module):
    def __init__(self, dim: int, norm: float) -> None:
        super().__init__()
        w = torch.ones(dim)
        self.w = nn.Parameter(w / w.norm() * norm)

    def forward(self, x, c=None):
        return DOut((x.flatten(1) * self.w).sum(1), None, x.flatten(1))


class ConstG(nn.Module):
    z_dim = 2

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(dim))

    def forward(self, z, c=None):
        return z.sum(1, keepdim=True) + self.b  # [N, dim]


def make(overrides, D, dim=6):
    cfg = load_config(None, ["train.kimg=1", *overrides])
    return stub_objective("gan", ConstG(dim), D, cfg, 0, (dim,), kind="points")


def test_objective_adds_lambda_times_penalty_for_wgan_gp():
    D = LinearD(6, norm=2.0)
    obj = make(["variant=wgan-gp"], D)
    real, z = torch.randn(8, 6), torch.randn(8, 2)
    stats = obj.step("D", real, None, z, None)
    assert stats["gp"].item() == pytest.approx(1.0, abs=1e-5)  # (2 - 1)^2
    fake = z.sum(1, keepdim=True).expand(8, 6)
    wasserstein = (fake @ D.w - real @ D.w).mean()
    assert stats["loss_D"].item() == pytest.approx(wasserstein.item() + 10.0 * 1.0, rel=1e-5)


def test_lazy_r1_phase_scales_by_gamma_half_and_interval():
    D = LinearD(6, norm=3.0)
    obj = make(["objective.r1_gamma=2", "objective.r1_interval=4"], D)
    stats = obj.step("Dreg", torch.randn(5, 6), None, torch.randn(5, 2), None)
    assert stats["r1"].item() == pytest.approx(9.0, rel=1e-5)
    # d/dw of (gamma / 2) * interval * ||w||^2 = 2 * 2/2 * 4 * w
    assert torch.allclose(D.w.grad, 8 * D.w.detach(), rtol=1e-5)


def test_gradient_penalty_with_batch_norm_in_d_is_refused():
    D = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4))
    with pytest.raises(ConfigError, match="d_batchnorm"):
        make(["variant=wgan-gp"], D)


def test_wgan_gp_variant_defaults():
    cfg = load_config(None, ["train.kimg=1", "variant=wgan-gp"])
    assert (cfg.objective.loss, cfg.objective.gp_weight, cfg.objective.n_critic) == ("wasserstein", 10.0, 5)
    assert cfg.model.d_batchnorm == (False,) and cfg.optim.beta2 == 0.9
    phases = make(["variant=wgan-gp"], LinearD(6, 1.0)).phases
    assert phases[0].name == "D" and phases[0].repeats == 5
