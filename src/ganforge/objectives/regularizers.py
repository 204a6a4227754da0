"""Gradient regularisers for D.

- WGAN-GP (Gulrajani et al. 2017): lambda * E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat on random
  interpolates between real and generated samples.
- R1 (Mescheder et al. 2018): gamma / 2 * E[||grad_x D(x)||^2] on real samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Critic = Callable[[torch.Tensor], torch.Tensor]  # x -> logits [N]


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor,
                     pack: int = 1) -> torch.Tensor:
    """E[(||grad D(x_hat)|| - 1)^2] with x_hat = eps * real + (1 - eps) * fake; eps [N] in [0, 1].

    ``pack`` > 1: the critic scores packs of ``pack`` consecutive samples (PacGAN); the norm is taken over each
    pack's whole input, whose samples should share their eps, so x_hat lies between a real and a generated pack.
    """
    shape = (-1,) + (1,) * (real.dim() - 1)
    x_hat = (eps.view(shape) * real.detach() + (1 - eps.view(shape)) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.reshape(len(grad) // pack, -1).norm(2, dim=1) - 1.0) ** 2).mean()


def r1_penalty(critic: Critic, real: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(x)||^2] on real data (multiply by gamma / 2)."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()
