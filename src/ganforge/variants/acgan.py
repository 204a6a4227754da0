"""Auxiliary-classifier GAN (Odena et al. 2017).

G sees the label concatenated to the latent, as in the cGAN. D does not see the label: it has a
second head of class logits, trained with cross-entropy on the raw logits (never a softmax before
the cross-entropy) on real and generated images; G is trained to make its samples classified as the
label it was asked for. The weight of that classification loss is ``objective.aux_weight``.
"""

from __future__ import annotations

from ganforge.models.layers import Conditioning
from ganforge.variants import Variant, register

register(
    Variant(
        name="acgan",
        help="AC-GAN: label concatenated to z in G; D predicts the class with an auxiliary head (CE on logits)",
        conditioning=Conditioning(g="concat", d="aux"),
        reference="Odena, Olah & Shlens 2017, Conditional Image Synthesis with Auxiliary Classifier GANs",
    )
)
