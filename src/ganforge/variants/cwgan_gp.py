"""Conditional WGAN-GP: WGAN-GP (Gulrajani et al. 2017) with the labels of the cGAN (Mirza & Osindero 2014).

G sees the label embedding concatenated to the latent; the critic sees the label map as an extra
input channel (convolutional) or the embedding concatenated to its input (MLP). The gradient penalty
is taken with respect to the image only, at interpolates that keep the real batch's labels (the
generated batch in a critic step carries the same labels, so each interpolate has one label).
"""

from __future__ import annotations

from ganforge.models.conditioning import Conditioning, LabelConcat, LabelInput
from ganforge.variants.base import register
from ganforge.variants.gan import GAN
from ganforge.variants.wgan_gp import wgan_gp_defaults


@register
class CWGANGP(GAN):
    name = "cwgan-gp"
    help = "conditional WGAN-GP: cGAN conditioning (label embedding in G, label map in D) + Wasserstein + GP"
    reference = "Gulrajani et al. 2017; Mirza & Osindero 2014"
    conditioning = Conditioning(g=LabelConcat(), d=LabelInput())
    defaults = wgan_gp_defaults()
