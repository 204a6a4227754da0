"""Stand-in TorchScript networks with the call interface of NVIDIA's metric networks (small, random weights).

The real files (``inception-2015-12-05.pt``, ``vgg16.pt``) cannot be downloaded on the test machines;
these modules are scripted with ``torch.jit.script`` and saved, so every TorchScript path of ganforge
(loading, calling conventions, preprocessing, hashing) runs offline. Interfaces, as stylegan2-ada-pytorch
and clean-fid call them:

- Inception: ``net(img, return_features=False, use_fp16=False, no_output_bias=False)`` on float images in
  [0, 255] of any size -> features [N, 2048] (``return_features``) or softmax probabilities [N, 1008];
  ``net.layers`` maps 299x299 input in [-1, 1] to [N, 2048, 1, 1]; ``net.output`` is Linear(2048, 1008).
- VGG16: ``net(img, resize_images=True, return_lpips=False)`` on float images in [0, 255]; with
  ``return_lpips`` -> [N, D] such that the squared L2 distance of two rows is the LPIPS distance.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class StandInInception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # Cheap trunk on 299x299: 23x23 average pooling -> 13x13, two convolutions, global average pooling.
        self.layers = nn.Sequential(
            nn.AvgPool2d(23), nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 2048, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.output = nn.Linear(2048, 1008)

    def forward(
        self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False, no_output_bias: bool = False
    ) -> torch.Tensor:
        x = F.interpolate(img.to(torch.float32), size=(299, 299), mode="bilinear", align_corners=False)
        x = (x - 127.5) / 127.5
        features = self.layers(x).reshape(-1, 2048)
        if return_features:
            return features
        if no_output_bias:
            logits = F.linear(features, self.output.weight)
        else:
            logits = self.output(features)
        return F.softmax(logits, dim=1)


class StandInVGG16(nn.Module):
    """Four pooling stages, like VGG16 before its last block: an 8x8 input has nothing left at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.block3 = nn.Sequential(
            nn.MaxPool2d(2), nn.MaxPool2d(2), nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()
        )

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        x = img / 255.0 - 0.5
        if resize_images:
            x = F.interpolate(x, size=(224, 224), mode="area")
        f1 = self.block1(x)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        if not return_lpips:
            return f3.flatten(1)
        parts = []
        for f in (f1, f2, f3):
            f = f / (f.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)  # unit length over channels
            parts.append((f / (f.shape[2] * f.shape[3]) ** 0.5).flatten(1))  # so ||a-b||^2 = sum_l mean_hw
        return torch.cat(parts, dim=1)


def save_stand_in(kind: str, path: Path, seed: int = 0) -> Path:
    """Script and save a stand-in (``inception`` or ``vgg16``) with seeded random weights; return its path."""
    torch.manual_seed(seed)
    net = StandInInception() if kind == "inception" else StandInVGG16()
    torch.jit.script(net.eval()).save(str(path))
    return path
