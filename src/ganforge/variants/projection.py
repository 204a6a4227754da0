"""Projection discriminator (Miyato & Koyama 2018), with either of two generators.

D(x, y) = psi(phi(x)) + embed(y) . phi(x): the label enters D as an inner product with D's
penultimate features instead of being concatenated to the input.

``projection`` is the paper's pair: G's batch norms take per-class gain and bias (conditional batch
norm, de Vries et al. 2017). The defaults follow the paper: hinge loss, spectral norm on every layer
of D (the class embedding included), Adam lr 2e-4 with betas (0, 0.9) and five D steps per G step.
Presets may override any of them.

``cgan-projection`` keeps the projection D and gives G the cGAN's label: a learned embedding
concatenated to z, the conditioning StyleGAN2-ADA uses (and this project's ``stylegan2`` and
``progan``). On the two-layer DCGAN G, conditional batch norm carries the label slowly: per-class
gains and biases on two layers must select class-specific features from a z-only projection. Measured
on MNIST (docs/variants-measured.md), the same R1 D and recipe reach class accuracy 0.13 after
20 kimg with conditional batch norm and 0.88 with the embedded label. Its defaults are the cGAN's (none
of the paper's): on the DCGAN pair the presets pair it with an R1-regularised D without normalisation.
"""

from __future__ import annotations

from ganforge.models.conditioning import ConditionalBN, Conditioning, LabelConcat, Projection
from ganforge.variants.base import register
from ganforge.variants.gan import GAN


@register
class ProjectionGAN(GAN):
    name = "projection"
    help = "projection discriminator + conditional batch norm in G; hinge loss and spectral norm by default"
    reference = "Miyato & Koyama 2018, cGANs with Projection Discriminator"
    conditioning = Conditioning(g=ConditionalBN(), d=Projection())
    defaults = {
        "objective": {"loss": "hinge", "n_critic": 5},
        # g_batchnorm: the MLP G needs batch norm layers to carry the label (the DCGAN G always has them).
        "model": {"spectral_norm_d": True, "g_batchnorm": [True]},
        "optim": {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.0, "beta2": 0.9},
    }


@register
class CGANProjection(GAN):
    name = "cgan-projection"
    help = "projection discriminator + the cGAN's G (label embedding concatenated to z), as StyleGAN2-ADA"
    reference = "Miyato & Koyama 2018 (projection D); Karras et al. 2020, StyleGAN2-ADA (embedded label in G)"
    conditioning = Conditioning(g=LabelConcat(), d=Projection())
