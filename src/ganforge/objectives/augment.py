"""Augmentation.

- DiffAugment (Zhao et al. 2020): colour, translation and cutout applied to *both* real and generated
  images right before D, differentiably, so G's gradients flow through it.
- Classic augmentation of real images only (random rotation, shift, zoom), as one study used.

All randomness comes from torch's global generator, whose state every checkpoint saves.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ganforge.config import AugmentConfig
from ganforge.errors import ConfigError

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise ConfigError(f"unknown augment.diffaugment policy {name!r}; choose from {', '.join(POLICIES)}.")
    return names


def diff_augment(
    x: torch.Tensor,
    policy: tuple[str, ...],
    mask_channels: int = 0,
    per_batch: bool = False,
    fill: float = 0.0,
    p: torch.Tensor | None = None,
) -> torch.Tensor:
    """x [N, C, H, W] -> augmented [N, C, H, W]; differentiable with respect to x.

    With ``mask_channels`` (paired image + mask data) "color" changes the image channels only; translation and
    cutout move and cut image and mask together, so a mask keeps covering its lesion.

    ``per_batch``: one draw of each op's parameters for the whole batch instead of one per image. Each image still
    sees the paper's distribution of augmentations, but the spread *within* a batch is the content's alone: a
    collapsed batch stays identical after augmentation, so batch norm or a minibatch-std channel in D can still see
    it. With per-image draws on 28 px digits, translation + cutout give a batch of copies of one digit 98% of a real
    batch's pixel spread (issue 11: the cGAN then collapsed to one image per class).

    ``fill``: what translation shifts in and cutout paints (the reference code's 0 is mid-grey on [-1, 1] pixels).

    ``p`` (a 0-dim tensor, or None for always): each op is applied to each draw (image, or batch) with probability
    p, as in ADA. The same random numbers are drawn whatever p is, so a run that adapts p stays reproducible.
    """
    n = 1 if per_batch else len(x)  # parameter draws; [1, ...] parameters broadcast over the batch
    for name in policy:
        if name == "color" and mask_channels:
            out = torch.cat([_color(x[:, :-mask_channels], n), x[:, -mask_channels:]], 1)
        elif name == "color":
            out = _color(x, n)
        else:
            out = _GEOMETRIC[name](x, n, fill=fill)
        if p is not None:
            apply = torch.rand(n, 1, 1, 1, device=x.device) < p  # [n, 1, 1, 1]; n = N or 1
            out = torch.where(apply, out, x)
        x = out
    return x


def _color(x: torch.Tensor, n: int) -> torch.Tensor:
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)  # brightness
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean  # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, n: int, fill: float = 0.0, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by a whole number of pixels, uniform in [-s, s] with s = round(ratio * size); the pixels
    shifted in from outside take the value ``fill``."""
    _, _, h, w = x.shape
    size = torch.tensor([w, h], device=x.device)
    s = torch.round(size * ratio).long()  # [2] max shift in pixels (x, y)
    shift = torch.floor(torch.rand(n, 2, device=x.device) * (2 * s + 1)) - s  # [n, 2] integers in [-s, s]
    shift = shift.expand(len(x), 2)  # [N, 2]: n is N, or 1 (one shift for the batch)
    theta = torch.zeros(len(x), 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = (-2 * shift / size).to(x.dtype)  # pixels -> [-1, 1] units: exact whole-pixel moves
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Zero padding of x - fill: the outside reads as fill (fill 0 is the reference implementation's zero pad).
    return F.grid_sample(x - fill, grid, mode="nearest", padding_mode="zeros", align_corners=False) + fill


def _cutout(x: torch.Tensor, n: int, fill: float = 0.0, ratio: float = 0.5) -> torch.Tensor:
    """Paint one square of side round(ratio * size) per image with ``fill``, its centre anywhere in the image (edges
    clip)."""
    _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    dy, dx = ys - cy + ch // 2, xs - cx + cw // 2  # position inside the square: [0, ch) x [0, cw)
    cut = (dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw)  # [n, H, W], n = N or 1
    return x.masked_fill(cut.unsqueeze(1), fill)


_GEOMETRIC = {"translation": _translation, "cutout": _cutout}  # the ops that move or cut pixels and take a fill


def affine_warp(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Warp images [N, C, H, W] by the per-image matrix [[cos, -sin], [sin, cos]] (a rotation times a scale) and
    ``shift`` [N, 2] in affine_grid's units (the image spans [-1, 1]); bilinear, edges repeat the border."""
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def classic_augment(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Random rotation (degrees), shift (fraction) and zoom (fraction) of real images [N, C, H, W]."""
    n = len(x)
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(cfg.rotation)
    scale = 1 + (torch.rand(n, device=x.device) * 2 - 1) * cfg.zoom
    shift = (torch.rand(n, 2, device=x.device) * 2 - 1) * cfg.shift * 2  # fraction of size -> [-1, 1] units
    return affine_warp(x, torch.cos(angle) / scale, torch.sin(angle) / scale, shift)


def uses_classic(cfg: AugmentConfig) -> bool:
    return cfg.rotation > 0 or cfg.shift > 0 or cfg.zoom > 0
