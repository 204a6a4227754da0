"""Loss terms, regularisers and augmentation: the pieces of GAN math that families assemble.

A family (``ganforge.variants``) owns how they combine into its phases; this package holds the parts that
several families share: adversarial losses on logits (``adversarial``), gradient penalties (``regularizers``)
and differentiable / classic augmentation (``augment``).
"""

from __future__ import annotations

from ganforge.objectives.adversarial import LOSSES, AdversarialLoss

__all__ = ["LOSSES", "AdversarialLoss"]
