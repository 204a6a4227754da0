"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic kept 1-Lipschitz by a gradient penalty.

Critic loss E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates
x_hat between real and generated samples; lambda = 10 and five critic steps per G step, Adam with
betas (0.5, 0.9) as in the paper's code for MNIST (lr 1e-4). The penalty is per sample, so the critic
has no batch norm (the paper's section 4): presets that enable ``model.d_batchnorm`` are refused.
"""

from __future__ import annotations

from ganforge.variants import Variant, register

WGAN_GP_DEFAULTS = {
    "objective": {"loss": "wasserstein", "gp_weight": 10.0, "n_critic": 5},
    "model": {"d_batchnorm": [False]},
    "optim": {"lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.5, "beta2": 0.9},
}

register(
    Variant(
        name="wgan-gp",
        help="WGAN-GP: Wasserstein critic, gradient penalty 10 on interpolates, 5 critic steps, no BN in D",
        defaults=WGAN_GP_DEFAULTS,
        reference="Gulrajani et al. 2017, Improved Training of Wasserstein GANs",
    )
)
