"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic kept 1-Lipschitz by a gradient penalty.

Critic loss E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates
x_hat between real and generated samples. Defaults from the paper's Algorithm 1: lambda = 10, five
critic steps per G step, Adam lr 1e-4 with betas (0, 0.9). The penalty is taken per sample, so the
critic has no batch norm (the paper's section 4); a config that turns ``model.d_batchnorm`` back on
together with a gradient penalty is refused before training.
"""

from __future__ import annotations

from typing import Any

from ganforge.variants.base import register
from ganforge.variants.gan import GAN


def wgan_gp_defaults() -> dict[str, Any]:
    """A fresh copy each call (shared by ``cwgan-gp``), so no variant can alter another's defaults."""
    return {
        "objective": {"loss": "wasserstein", "gp_weight": 10.0, "n_critic": 5},
        "model": {"d_batchnorm": [False]},
        "optim": {"lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.0, "beta2": 0.9},
    }


@register
class WGANGP(GAN):
    name = "wgan-gp"
    help = "WGAN-GP: Wasserstein critic, gradient penalty 10 on interpolates, 5 critic steps, no BN in D"
    reference = "Gulrajani et al. 2017, Improved Training of Wasserstein GANs"
    defaults = wgan_gp_defaults()
