"""Progressively grown G and D (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability,
and Variation"), written from the paper, for square power-of-two images of 8..1024 px with any channel count.

Both networks hold every resolution from the start; two buffers say how much of it is in use: ``level`` (0: 4x4,
k: 4 * 2^k) and ``alpha``, the fade-in weight of the newest level (section 2, figure 2). While a level fades in,
G's output is (1 - alpha) * upsample(tRGB_{k-1}(h_{k-1})) + alpha * tRGB_k(h_k), and D mirrors it with
(1 - alpha) * fRGB_{k-1}(downsample(x)) + alpha * block_k(fRGB_k(x)). The buffers are part of the state dicts, so a
checkpoint, the EMA copy and the exported generator all know the current stage. G always returns full-resolution
images (a low-resolution stage is upsampled by pixel repetition) and D box-downsamples its input to the current
resolution first, so every stage trains on the same tensors.

The rest follows section 4 and appendix A: equalised learning rate on every layer, pixelwise feature
normalisation after each conv in G, leaky ReLU(0.2), a linear tRGB, minibatch standard deviation before D's last
block. Labels (not in the paper; as the other ganforge families): an embedding concatenated to z, and D's piece of
the ``Conditioning`` (projection onto the last features, an auxiliary classifier or a label map).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganforge.models.conditioning import Conditioning
from ganforge.models.equalized import (
    EqConv2d,
    EqLinear,
    downsample2x,
    lrelu,
    minibatch_stddev,
    pixel_norm,
    resize_to,
    upsample2x,
)
from ganforge.models.layers import DOut
from ganforge.models.stylegan2 import channels_at, check_resolution


@dataclass(frozen=True)
class ProGANArch:
    z_dim: int = 512
    g_channel_max: int = 512  # feature maps at resolution r: min(channel_base // r, channel_max)
    d_channel_max: int = 512
    channel_base: int = 8192
    embed_dim: int = 512
    mbstd_group: int = 4


def num_levels(resolution: int) -> int:
    """Levels above 4x4: 64 px -> 4 (8, 16, 32, 64)."""
    return resolution.bit_length() - 3


class Progressive(nn.Module):
    """Holds the stage buffers shared by the progressive G and D."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.resolution, self.levels = resolution, num_levels(resolution)
        self.register_buffer("level", torch.zeros([], dtype=torch.long))
        self.register_buffer("alpha", torch.ones([]))

    def set_stage(self, level: int, alpha: float) -> None:
        self.level.fill_(level)
        self.alpha.fill_(alpha)

    def stage(self) -> tuple[int, float]:
        return int(self.level), float(self.alpha)


class ProGANGenerator(Progressive):
    """G(z [N, z_dim], c [N] | None) -> images [N, C, R, R] at the current stage, repeated up to R."""

    def __init__(self, arch: ProGANArch, shape: tuple[int, ...], num_classes: int, cond: Conditioning) -> None:
        super().__init__(check_resolution(shape, "ProGAN"))
        self.z_dim, self.out_shape = arch.z_dim, tuple(shape)

        def ch(res: int) -> int:
            return channels_at(res, arch.channel_base, arch.g_channel_max)

        self.embed = cond.g.embedding(num_classes, arch.embed_dim)  # concatenated to z, or None
        in_dim = arch.z_dim + (arch.embed_dim if self.embed is not None else 0)
        self.c4 = ch(4)
        self.fc = EqLinear(in_dim, self.c4 * 16)  # the paper's 4x4 "conv" from a 1x1 latent
        self.conv4 = EqConv2d(self.c4, self.c4, 3)
        resolutions = [4 * 2**k for k in range(self.levels + 1)]
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqConv2d(ch(r // 2), ch(r), 3), EqConv2d(ch(r), ch(r), 3)]) for r in resolutions[1:]
        )
        self.torgb = nn.ModuleList(EqConv2d(ch(r), shape[0], 1) for r in resolutions)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        level, alpha = self.stage()
        x = z if self.embed is None else torch.cat([z, self.embed(c)], dim=1)
        h = lrelu(self.fc(pixel_norm(x))).view(len(z), self.c4, 4, 4)  # [N, C4, 4, 4]
        h = pixel_norm(lrelu(self.conv4(pixel_norm(h))))
        prev = h
        for conv_a, conv_b in self.blocks[:level]:
            prev = h
            h = pixel_norm(lrelu(conv_a(upsample2x(h))))
            h = pixel_norm(lrelu(conv_b(h)))  # [N, C_r, r, r]
        img = self.torgb[level](h)
        if level > 0 and alpha < 1:  # fade the new level in over the upsampled image of the one below
            img = torch.lerp(upsample2x(self.torgb[level - 1](prev)), img, alpha)
        return resize_to(img, self.resolution)  # [N, C, R, R]


class ProGANDiscriminator(Progressive):
    """D(x [N, C, R, R], c [N] | None) -> DOut; sees x box-downsampled to the current stage's resolution."""

    def __init__(self, arch: ProGANArch, shape: tuple[int, ...], num_classes: int, cond: Conditioning) -> None:
        super().__init__(check_resolution(shape, "ProGAN"))

        def ch(res: int) -> int:
            return channels_at(res, arch.channel_base, arch.d_channel_max)

        self.embed = cond.d.input_embedding(num_classes, self.resolution**2)  # label map as a channel, or None
        in_ch = shape[0] + (1 if self.embed is not None else 0)
        resolutions = [4 * 2**k for k in range(self.levels + 1)]
        self.fromrgb = nn.ModuleList(EqConv2d(in_ch, ch(r), 1) for r in resolutions)
        self.blocks = nn.ModuleList(  # blocks[k - 1]: level k (r x r) -> level k - 1 (r/2 x r/2)
            nn.ModuleList([EqConv2d(ch(r), ch(r), 3), EqConv2d(ch(r), ch(r // 2), 3)]) for r in resolutions[1:]
        )
        c4 = ch(4)
        self.mbstd_group = arch.mbstd_group
        self.conv = EqConv2d(c4 + 1, c4, 3)
        self.fc = EqLinear(c4 * 16, c4)
        self.out = EqLinear(c4, 1)
        self.aux = cond.d.aux_head(c4, num_classes)
        self.proj = cond.d.projection(c4, num_classes)

    def _block(self, k: int, h: torch.Tensor) -> torch.Tensor:
        conv_a, conv_b = self.blocks[k - 1]
        return downsample2x(lrelu(conv_b(lrelu(conv_a(h)))))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> DOut:
        level, alpha = self.stage()
        if self.embed is not None:
            label_map = self.embed(c).view(len(x), 1, self.resolution, self.resolution).to(x.dtype)
            x = torch.cat([x, label_map], dim=1)
        x = resize_to(x, 4 * 2**level)  # [N, C, r, r]
        h = lrelu(self.fromrgb[level](x))
        if level > 0:
            h = self._block(level, h)
            if alpha < 1:  # fade the new level in over the downsampled input of the one below
                h = torch.lerp(lrelu(self.fromrgb[level - 1](downsample2x(x))), h, alpha)
            for k in range(level - 1, 0, -1):
                h = self._block(k, h)
        h = lrelu(self.conv(minibatch_stddev(h, self.mbstd_group)))  # [N, C4, 4, 4]
        feat = lrelu(self.fc(h.flatten(1)))  # [N, C4]
        logits = self.out(feat).squeeze(1)
        if self.proj is not None:
            logits = logits + self.proj.project(c, feat)
        return DOut(logits, self.aux(feat) if self.aux is not None else None, feat)


def fade_images(x: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
    """Real images as D should see them at a stage: at the level's resolution, blended with the level below while
    it fades in, repeated back up to full size. x [N, C, R, R] -> [N, C, R, R]."""
    r = 4 * 2**level
    low = resize_to(x, r)
    if level > 0 and alpha < 1:
        low = torch.lerp(upsample2x(resize_to(x, r // 2)), low, alpha)
    return resize_to(low, x.shape[-1])
