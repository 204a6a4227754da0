"""ResNet G and D in the style of SNGAN / cGANs with projection (Miyato et al. 2018; Miyato & Koyama 2018), for
square images of 8..64 pixels: the architecture the projection discriminator, spectral norm and the hinge loss
were designed with.

G: latent (+ label embedding) -> linear -> [g_channels, s, s] -> residual up-blocks (BN or conditional BN, ReLU,
nearest 2x up, 3x3 convs; a 1x1 conv shortcut) -> BN, ReLU, 3x3 conv, tanh. s = 7 for 28 px, 4 for powers of
two; channels halve at each block from the second on (at least 16).
D: residual down-blocks (ReLU, 3x3 convs, 2x2 average pooling; the first block convolves before its activation,
SNGAN's "optimized" block) -> ReLU -> global sum pooling -> linear logit, plus the label piece's projection
(``embed(y) . phi(x)``) or auxiliary class head; leaky ReLU in place of every ReLU with ``model.resnet_d_act``.
**No batch norm in D**: spectral norm (``model.spectral_norm_d``) keeps it Lipschitz, and every sample is judged
on its own, which the gradient penalty, R1 and DiffAugment assume. Channels double at each down-block from
``d_channels`` (at most 8x).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.archs import ARCHS
from ganforge.models.conditioning import CondBatchNorm, Conditioning
from ganforge.models.dcgan import upsampling_plan
from ganforge.models.layers import DOut, MinibatchStd, apply_spectral_norm, mapping_network, spectral_norm_projection


def _norm(layer: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    return layer(x, c) if isinstance(layer, CondBatchNorm) else layer(x)


class GBlock(nn.Module):
    """x -> BN, ReLU, 2x up, conv3x3, BN, ReLU, conv3x3; plus 2x up, conv1x1 of x. [N, C, s, s] -> [N, C2, 2s, 2s]"""

    def __init__(self, cin: int, cout: int, num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        self.b1, self.b2 = cond.g.norm(cin, num_classes), cond.g.norm(cout, num_classes)
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.sc = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(_norm(self.b1, x, c)), scale_factor=2.0)
        h = self.c2(F.relu(_norm(self.b2, self.c1(h), c)))
        return h + self.sc(F.interpolate(x, scale_factor=2.0))


class DBlock(nn.Module):
    """x -> [act], conv3x3, act, conv3x3, [avgpool 2]; plus conv1x1 and pooling of x (no batch norm)."""

    def __init__(self, cin: int, cout: int, down: bool, first: bool, act: nn.Module) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.sc = nn.Conv2d(cin, cout, 1) if (cin != cout or down) else None
        self.down, self.first, self.act = down, first, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(self.act(self.c1(x if self.first else self.act(x))))  # the first block sees raw pixels
        s = x
        if self.first:  # SNGAN's optimized block: pool, then project the shortcut
            s = self.sc(F.avg_pool2d(s, 2)) if self.down else self.sc(s)
        elif self.sc is not None:
            s = self.sc(s)
            s = F.avg_pool2d(s, 2) if self.down else s
        return (F.avg_pool2d(h, 2) if self.down else h) + s


class ResNetGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        channels, height, width = shape
        if height != width:
            raise ConfigError(f"resnet needs square images, got {height}x{width}; set data.resolution.")
        self.z_dim, self.out_shape, self.num_classes = cfg.z_dim, tuple(shape), num_classes
        self.start, n_up = upsampling_plan(height)
        self.embed = cond.g.embedding(num_classes, cfg.embed_dim)  # label embedding joined to z, or None
        self.mapping = mapping_network(cfg.z_dim, cfg.g_mapping_layers, cfg.g_mapping_lr_mul)  # z -> z (identity if 0)
        in_dim = cfg.z_dim + (cfg.embed_dim if self.embed is not None else 0)
        self.ch0 = ch = cfg.g_channels
        self.fc = nn.Linear(in_dim, ch * self.start * self.start)
        blocks = []
        for i in range(n_up):
            out = ch if i == 0 else max(ch // 2, 16)
            blocks.append(GBlock(ch, out, num_classes, cond))
            ch = out
        self.blocks = nn.ModuleList(blocks)
        self.bn = cond.g.norm(ch, num_classes)
        self.out = nn.Conv2d(ch, channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.mapping(z)  # [N, z_dim]
        h = h if self.embed is None else torch.cat([h, self.embed(c)], dim=1)  # [N, z_dim (+ embed_dim)]
        h = self.fc(h).view(len(z), self.ch0, self.start, self.start)  # [N, C0, s, s]
        for block in self.blocks:
            h = block(h, c)  # [N, C, 2s, 2s]
        return torch.tanh(self.out(F.relu(_norm(self.bn, h, c))))  # [N, C, H, W] in [-1, 1]


class ResNetDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        channels, height, _ = shape
        if cfg.d_batchnorm[0]:
            raise ConfigError(
                "the resnet architecture has no batch norm in D (spectral norm instead, as SNGAN); "
                "set model.d_batchnorm=[false] and model.spectral_norm_d=true."
            )
        self.res = height
        _, n_down = upsampling_plan(height)
        # cGAN conditioning: the label becomes an embedded H x W map stacked as a channel (as in the dcgan D).
        self.embed = cond.d.input_embedding(num_classes, height * height)
        ch_in, ch = channels + (1 if self.embed is not None else 0), cfg.d_channels
        # SNGAN's ReLU, or leaky ReLU: without spectral norm's bound a ReLU D can die (model.resnet_d_act)
        self.act = nn.ReLU() if cfg.resnet_d_act == "relu" else nn.LeakyReLU(cfg.leaky_slope)
        blocks = []
        for i in range(n_down):
            out = min(ch * 2, cfg.d_channels * 8) if i > 0 else ch
            blocks.append(DBlock(ch_in if i == 0 else ch, out, down=True, first=i == 0, act=self.act))
            ch = out
        self.blocks = nn.Sequential(*blocks)
        self.mbstd = MinibatchStd() if cfg.d_mbstd else None  # the batch's (per-class) spread into the last block
        # one more block at the smallest size
        self.last = DBlock(ch + int(cfg.d_mbstd), ch, down=False, first=False, act=self.act)
        self.out = nn.Linear(ch, 1)
        self.aux = cond.d.aux_head(ch, num_classes)  # AC-GAN class logits, or None
        self.proj = cond.d.projection(ch, num_classes)  # projection discriminator's class embedding, or None
        init_resnet_weights(self)  # before spectral norm wraps the weights
        if cfg.spectral_norm_d:
            apply_spectral_norm(self)
            spectral_norm_projection(self)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> DOut:
        if self.embed is not None:
            label_map = self.embed(c).view(len(x), 1, self.res, self.res).to(x.dtype)  # [N, 1, H, W]
            x = torch.cat([x, label_map], dim=1)
        h = self.blocks(x)  # [N, C, h, w]
        if self.mbstd is not None:
            h = self.mbstd(h, c)
        feat = self.act(self.last(h)).sum(dim=(2, 3))  # [N, F] global sum pooling
        logits = self.out(feat).squeeze(1)  # [N]
        if self.proj is not None:
            logits = logits + self.proj.project(c, feat)
        return DOut(logits, self.aux(feat) if self.aux is not None else None, feat)


def init_resnet_weights(module: nn.Module) -> None:
    """Xavier-uniform convs and linears (gain 1; sqrt(2) in the residual paths' 3x3 convs), as SNGAN's code."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            gain = 2**0.5 if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) else 1.0
            nn.init.xavier_uniform_(m.weight, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@ARCHS.register("resnet", help="SNGAN-style residual G and D for 8..64 px, no batch norm in D (SN, hinge, projection)")
def build_resnet(cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> tuple[nn.Module, nn.Module]:
    if len(shape) != 3:
        raise ConfigError("the resnet architecture needs image data; use model.arch=mlp for 2D points.")
    if cfg.g_self_modulation:
        raise ConfigError("model.g_self_modulation is built for the dcgan arch's G only; remove it, or set "
                          "model.arch=dcgan.")
    G = ResNetGenerator(cfg, shape, num_classes, cond)
    D = ResNetDiscriminator(cfg, shape, num_classes, cond)
    init_resnet_weights(G)
    if cfg.spectral_norm_g:
        apply_spectral_norm(G)
    return G, D
