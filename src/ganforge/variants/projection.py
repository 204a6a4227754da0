"""Projection discriminator with conditional batch norm in G (Miyato & Koyama 2018).

D(x, y) = psi(phi(x)) + embed(y) . phi(x): the label enters D as an inner product with D's
penultimate features instead of being concatenated to the input. G's batch norms take per-class
gain and bias (conditional batch norm, de Vries et al. 2017). The defaults follow the paper: hinge
loss, spectral norm on every layer of D (the class embedding included), Adam lr 2e-4 with
betas (0, 0.9) and five D steps per G step. Presets may override any of them.
"""

from __future__ import annotations

from ganforge.models.conditioning import ConditionalBN, Conditioning, Projection
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
