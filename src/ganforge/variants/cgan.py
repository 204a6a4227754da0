"""Conditional GAN (Mirza & Osindero 2014), as in the conditional MNIST / PathMNIST studies.

G sees the label as a learned embedding (``model.embed_dim``, 50 by default) concatenated to the
latent; D sees it as an embedded H x W map stacked onto the image as an extra channel (convolutional
D), or as the embedding concatenated to the flattened input (MLP D). Any adversarial loss works.
"""

from __future__ import annotations

from ganforge.models.conditioning import Conditioning, LabelConcat, LabelInput
from ganforge.variants.base import register
from ganforge.variants.gan import GAN


@register
class CGAN(GAN):
    name = "cgan"
    help = "conditional GAN: label embedding concatenated to z in G, label map as an extra channel of D's input"
    reference = "Mirza & Osindero 2014, Conditional Generative Adversarial Nets"
    conditioning = Conditioning(g=LabelConcat(), d=LabelInput())
