"""Image-to-image networks: the U-Net and ResNet generators and the PatchGAN discriminator.

- ``UNetGenerator``: pix2pix's encoder-decoder with skip connections (Isola et al. 2017, appendix 6.1.1):
  C64-C128-C256-C512... down to a 2x2 bottleneck, mirrored up, each decoder stage concatenated with the encoder
  stage of the same size. Instance norm (pix2pix trains with batch size 1, where batch norm is instance norm).
  Both generators upsample by resize-convolution instead of the papers' transposed convolutions (see ``_up``).
- ``ResnetGenerator``: CycleGAN's c7s1-k, two stride-2 downsamplings, ``n_blocks`` residual blocks, two
  upsamplings, c7s1-out, tanh (Zhu et al. 2017, appendix 7.2; Johnson et al. 2016).
- ``PatchDiscriminator``: the 70x70 PatchGAN of both papers for 256 px (C64-C128-C256-C512, a 1-channel conv),
  with ``n_layers`` stride-2 stages so a 32-64 px image still gets a grid of patch scores [N, 1, h, w].
- ``Translator``: the exported network of a translation family, ``AtoB`` and (CycleGAN) ``BtoA``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Direction = Literal["AtoB", "BtoA"]


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=True)


def _up(c_in: int, c_out: int, bias: bool = False) -> nn.Sequential:
    """2x upsampling: nearest-neighbour resize, then a 3x3 conv. The papers' stride-2 transposed convs left a
    fixed grid of saturated dots on 32 px CPU runs (the checkerboard of Odena et al. 2016, "Deconvolution and
    Checkerboard Artifacts"); resize-convolution cannot make one."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))


class UNetGenerator(nn.Module):
    """x [N, in_ch, H, W] -> [N, out_ch, H, W] in [-1, 1]; H = W a power of two >= 2**depth."""

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 32, depth: int = 5, dropout: float = 0.0) -> None:
        super().__init__()
        widths = [ngf * min(2**i, 8) for i in range(depth)]  # 64-128-256-512-512... for ngf 64
        self.down = nn.ModuleList()
        prev = in_ch
        for i, w in enumerate(widths):  # Ck: conv 4x4 stride 2, norm (not on the first or the bottleneck), LeakyReLU
            norm = 0 < i < depth - 1
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(prev, w, 4, 2, 1, bias=not norm), _norm(w) if norm else nn.Identity(), nn.LeakyReLU(0.2)
                )
            )
            prev = w
        self.up = nn.ModuleList()
        for i in reversed(range(depth - 1)):  # up to the size of encoder stage i, then concatenated with it
            w = widths[i]
            drop = nn.Dropout(dropout) if dropout > 0 and i >= depth - 4 else nn.Identity()  # the 3 innermost
            self.up.append(nn.Sequential(_up(prev, w), _norm(w), drop, nn.ReLU()))
            prev = 2 * w
        self.out = nn.Sequential(_up(prev, out_ch, bias=True), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck has no partner
        for block in self.up:
            x = torch.cat([block(x), skips.pop()], dim=1)  # [N, 2w, h, w]
        return self.out(x)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=False),
            _norm(ch),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=False),
            _norm(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """x [N, in_ch, H, W] -> [N, out_ch, H, W] in [-1, 1]; H, W divisible by 4."""

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 32, n_blocks: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7, bias=False), _norm(ngf), nn.ReLU()]
        for k in (1, 2):  # d2ngf, d4ngf
            layers += [nn.Conv2d(ngf * k, ngf * 2 * k, 3, 2, 1, bias=False), _norm(ngf * 2 * k), nn.ReLU()]
        layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
        for k in (4, 2):  # u2ngf, ungf (resize-convolutions; the paper's transposed convs make checkerboards)
            layers += [_up(ngf * k, ngf * k // 2), _norm(ngf * k // 2), nn.ReLU()]

        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """x [N, in_ch, H, W] -> patch logits [N, 1, h, w]: each judges one receptive field (34 px for n_layers 2)."""

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]  # no norm on the first
        prev = ndf
        for i in range(1, n_layers + 1):  # stride 2, then one stride-1 stage, as the 70x70 PatchGAN
            w = ndf * min(2**i, 8)
            layers += [nn.Conv2d(prev, w, 4, 2 if i < n_layers else 1, 1, bias=False), _norm(w), nn.LeakyReLU(0.2)]
            prev = w
        layers.append(nn.Conv2d(prev, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Translator(nn.Module):
    """What a translation family exports: ``AtoB`` and, for two-way families, ``BtoA``."""

    def __init__(self, AtoB: nn.Module, BtoA: nn.Module | None = None) -> None:
        super().__init__()
        self.AtoB, self.BtoA = AtoB, BtoA

    @property
    def directions(self) -> tuple[Direction, ...]:
        return ("AtoB", "BtoA") if self.BtoA is not None else ("AtoB",)

    def forward(self, x: torch.Tensor, direction: Direction = "AtoB") -> torch.Tensor:
        net = self.AtoB if direction == "AtoB" else self.BtoA
        if net is None:
            raise ValueError(f"this translator has no {direction} network")
        return net(x)
