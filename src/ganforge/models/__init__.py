"""Generator and discriminator architectures. Each module registers a builder in ``ARCHS`` (``models.archs``).

A builder is ``(cfg: ModelConfig, shape, num_classes, cond: Conditioning) -> (G, D)`` where
``G(z [N, z_dim], c [N] | None) -> x [N, *shape]`` and ``D(x, c) -> DOut``. How the label enters each network
is the ``Conditioning``'s business (``models.conditioning``): builders ask its pieces for layers.
Every module in this package is imported, so a new architecture file registers itself.
"""

from __future__ import annotations

from ganforge.models.archs import ARCHS, build_models
from ganforge.models.conditioning import Conditioning
from ganforge.models.layers import DOut
from ganforge.plugins import import_submodules

import_submodules(__name__, __path__)

__all__ = ["ARCHS", "Conditioning", "DOut", "build_models"]
