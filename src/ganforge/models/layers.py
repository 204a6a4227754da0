"""Small building blocks shared by the architectures: activations, D's output, spectral norm.

The label pieces (concat, conditional batch norm, projection, ...) live in ``models.conditioning``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ganforge.models.conditioning import CondBatchNorm
from ganforge.models.equalized import EqLinear, lrelu, pixel_norm


class DOut(NamedTuple):
    logits: torch.Tensor  # [N] real/fake score
    aux_logits: torch.Tensor | None  # [N, K] class logits (AC-GAN), else None
    features: torch.Tensor  # [N, F] penultimate features (feature matching, projection)


def activation(name: str, slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(slope)
    raise ValueError(name)


class LatentMapping(nn.Module):
    """StyleGAN's mapping network (Karras et al. 2019) in front of a convolutional G's first layer: z normalised
    to unit mean square, then ``layers`` equalised-lr linear layers of width ``dim`` with leaky ReLU, learning at
    ``lr_mul`` of G's rate (``model.g_mapping_lr_mul``; StyleGAN's is 0.01). 8 plain linear layers at G's
    full rate (PyTorch's default init) collapsed the unconditional DCGAN's samples within 20 kimg on MNIST; at
    their random start the 8 equalised layers already squeeze the latent's variance into about ten directions
    (benchmarks/mapping_drift.py). z [N, dim] -> [N, dim]."""

    def __init__(self, dim: int, layers: int, lr_mul: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EqLinear(dim, dim, lr_mul=lr_mul) for _ in range(layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = pixel_norm(z)
        for layer in self.layers:
            h = lrelu(layer(h))
        return h


class SelfModBatchNorm(nn.Module):
    """Self-modulated batch norm (Chen et al. 2019, "On Self Modulation for GANs"): G's batch norm whose gain and
    bias are functions of the sample's own latent, as conditional batch norm makes them functions of the label.

    Each norm has a small MLP (``dim`` -> ``hidden`` with ReLU -> 2 x ``features``) from the latent w (z, or the
    mapping network's output) to a gain 1 + delta and a bias. The output layer starts at zero, so at the start the
    layer is a batch norm without affine parameters. x [N, C, H, W], w [N, dim] -> [N, C, H, W].
    """

    def __init__(self, features: int, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(features, affine=False)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * features))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gain, bias = self.mlp(w).chunk(2, dim=1)  # [N, C] each
        return self.bn(x) * (1.0 + gain[:, :, None, None]) + bias[:, :, None, None]


def mapping_network(dim: int, layers: int, lr_mul: float) -> nn.Module:
    """``LatentMapping`` with ``layers`` layers, or the identity (no weights) for 0."""
    return LatentMapping(dim, layers, lr_mul) if layers else nn.Identity()


def per_layer(values: tuple, n: int, what: str) -> list:
    """Broadcast a 1-tuple to n layers; otherwise the tuple must have n entries."""
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        from ganforge.errors import ConfigError

        raise ConfigError(f"model.{what} has {len(values)} entries but there are {n} hidden layers; give 1 or {n}.")
    return list(values)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every conv and linear weight of ``module``.

    W / sigma(W), sigma estimated by one power iteration per training-mode forward pass. Embeddings
    are left alone (label inputs, per-class norm gains), except a projection discriminator's class
    embedding, which the D builders normalise too, as Miyato & Koyama 2018 do.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        elif not isinstance(child, (nn.Embedding,)):
            apply_spectral_norm(child)
    return module


def spectral_norm_projection(D: nn.Module) -> None:
    """Spectral norm on D's projection embedding ``D.proj`` [K, F] if it has one (Miyato & Koyama 2018)."""
    if getattr(D, "proj", None) is not None:
        D.proj = nn.utils.parametrizations.spectral_norm(D.proj)


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, ProGAN section 3): one extra channel holding the mean
    standard deviation of the features over a group of samples, so D sees how varied a batch is.

    Without batch norm in D (spectral norm, gradient penalty, projection), nothing else tells D that every
    sample of a batch is the same image; a collapsed G then fools it. x [N, C, H, W] -> [N, C + 1, H, W].

    Unconditional: groups of ``group`` samples (fewer when N is not a multiple: the largest divisor of N up to it).
    With labels ``c`` [N]: the std over the samples of the batch with the same label. A conditional G that draws
    one image per class still makes a varied group of mixed classes, which is what the plain statistic sees; the
    per-class spread is what collapsed. A label seen once in the batch gets the mean of the other classes' values.
    """

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        if c is None:
            g = max(d for d in range(1, min(self.group, n) + 1) if n % d == 0)
            y = x.float().reshape(g, n // g, *x.shape[1:])  # [G, M, C, H, W]: sample i sits in group i % M
            std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3)).repeat(g)  # [N]
        else:
            std = self._per_class(x.float(), c)
        return torch.cat([x, std.to(x.dtype)[:, None, None, None].expand(n, 1, h, w)], dim=1)

    @staticmethod
    def _per_class(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Each sample's class spread, with same-class masks in place of a loop over ``c.unique()``: no op whose
        output size depends on the labels, so the host never waits for the GPU (and a CUDA graph can capture it).
        """
        with torch.autocast(x.device.type, enabled=False):  # sums of squares in fp32 even under bf16 autocast
            flat = x.flatten(1)  # [N, F]
            same = (c[:, None] == c[None, :]).to(flat.dtype)  # [N, N]: 1 where two samples share a label
            count = same.sum(1, keepdim=True)  # [N, 1]: the size of each sample's class in the batch
            mean = same @ flat / count  # [N, F]: its class mean
            var = same @ (flat - mean).square() / count  # the class's biased variance (same mean for all its rows)
            value = (var + 1e-8).sqrt().mean(1)  # [N]
            paired = count[:, 0] >= 2
            # A label seen once: the mean over the other classes (each class once: weight 1 / its count).
            weight = paired.to(flat.dtype) / count[:, 0]
            others = (value * weight).sum() / weight.sum().clamp_min(1e-12)
            batch = (flat.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()  # no class appears twice
            fill = torch.where(paired.any(), others, batch)
            return torch.where(paired, value, fill)


class CondSequential(nn.Module):
    """A list of layers where conditional layers also receive the labels, and self-modulated ones the latent."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, w: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            if isinstance(layer, CondBatchNorm):
                x = layer(x, c)
            elif isinstance(layer, SelfModBatchNorm):
                x = layer(x, w)
            else:
                x = layer(x)
        return x


class PackedDiscriminator(nn.Module):
    """PacGAN (Lin et al. 2018): D scores packs of ``pack`` samples instead of single samples.

    The ``pack`` samples of a pack (consecutive rows of the batch, all real or all generated) are stacked along
    the channel (or feature) axis, so ``inner`` is a D built for ``pack`` times the data's channels. A G that
    covers few modes makes packs of look-alike samples, which D learns to tell from real packs, whose samples
    differ; the paper shows this penalises mode dropping. x [N, C, ...] -> logits and features [N / pack, ...].
    Per-sample consumers of the logits (losses, D accuracy) average over packs; R1 reads each pack's gradient
    spread over its samples (its gamma acts per pack as gamma / pack) and WGAN-GP's penalty takes one norm per pack
    (``gradient_penalty``'s ``pack``).
    """

    def __init__(self, inner: nn.Module, pack: int) -> None:
        super().__init__()
        self.inner, self.pack = inner, pack

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> DOut:
        n = len(x)
        if n % self.pack:
            from ganforge.errors import ConfigError

            raise ConfigError(f"model.d_pack={self.pack} packs samples, but a batch of {n} is not a multiple of it; "
                              "make train.batch_size (per process, under --nproc) a multiple of model.d_pack.")
        return self.inner(x.reshape(n // self.pack, self.pack * x.shape[1], *x.shape[2:]), None)
