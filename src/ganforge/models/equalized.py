"""Layers with an equalised learning rate, and the small pieces ProGAN and StyleGAN2 share.

Equalised learning rate (Karras et al. 2018, section 4.1): weights are stored as N(0, 1) / lr_mul and scaled at
run time by the He constant c = lr_mul / sqrt(fan_in). Adam normalises each update by its own gradient scale, so
every layer then learns at the same speed whatever its fan-in; ``lr_mul`` slows a layer down on purpose
(StyleGAN's mapping network uses 0.01).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2)  # keeps the activations' second moment through leaky ReLU(0.2) (He et al. 2015)


class EqLinear(nn.Module):
    """y = x @ (W * lr_mul / sqrt(in))^T + b * lr_mul, with W ~ N(0, 1) / lr_mul stored."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, lr_mul: float = 1.0, bias_init: float = 0.0
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.weight_gain, bias)


class EqConv2d(nn.Module):
    """A same-padded k x k convolution with weights scaled by 1 / sqrt(in * k * k) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def pixel_norm(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) along ``dim``: ProGAN's pixelwise feature normalisation (section 4.2)."""
    return x * torch.rsqrt(x.square().mean(dim=dim, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append one feature map: the standard deviation of each feature over a group of samples, averaged over
    features and pixels (ProGAN section 3). x [N, C, H, W] -> [N, C + 1, H, W].

    Groups are samples i, i + N/G, i + 2N/G, ...; a batch not divisible by ``group`` uses the largest divisor.
    """
    n, c, h, w = x.shape
    g = math.gcd(min(group, n), n)
    y = x.reshape(g, n // g, c, h, w).float()  # [G, M, C, H, W]
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [M, C, H, W] stddev over each group
    y = y.mean(dim=(1, 2, 3)).to(x.dtype)  # [M]
    y = y.view(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y], dim=1)


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """Halve H and W by 2x2 box filtering (the ProGAN downscale; StyleGAN2 uses a [1,3,3,1] blur, see below)."""
    return F.avg_pool2d(x, 2)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Double H and W by nearest-neighbour repetition (ProGAN)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Box-downsample or nearest-upsample a square map to ``size`` (powers of two apart)."""
    while x.shape[-1] > size:
        x = downsample2x(x)
    while x.shape[-1] < size:
        x = upsample2x(x)
    return x
