"""GAN variants. ONE FILE PER FAMILY OR VARIANT, each registering itself in ``VARIANTS`` (``variants.base``).

A variant is a registered family: its networks, optimizers, phases, losses and sampling (``gan.py`` holds the
G/D pair every image and point study uses), or a subclass that changes one piece of it (a label piece, a loss
term, its defaults). The defaults sit below the preset and the command line, so everything stays overridable.
``ganforge list variants`` prints them. Every module here is imported, so a new file registers itself.
"""

from __future__ import annotations

from ganforge.plugins import import_submodules
from ganforge.variants.base import VARIANTS, Family, Objective, OptimizerSpec, Phase, register

import_submodules(__name__, __path__)

__all__ = ["VARIANTS", "Family", "Objective", "OptimizerSpec", "Phase", "register"]
