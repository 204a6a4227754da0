"""SPADE networks (Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR).

- ``SPADE``: normalise x without learned affine, then modulate it per pixel by a scale and a shift predicted from
  the segmentation map resized to x (eq. 1):  out = norm(x) * (1 + gamma(m)) + beta(m),
  gamma, beta = conv3x3(ReLU(conv3x3(m))). The paper's G uses synchronised batch norm; here instance norm (the
  official code's ``spadeinstance3x3`` option), so a small CPU run behaves the same in train and eval mode.
- ``SPADEResBlock``: the residual block of fig. 4: (SPADE, ReLU, conv3x3) x 2, with a learned SPADE-conv shortcut
  when the width changes. The paper uses leaky ReLU 0.2 and spectral norm on the convs; both kept.
- ``SPADEGenerator``: z [N, z_dim] -> a 4x4 map -> SPADE res-blocks, each followed by 2x nearest upsampling, to
  the mask's size -> conv3x3 -> tanh (fig. 4 right, without the image encoder: z ~ N(0, I)).
  ``forward(seg, z=None)``: with z None it uses z = 0, the mode of the prior, so ``translate`` and ``evaluate``
  map a label map to one deterministic image; ``generate --masks`` draws z from its seed.
- ``FeaturePatchDiscriminator``: the PatchGAN on (mask, image) that also returns its intermediate activations for
  the feature-matching loss (pix2pixHD's eq. 4, which SPADE keeps with weight 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class SPADE(nn.Module):
    """x [N, C, H, W], seg [N, K, h, w] (any size: resized to H, W by nearest) -> [N, C, H, W]."""

    def __init__(self, channels: int, label_nc: int, hidden: int = 32) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)  # parameter-free: the affine comes from the mask
        self.shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(seg, size=x.shape[-2:], mode="nearest")  # a label map must not blend classes
        actv = self.shared(seg)
        return self.norm(x) * (1 + self.gamma(actv)) + self.beta(actv)  # eq. 1


class SPADEResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, label_nc: int, hidden: int) -> None:
        super().__init__()
        c_mid = min(c_in, c_out)
        self.norm_0, self.conv_0 = SPADE(c_in, label_nc, hidden), spectral_norm(nn.Conv2d(c_in, c_mid, 3, padding=1))
        self.norm_1, self.conv_1 = SPADE(c_mid, label_nc, hidden), spectral_norm(nn.Conv2d(c_mid, c_out, 3, padding=1))
        self.learned_shortcut = c_in != c_out
        if self.learned_shortcut:
            self.norm_s = SPADE(c_in, label_nc, hidden)
            self.conv_s = spectral_norm(nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return skip + dx


class SPADEGenerator(nn.Module):
    """(seg [N, K, S, S] one-hot in {-1, 1}, z [N, z_dim] | None) -> image [N, out_ch, S, S] in [-1, 1]."""

    def __init__(self, label_nc: int, out_ch: int, side: int, ngf: int = 32, z_dim: int = 64) -> None:
        super().__init__()
        self.z_dim, self.label_nc = z_dim, label_nc
        ups = max(0, side.bit_length() - 3)  # 4 -> side: log2(side) - 2 doublings (32 px: 3)
        widths = [ngf * min(2 ** (ups - i), 8) for i in range(ups + 1)]  # widest at 4x4, ngf at full size
        self.fc = nn.Linear(z_dim, widths[0] * 16)
        self.blocks = nn.ModuleList(
            SPADEResBlock(widths[i], widths[min(i + 1, ups)], label_nc, ngf) for i in range(ups + 1)
        )
        self.ups = ups
        self.out = nn.Conv2d(widths[-1], out_ch, 3, padding=1)

    def forward(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = seg.new_zeros(len(seg), self.z_dim)  # the prior's mode: one deterministic image per map
        seg = (seg + 1) / 2  # {-1, 1} -> the paper's {0, 1} one-hot
        x = self.fc(z).view(len(z), -1, 4, 4)  # [N, C0, 4, 4]
        for i, block in enumerate(self.blocks):
            x = block(x, seg)
            if i < self.ups:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.out(F.leaky_relu(x, 0.2)))


class FeaturePatchDiscriminator(nn.Module):
    """cat(seg, image) [N, K + C, H, W] -> (patch logits [N, 1, h, w], [activation of every stage])."""

    def __init__(self, in_ch: int, ndf: int = 32, n_layers: int = 2) -> None:
        super().__init__()
        stages: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2))]
        prev = ndf
        for i in range(1, n_layers + 1):  # as PatchDiscriminator: stride 2, the last one stride 1
            w = ndf * min(2**i, 8)
            conv = spectral_norm(nn.Conv2d(prev, w, 4, 2 if i < n_layers else 1, 1, bias=False))
            stages.append(nn.Sequential(conv, nn.InstanceNorm2d(w, affine=False), nn.LeakyReLU(0.2)))
            prev = w
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(prev, 1, 4, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return self.head(x), feats
