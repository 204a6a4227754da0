"""Networks of the Domain Transfer Network (Taigman et al. 2017, "Unsupervised Cross-Domain Image Generation").

- ``Encoder``: f, a small conv classifier of the SOURCE domain; its penultimate activations (``feature_dim``) are the
  features DTN keeps constant. Trained once before the GAN starts, then frozen (``variants/dtn.py``).
- ``Decoder``: g, features -> target-domain image (fc to an s x s map, DCGAN-style transposed convs, tanh).
- ``DTNGenerator``: G = g(f(x)), what the family exports (inside a ``Translator``, direction AtoB).
- ``TernaryDiscriminator``: D with three outputs, the paper's D_1 (G of a source image), D_2 (G of a target image)
  and D_3 (a real target image): logits [N, 3].
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.models.dcgan import init_dcgan_weights, upsampling_plan


class Encoder(nn.Module):
    """f: x [N, C, H, W] -> features [N, feature_dim] (ReLU activations). Pretrained with a linear class head that is
    then dropped; ``source_accuracy`` records how well it classified the source training images."""

    def __init__(self, in_ch: int, ch: int = 32, feature_dim: int = 128) -> None:
        super().__init__()
        self.features = nn.Sequential(  # no batch norm: f must compute the same thing in train and eval mode
            nn.Conv2d(in_ch, ch, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ch, ch * 2, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ch * 2, ch * 4, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(ch * 4 * 4, feature_dim),
            nn.ReLU(),
        )
        self.feature_dim = feature_dim
        self.register_buffer("source_accuracy", torch.zeros(()))  # set by the pretraining; exported with f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # [N, feature_dim]


class Decoder(nn.Module):
    """g: features [N, feature_dim] -> images [N, out_ch, side, side] in [-1, 1]."""

    def __init__(self, feature_dim: int, out_ch: int, side: int, ch: int = 128) -> None:
        super().__init__()
        start, n_up = upsampling_plan(side)
        layers: list[nn.Module] = [
            nn.Linear(feature_dim, ch * start * start, bias=False),
            nn.Unflatten(1, (ch, start, start)),
            nn.BatchNorm2d(ch),
            nn.ReLU(),
        ]
        for _ in range(n_up - 1):
            out = max(ch // 2, 16)
            layers += [nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        layers += [nn.ConvTranspose2d(ch, out_ch, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class DTNGenerator(nn.Module):
    """G(x) = g(f(x)): x [N, C_src, H, W] -> [N, C_dst, H, W]. f is frozen by the family; only g trains."""

    def __init__(self, f: Encoder, g: Decoder) -> None:
        super().__init__()
        self.f, self.g = f, g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.g(self.f(x))


class TernaryDiscriminator(nn.Module):
    """x [N, C, H, W] -> logits [N, 3]: 0 = G(source), 1 = G(target), 2 = real target."""

    def __init__(self, in_ch: int, side: int, ch: int = 64) -> None:
        super().__init__()
        start, n_down = upsampling_plan(side)
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2)]
            ch *= 2
        layers += [nn.Flatten(), nn.Linear(ch * start * start, 3)]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
