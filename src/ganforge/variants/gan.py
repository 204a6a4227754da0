"""The unconditional GAN (Goodfellow et al. 2014) with any registered adversarial loss."""

from __future__ import annotations

from ganforge.variants import Variant, register

register(
    Variant(
        name="gan",
        help="unconditional GAN; loss from objective.loss (bce non-saturating by default, minimax, ls, hinge, ...)",
        reference="Goodfellow et al. 2014, Generative Adversarial Nets",
    )
)
