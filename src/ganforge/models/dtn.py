"""Networks of the Domain Transfer Network (Taigman et al. 2017, "Unsupervised Cross-Domain Image Generation").

- ``Encoder``: f, the conv trunk of a small classifier of the SOURCE domain; its last feature map is what DTN keeps
  constant. Trained once before the GAN starts, then frozen (``variants/dtn.py``).
- ``Decoder``: g, feature map -> target-domain image (a 3x3 conv, DCGAN-style transposed convs, tanh).
- ``DTNGenerator``: G = g(f(x)), what the family exports (inside a ``Translator``, direction AtoB).
- ``TernaryDiscriminator``: D with three outputs, the paper's D_1 (G of a source image), D_2 (G of a target image)
  and D_3 (a real target image): logits [N, 3].
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.models.dcgan import init_dcgan_weights, upsampling_plan


class Encoder(nn.Module):
    """f: x [N, C, H, W] -> a feature map [N, feature_channels, s, s] (ReLU), s the decoder's start size (7 at 28 px,
    4 at 16 or 32 px). Pretrained with a linear class head on the flattened map that is then dropped;
    ``source_accuracy`` records how well it classified the source training images; with ``num_classes`` the head is
    kept (``classify``), for DTN's class-constancy term.

    A map rather than the paper's pooled 128-d vector: with the vector, g could not tell strokes apart and every
    translation became the same blob (label accuracy 0.38 against the identity baseline's 0.54, 20 kimg)."""

    def __init__(self, in_ch: int, side: int, ch: int = 32, feature_channels: int = 32, num_classes: int = 0) -> None:
        super().__init__()
        start, n_down = upsampling_plan(side)
        layers: list[nn.Module] = []  # no batch norm: f must compute the same thing in train and eval mode
        for i in range(n_down):
            layers += [nn.Conv2d(in_ch if i == 0 else ch * 2 ** (i - 1), ch * 2**i, 3, 2, 1), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(ch * 2 ** (n_down - 1), feature_channels, 1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.feature_channels = feature_channels
        self.register_buffer("source_accuracy", torch.zeros(()))  # set by the pretraining; exported with f
        # the pretraining's linear class head, kept only when the family's class-constancy term reads it
        self.head = nn.Linear(feature_channels * start * start, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # [N, feature_channels, s, s]

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """Class logits [N, num_classes] of a feature map h [N, feature_channels, s, s] (needs ``num_classes``)."""
        assert self.head is not None, "built without a class head (num_classes=0)"
        return self.head(h.flatten(1))


class Decoder(nn.Module):
    """g: a feature map [N, feature_channels, s, s] -> images [N, out_ch, side, side] in [-1, 1]."""

    def __init__(self, feature_channels: int, out_ch: int, side: int, ch: int = 128) -> None:
        super().__init__()
        _, n_up = upsampling_plan(side)
        layers: list[nn.Module] = [nn.Conv2d(feature_channels, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
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
