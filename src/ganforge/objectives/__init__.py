"""Losses, regularisers and augmentation: all GAN math lives here, apart from models and loop."""

from __future__ import annotations

from ganforge.objectives.adversarial import LOSSES, AdversarialLoss
from ganforge.objectives.objective import GANObjective, Phase

__all__ = ["LOSSES", "AdversarialLoss", "GANObjective", "Phase"]
