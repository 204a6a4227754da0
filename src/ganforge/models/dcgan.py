"""DCGAN (Radford et al. 2016) G and D for square images of 8..64 pixels, 1 or 3 channels.

G: latent -> linear -> [g_channels, s, s] map -> (ConvTranspose 4x4/2 + BN + ReLU) x n -> tanh, where
s = 7 for 28x28 (the MNIST/PathMNIST studies) and 4 for powers of two. D mirrors it with strided
4x4 convs + LeakyReLU(0.2) (+ BN after the first layer), then a linear head on the flattened map.
``*_extra_layers`` add stride-1 3x3 conv layers (the MNIST depth study).
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.archs import ARCHS
from ganforge.models.conditioning import Conditioning
from ganforge.models.layers import (
    CondSequential,
    DOut,
    MinibatchStd,
    SelfModBatchNorm,
    apply_spectral_norm,
    mapping_network,
    spectral_norm_projection,
)


def upsampling_plan(resolution: int) -> tuple[int, int]:
    """(start size, number of 2x upsamplings): 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4), 8 -> (4, 1)."""
    size, n = resolution, 0
    while size % 2 == 0 and size > 4:
        size, n = size // 2, n + 1
    if n == 0 or size > 8:
        raise ConfigError(
            f"the dcgan architecture needs a square image size like 8, 16, 28, 32 or 64, got {resolution}. "
            "Set data.resolution=28 (or 32/64) to resize."
        )
    return size, n


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        channels, height, width = shape
        if height != width:
            raise ConfigError(f"dcgan needs square images, got {height}x{width}; set data.resolution.")
        self.z_dim, self.out_shape, self.num_classes = cfg.z_dim, tuple(shape), num_classes
        self.start, n_up = upsampling_plan(height)
        self.embed = cond.g.embedding(num_classes, cfg.embed_dim)  # label embedding joined to z, or None
        self.mapping = mapping_network(cfg.z_dim, cfg.g_mapping_layers, cfg.g_mapping_lr_mul)  # z -> z (identity if 0)
        in_dim = cfg.z_dim + (cfg.embed_dim if self.embed is not None else 0)
        ch = cfg.g_channels
        self.fc = nn.Linear(in_dim, ch * self.start * self.start, bias=False)

        if cfg.g_self_modulation and cond.g.carried_by_norm:
            raise ConfigError(
                "model.g_self_modulation makes G's batch norms functions of the latent, but this variant's G already "
                "modulates them by the label (conditional batch norm). Remove model.g_self_modulation, or pick a "
                "variant whose G joins the label to z (cgan) or an unconditional one (gan, wgan-gp)."
            )

        def bn(features: int) -> nn.Module:  # plain, class-conditional (label piece) or self-modulated
            if cfg.g_self_modulation:
                return SelfModBatchNorm(features, cfg.z_dim)
            return cond.g.norm(features, num_classes)

        layers: list[nn.Module] = [bn(ch), nn.ReLU()]
        for i in range(n_up - 1):
            out = max(ch // 2, 16)
            layers += [nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=False), bn(out), nn.ReLU()]
            ch = out
            if i == n_up - 2:  # extra layers work at the last hidden resolution
                for _ in range(cfg.g_extra_layers):
                    layers += [nn.Conv2d(ch, ch, 3, 1, 1, bias=False), bn(ch), nn.ReLU()]
        if n_up == 1:
            for _ in range(cfg.g_extra_layers):
                layers += [nn.Conv2d(ch, ch, 3, 1, 1, bias=False), bn(ch), nn.ReLU()]
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = CondSequential(layers)
        self.ch0 = cfg.g_channels

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mapping(z)  # [N, z_dim]
        h = w if self.embed is None else torch.cat([w, self.embed(c)], dim=1)  # [N, z_dim (+ embed_dim)]
        h = self.fc(h).view(len(z), self.ch0, self.start, self.start)  # [N, C0, s, s]
        return self.body(h, c, w)  # [N, C, H, W] in [-1, 1]


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        channels, height, _ = shape
        self.res = height
        start, n_down = upsampling_plan(height)
        # Conditional GAN as in the studies: the label becomes an embedded H x W map stacked as a channel.
        self.embed = cond.d.input_embedding(num_classes, height * height)
        use_bn = cfg.d_batchnorm[0]
        ch_in, ch = channels + (1 if self.embed is not None else 0), cfg.d_channels
        layers: list[nn.Module] = [nn.Conv2d(ch_in, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not use_bn)]
            layers += [nn.BatchNorm2d(ch * 2)] if use_bn else []
            layers += [nn.LeakyReLU(0.2)]
            ch *= 2
        for _ in range(cfg.d_extra_layers):
            layers += [nn.Conv2d(ch, ch, 3, 1, 1, bias=not use_bn)]
            layers += [nn.BatchNorm2d(ch)] if use_bn else []
            layers += [nn.LeakyReLU(0.2)]
        self.mbstd, self.tail = None, None
        if cfg.d_mbstd:  # the batch's (per-class) spread as a channel, then a conv that can use it (ProGAN)
            self.mbstd, self.tail = MinibatchStd(), nn.Sequential(nn.Conv2d(ch + 1, ch, 3, 1, 1), nn.LeakyReLU(0.2))
        if cfg.d_dropout[0] > 0:
            layers.append(nn.Dropout(cfg.d_dropout[0]))
        self.body = nn.Sequential(*layers)
        feat = ch * start * start
        self.out = nn.Linear(feat, 1)
        self.aux = cond.d.aux_head(feat, num_classes)  # AC-GAN class logits, or None
        self.proj = cond.d.projection(feat, num_classes)  # projection discriminator's class embedding, or None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> DOut:
        if self.embed is not None:
            label_map = self.embed(c).view(len(x), 1, self.res, self.res).to(x.dtype)  # [N, 1, H, W]
            x = torch.cat([x, label_map], dim=1)
        h = self.body(x)  # [N, C, h, w]
        if self.mbstd is not None:
            h = self.tail(self.mbstd(h, c))  # per-class spread when D is given the labels
        feat = h.flatten(1)  # [N, F]
        logits = self.out(feat).squeeze(1)  # [N]
        if self.proj is not None:
            logits = logits + self.proj.project(c, feat)
        return DOut(logits, self.aux(feat) if self.aux is not None else None, feat)


def init_dcgan_weights(module: nn.Module) -> None:
    """N(0, 0.02) conv weights and N(1, 0.02) BN scales, as in the DCGAN paper."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@ARCHS.register("dcgan", help="convolutional G and D for 8..64 px images (the MNIST/PathMNIST studies)")
def build_dcgan(cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> tuple[nn.Module, nn.Module]:
    if len(shape) != 3:
        raise ConfigError("the dcgan architecture needs image data; use model.arch=mlp for 2D points.")
    G = DCGANGenerator(cfg, shape, num_classes, cond)
    D = DCGANDiscriminator(cfg, shape, num_classes, cond)
    init_dcgan_weights(G)
    init_dcgan_weights(D)
    # Spectral norm only after the init: once it wraps a layer, ``m.weight`` is recomputed from the original on
    # every access, so an in-place init on it changes a temporary and the layer keeps PyTorch's default init.
    if cfg.spectral_norm_d:
        apply_spectral_norm(D)
        spectral_norm_projection(D)
    if cfg.spectral_norm_g:
        apply_spectral_norm(G)
    return G, D
