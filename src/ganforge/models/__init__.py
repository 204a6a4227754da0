"""Generator and discriminator architectures. Each module registers a builder in ``ARCHS``.

A builder is ``(cfg: ModelConfig, shape, num_classes, cond: Conditioning) -> (G, D)`` where
``G(z [N, z_dim], c [N] | None) -> x [N, *shape]`` and ``D(x, c) -> DOut``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ganforge.config import ModelConfig
from ganforge.models.layers import Conditioning, DOut
from ganforge.registry import Registry

Builder = Callable[[ModelConfig, tuple, int, Conditioning], tuple[nn.Module, nn.Module]]
ARCHS: Registry[Builder] = Registry("architecture")

from ganforge.models import dcgan, mlp  # noqa: E402,F401  (registration)


def build_models(cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> tuple[nn.Module, nn.Module]:
    return ARCHS.get(cfg.arch)(cfg, shape, num_classes, cond)


__all__ = ["ARCHS", "Conditioning", "DOut", "build_models"]
