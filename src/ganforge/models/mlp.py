"""Fully connected G and D: the sine / noisy-curve studies and the dense MNIST study.

Every hidden layer is ``Linear -> [BatchNorm] -> activation -> [Dropout]``, each switch per layer.
G ends in tanh for images (pixels live in [-1, 1]) and is linear for 2D points.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.archs import ARCHS
from ganforge.models.conditioning import Conditioning, LabelPiece, NoLabel
from ganforge.models.layers import (
    CondSequential,
    DOut,
    activation,
    apply_spectral_norm,
    per_layer,
    spectral_norm_projection,
)


def _hidden_stack(
    in_dim: int, widths: list[int], act: str, slope: float, bns: list[bool], drops: list[float],
    labels: LabelPiece, num_classes: int,
) -> CondSequential:
    layers: list[nn.Module] = []
    for width, bn, p in zip(widths, bns, drops):
        layers.append(nn.Linear(in_dim, width))
        if bn:
            layers.append(labels.norm(width, num_classes, flat=True))
        layers.append(activation(act, slope))
        if p > 0:
            layers.append(nn.Dropout(p))
        in_dim = width
    return CondSequential(layers)


class MLPGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        self.z_dim, self.out_shape, self.num_classes = cfg.z_dim, tuple(shape), num_classes
        n = len(cfg.g_hidden)
        g_bn = per_layer(cfg.g_batchnorm, n, "g_batchnorm")
        if cond.g.carried_by_norm and not any(g_bn):
            raise ConfigError(
                "conditional batch norm carries the label into the MLP generator, but it has no batch norm layer. "
                "Set model.g_batchnorm=[true] (or use a variant whose G concatenates the label, e.g. cgan)."
            )
        self.embed = cond.g.embedding(num_classes, cfg.embed_dim)  # label embedding joined to z, or None
        in_dim = cfg.z_dim + (cfg.embed_dim if self.embed is not None else 0)
        self.body = _hidden_stack(
            in_dim, list(cfg.g_hidden), cfg.g_act, cfg.leaky_slope, g_bn,
            per_layer(cfg.g_dropout, n, "g_dropout"), cond.g, num_classes,
        )
        self.out = nn.Linear(cfg.g_hidden[-1] if n else in_dim, math.prod(shape))
        self.squash = len(shape) > 1  # images -> tanh; 2D points stay linear

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = z if self.embed is None else torch.cat([z, self.embed(c)], dim=1)  # [N, z_dim (+ embed_dim)]
        x = self.out(self.body(h, c))
        if self.squash:
            x = torch.tanh(x)
        return x.view(len(z), *self.out_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        n = len(cfg.d_hidden)
        self.embed = cond.d.input_embedding(num_classes, cfg.embed_dim)  # label embedding joined to x, or None
        in_dim = math.prod(shape) + (cfg.embed_dim if self.embed is not None else 0)
        self.body = _hidden_stack(
            in_dim, list(cfg.d_hidden), cfg.d_act, cfg.leaky_slope, per_layer(cfg.d_batchnorm, n, "d_batchnorm"),
            per_layer(cfg.d_dropout, n, "d_dropout"), NoLabel(), num_classes,
        )
        feat = cfg.d_hidden[-1] if n else in_dim
        self.out = nn.Linear(feat, 1)
        self.aux = cond.d.aux_head(feat, num_classes)  # AC-GAN class logits, or None
        self.proj = cond.d.projection(feat, num_classes)  # projection discriminator's class embedding, or None
        if cfg.spectral_norm_d:
            apply_spectral_norm(self)
            spectral_norm_projection(self)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> DOut:
        h = x.flatten(1)  # [N, prod(shape)]
        if self.embed is not None:
            h = torch.cat([h, self.embed(c)], dim=1)
        feat = self.body(h, None)  # [N, F]
        logits = self.out(feat).squeeze(1)  # [N]
        if self.proj is not None:
            logits = logits + self.proj.project(c, feat)  # projection discriminator (Miyato & Koyama 2018)
        return DOut(logits, self.aux(feat) if self.aux is not None else None, feat)


@ARCHS.register("mlp", help="fully connected G and D (widths, activations, batch norm, dropout per layer)")
def build_mlp(cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> tuple[nn.Module, nn.Module]:
    if cfg.g_mapping_layers:
        raise ConfigError("model.g_mapping_layers puts fully connected layers in front of a convolutional G; the mlp "
                          "G is fully connected already: add layers to model.g_hidden instead.")
    if cfg.g_self_modulation:
        raise ConfigError("model.g_self_modulation is for the dcgan arch's G; the mlp G has no convolutional batch "
                          "norms to modulate. Remove it, or set model.arch=dcgan.")
    G = MLPGenerator(cfg, shape, num_classes, cond)
    if cfg.spectral_norm_g:
        apply_spectral_norm(G)
    return G, MLPDiscriminator(cfg, shape, num_classes, cond)
