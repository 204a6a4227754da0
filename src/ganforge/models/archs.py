"""The architecture registry. A builder is ``(cfg: ModelConfig, shape, num_classes, cond: Conditioning) -> (G, D)``
where ``G(z [N, z_dim], c [N] | None) -> x [N, *shape]`` and ``D(x, c) -> DOut``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ganforge.config import ModelConfig
from ganforge.models.conditioning import Conditioning
from ganforge.registry import Registry

Builder = Callable[[ModelConfig, tuple, int, Conditioning], tuple[nn.Module, nn.Module]]
ARCHS: Registry[Builder] = Registry("architecture")


def build_models(cfg: ModelConfig, shape: tuple, num_classes: int, cond: Conditioning) -> tuple[nn.Module, nn.Module]:
    return ARCHS.get(cfg.arch)(cfg, shape, num_classes, cond)
