"""Coupled networks of CoGAN (Liu & Tuzel 2016, "Coupled Generative Adversarial Networks").

- ``CoupledGenerator``: z -> a shared trunk (the first, high-level layers: fc to an s x s map, then all but the last
  2x upsampling, DCGAN-style with batch norm) -> one head per domain (the last transposed conv + tanh). The same z
  through both heads gives a pair: the same digit (or anatomy) in domain A and in domain B.
- ``CoupledDiscriminator``: one head per domain (the first, low-level conv) -> a shared body (the remaining
  stride-2 convs and the linear logit).

Tying is by construction: a shared layer is ONE module, so its parameters are one tensor that both domains'
losses reach. ``tie=False`` builds two independent trunks and bodies instead (two separate GANs, the paper's
ablation: no pairing emerges).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ganforge.models.dcgan import init_dcgan_weights, upsampling_plan

Domain = Literal["A", "B"]


def _trunk(z_dim: int, ch: int, start: int, n_up: int) -> tuple[nn.Module, int]:
    """z [N, z_dim] -> features [N, ch_out, H/2, W/2]: fc to [ch, s, s], then n_up - 1 upsamplings."""
    layers: list[nn.Module] = [
        nn.Linear(z_dim, ch * start * start, bias=False),
        nn.Unflatten(1, (ch, start, start)),
        nn.BatchNorm2d(ch),
        nn.ReLU(),
    ]
    for _ in range(n_up - 1):
        out = max(ch // 2, 16)
        layers += [nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        ch = out
    return nn.Sequential(*layers), ch


class CoupledGenerator(nn.Module):
    """z [N, z_dim] -> (x_A [N, C_A, H, W], x_B [N, C_B, H, W]) in [-1, 1], from one shared trunk."""

    def __init__(self, z_dim: int, ch: int, shape_a: tuple[int, ...], shape_b: tuple[int, ...], tie: bool = True):
        super().__init__()
        self.z_dim, self.tie = z_dim, tie
        self.shape_a, self.shape_b = tuple(shape_a), tuple(shape_b)
        start, n_up = upsampling_plan(shape_a[-1])
        self.trunk, width = _trunk(z_dim, ch, start, n_up)
        self.trunk_B = None if tie else _trunk(z_dim, ch, start, n_up)[0]  # untied: B has its own
        self.head_A = nn.Sequential(nn.ConvTranspose2d(width, shape_a[0], 4, 2, 1), nn.Tanh())
        self.head_B = nn.Sequential(nn.ConvTranspose2d(width, shape_b[0], 4, 2, 1), nn.Tanh())
        init_dcgan_weights(self)  # N(0, 0.02) convs: at the default init the pair stayed salt-noise blobs for 10 kimg

    def pair(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(z)  # [N, width, H/2, W/2]: the high-level content both domains share
        h_b = h if self.trunk_B is None else self.trunk_B(z)
        return self.head_A(h), self.head_B(h_b)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, domain: Domain = "A") -> torch.Tensor:
        """One domain's images (``generate`` writes both with ``pair``). ``c`` is unused: CoGAN is unconditional."""
        a, b = self.pair(z)
        return a if domain == "A" else b


def _body(ch: int, n_down: int, start: int) -> nn.Module:
    """Features [N, ch, H/2, W/2] -> logits [N]: n_down - 1 stride-2 convs with batch norm (DCGAN's D; each call
    holds one domain's batch, so the statistics never mix domains), then a linear layer."""
    layers: list[nn.Module] = []
    for _ in range(n_down - 1):
        layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2)]
        ch *= 2
    layers += [nn.Flatten(), nn.Linear(ch * start * start, 1), nn.Flatten(0)]
    return nn.Sequential(*layers)


class CoupledDiscriminator(nn.Module):
    """x [N, C_domain, H, W] -> logits [N]: the domain's own first conv, then the shared body."""

    def __init__(self, ch: int, shape_a: tuple[int, ...], shape_b: tuple[int, ...], tie: bool = True):
        super().__init__()
        start, n_down = upsampling_plan(shape_a[-1])
        self.head_A = nn.Sequential(nn.Conv2d(shape_a[0], ch, 4, 2, 1), nn.LeakyReLU(0.2))
        self.head_B = nn.Sequential(nn.Conv2d(shape_b[0], ch, 4, 2, 1), nn.LeakyReLU(0.2))
        self.body = _body(ch, n_down, start)
        self.body_B = None if tie else _body(ch, n_down, start)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor, domain: Domain) -> torch.Tensor:
        if domain == "A":
            return self.body(self.head_A(x))
        return (self.body if self.body_B is None else self.body_B)(self.head_B(x))
