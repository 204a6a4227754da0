"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"), written from the paper.

Every image D sees, real or generated, passes through the same pipeline; each transformation is applied to each
image with probability p, so with p < ~0.8 the augmentations do not "leak" into the generated distribution
(section 2). The pipeline is the paper's "bgc" set:

- blit: x-flip, rotation by a multiple of 90 degrees, integer translation (up to 1/8 of the side);
- geometric: isotropic scaling (lognormal, sigma 0.2 ln 2), rotation (uniform; applied twice, each with
  probability 1 - sqrt(1 - p), so that some rotation happens with probability p), anisotropic scaling (lognormal,
  sigma 0.2 ln 2), fractional translation (normal, sigma 1/8 of the side);
- colour (image channels only, never a mask): brightness (normal, sigma 0.2), contrast (lognormal, sigma 0.5 ln 2),
  and for RGB luma flip and saturation (lognormal, sigma ln 2).

The blit and geometric steps are composed into one 2x3 matrix per image and applied by a single bilinear
``grid_sample`` with reflection padding (the paper samples with a wavelet filter at 2x; bilinear is the cheap,
differentiable stand-in). Flips, quarter turns and whole-pixel shifts land on pixel centres, so they stay exact.
The distributions are symmetric, so composing the matrices in forward order samples the same transforms as
inverting them. Masks (paired image + mask data) move with their image and keep their values.

p is steered by the overfitting heuristic r_t = E[sign(D(real))] (section 3): every ``interval`` D steps,
p <- clip(p + sign(r_t - target) * images / (ada_kimg * 1000), 0, 1), so p can cross [0, 1] in ``ada_kimg`` kimg.
The state (p, the running sums, the step count) lives in buffers of ``AdaptiveAugment``: it is in every checkpoint
and resumes exactly. All randomness is drawn from torch's global generator, the same number of draws whatever p is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def ada_adjust(p: torch.Tensor, r_t: torch.Tensor, target: float, images: int, ada_kimg: float) -> torch.Tensor:
    """One ADA update: p + sign(r_t - target) * images / (ada_kimg * 1000), clipped to [0, 1]."""
    return (p + torch.sign(r_t - target) * (images / (ada_kimg * 1000))).clamp(0.0, 1.0)


class AdaptiveProbability(nn.Module):
    """An augmentation probability p steered by r_t = E[sign(D(real) - threshold)], with its bookkeeping, all as
    buffers (a network without parameters: its state is in every checkpoint and resumes exactly). ``threshold`` is
    the loss's decision boundary between real and fake logits (0 for bce and hinge, 0.5 for least squares)."""

    def __init__(
        self,
        target: float = 0.6,
        interval: int = 4,
        ada_kimg: float = 500.0,
        batch: int = 64,
        p: float = 0.0,
        adaptive: bool = True,
        threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.target, self.interval, self.ada_kimg, self.batch, self.adaptive, self.threshold = (
            target,
            interval,
            ada_kimg,
            batch,
            adaptive,
            threshold,
        )
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("sign_sum", torch.zeros([]))  # sum of sign(D(real)) since the last update
        self.register_buffer("sign_count", torch.zeros([]))  # number of real logits in it
        self.register_buffer("steps", torch.zeros([], dtype=torch.long))  # D steps seen
        self.register_buffer("r_t", torch.zeros([]))  # the last r_t used (for the log)

    @torch.no_grad()
    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Record one D step's logits on real images; every ``interval`` steps, move p. No host synchronisation."""
        self.sign_sum += (real_logits.detach().float() - self.threshold).sign().sum()
        self.sign_count += real_logits.numel()
        self.steps += 1
        if not self.adaptive:
            return
        due = self.steps % self.interval == 0
        r_t = self.sign_sum / self.sign_count.clamp(min=1)
        new_p = ada_adjust(self.p, r_t, self.target, self.batch * self.interval, self.ada_kimg)
        self.p.copy_(torch.where(due, new_p, self.p))
        self.r_t.copy_(torch.where(due, r_t, self.r_t))
        self.sign_sum.copy_(torch.where(due, torch.zeros_like(self.sign_sum), self.sign_sum))
        self.sign_count.copy_(torch.where(due, torch.zeros_like(self.sign_count), self.sign_count))


class AdaptiveAugment(AdaptiveProbability):
    """ADA's pipeline, applied with the adaptive probability p."""

    def forward(self, x: torch.Tensor, mask_channels: int = 0) -> torch.Tensor:
        """x [N, C, H, W] -> augmented [N, C, H, W]; differentiable with respect to x."""
        x = _geometric(x, self.p)
        image_channels = x.shape[1] - mask_channels
        img = _colour(x[:, :image_channels], self.p)
        return torch.cat([img, x[:, image_channels:]], dim=1) if mask_channels else img


def _gate(p: torch.Tensor, n: int, device: torch.device, prob_scale: bool = False) -> torch.Tensor:
    """[N] bool: apply the transformation to this image (probability p, or 1 - sqrt(1 - p) for the rotations)."""
    prob = 1 - torch.sqrt((1 - p).clamp(min=0)) if prob_scale else p
    return torch.rand(n, device=device) < prob


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    m = torch.zeros(len(angle), 3, 3, device=angle.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = c, -s, s, c, 1
    return m


def _scale_translate(sx: torch.Tensor, sy: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = torch.zeros(len(sx), 3, 3, device=sx.device)
    m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2], m[:, 2, 2] = sx, sy, tx, ty, 1
    return m


def _geometric(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    n, _, h, w = x.shape
    dev = x.device
    one, zero = torch.ones(n, device=dev), torch.zeros(n, device=dev)
    # In affine_grid's normalised coordinates the image spans [-1, 1]; one pixel is 2 / size.
    flip = torch.where(_gate(p, n, dev) & (torch.rand(n, device=dev) < 0.5), -one, one)
    m = _scale_translate(flip, one, zero, zero)  # x-flip
    quarter = torch.randint(0, 4, (n,), device=dev).float() * (math.pi / 2)
    m = _rotation(torch.where(_gate(p, n, dev), quarter, zero)) @ m  # rotation by k * 90 degrees
    shift = torch.round((torch.rand(n, 2, device=dev) * 2 - 1) * 0.125 * torch.tensor([w, h], device=dev))
    shift = torch.where(_gate(p, n, dev)[:, None], shift, 0.0) * torch.tensor([2 / w, 2 / h], device=dev)
    m = _scale_translate(one, one, shift[:, 0], shift[:, 1]) @ m  # integer translation
    iso = torch.exp2(torch.randn(n, device=dev) * 0.2)
    iso = torch.where(_gate(p, n, dev), iso, one)
    m = _scale_translate(iso, iso, zero, zero) @ m  # isotropic scaling
    angle = (torch.rand(n, device=dev) * 2 - 1) * math.pi
    m = _rotation(torch.where(_gate(p, n, dev, prob_scale=True), angle, zero)) @ m  # pre-rotation
    aniso = torch.exp2(torch.randn(n, device=dev) * 0.2)
    aniso = torch.where(_gate(p, n, dev), aniso, one)
    m = _scale_translate(aniso, 1 / aniso, zero, zero) @ m  # anisotropic scaling
    angle = (torch.rand(n, device=dev) * 2 - 1) * math.pi
    m = _rotation(torch.where(_gate(p, n, dev, prob_scale=True), angle, zero)) @ m  # post-rotation
    frac = torch.randn(n, 2, device=dev) * 0.125 * 2  # sigma 1/8 of the side; the side is 2 units long
    frac = torch.where(_gate(p, n, dev)[:, None], frac, 0.0)
    m = _scale_translate(one, one, frac[:, 0], frac[:, 1]) @ m  # fractional translation
    grid = F.affine_grid(m[:, :2].to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _colour(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    n, c = x.shape[:2]
    dev = x.device
    brightness = torch.where(_gate(p, n, dev), torch.randn(n, device=dev) * 0.2, 0.0)
    x = x + brightness.view(n, 1, 1, 1).to(x.dtype)
    contrast = torch.where(_gate(p, n, dev), torch.exp2(torch.randn(n, device=dev) * 0.5), 1.0)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(n, 1, 1, 1).to(x.dtype) + mean
    flip = _gate(p, n, dev) & (torch.rand(n, device=dev) < 0.5)  # luma flip (RGB)
    saturation = torch.where(_gate(p, n, dev), torch.exp2(torch.randn(n, device=dev)), 1.0)  # (RGB)
    if c == 3:
        luma = x.mean(dim=1, keepdim=True)  # [N, 1, H, W], the grey axis
        chroma = x - luma
        luma = torch.where(flip.view(n, 1, 1, 1), -luma, luma)
        x = luma + chroma * saturation.view(n, 1, 1, 1).to(x.dtype)
    return x
