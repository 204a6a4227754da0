"""Projection discriminator (Miyato & Koyama 2018), with either of two generators.

D(x, y) = psi(phi(x)) + embed(y) . phi(x): the label enters D as an inner product with D's
penultimate features instead of being concatenated to the input.

``projection`` is the paper's pair: G's batch norms take per-class gain and bias (conditional batch
norm, de Vries et al. 2017). The defaults follow the paper: hinge loss, spectral norm on every layer
of D (the class embedding included), Adam lr 2e-4 with betas (0, 0.9) and five D steps per G step.
Presets may override any of them. On the two-layer DCGAN G the per-class gains and biases have one convolution
after each to shape strokes with; ``mnist-projection-progan`` gives them two more (``model.g_extra_layers=2``,
each convolution followed by a conditional batch norm) and lets both rates fall to 0 over the second half, which
brings the pair within issue 11's FID line (docs/variants-measured.md, "Conditional batch norm alone, with depth
to act").

``cgan-projection`` keeps the projection D and gives G the cGAN's label: a learned embedding
concatenated to z, the conditioning StyleGAN2-ADA uses (and this project's ``stylegan2`` and
``progan``). On the two-layer DCGAN G, conditional batch norm carries the label slowly: per-class
gains and biases on two layers must select class-specific features from a z-only projection. Measured
on MNIST (docs/variants-measured.md), the same R1 D and recipe reach class accuracy 0.13 after
20 kimg with conditional batch norm and 0.88 with the embedded label. Its defaults are the cGAN's (none
of the paper's): on the DCGAN pair the presets pair it with an R1-regularised D without normalisation.

``projection-cbn-concat`` keeps both: G's batch norms take per-class gain and bias and the label embedding is also
joined to z, as BigGAN-deep's G does (Brock et al. 2019). The embedded label carries the class from the first step
and the conditional batch norms modulate each layer by class. On the DCGAN pair with the R1 projection D it meets
issue 11's FID line where the conditional-batch-norm-only G misses it (docs/variants-measured.md,
"Conditional batch norm with the label joined to z"). Defaults are the cGAN's, as ``cgan-projection``'s, but for
batch norm in the MLP G, which carries the label there.
"""

from __future__ import annotations

from ganforge.models.conditioning import ConditionalBN, Conditioning, LabelConcat, LabelConcatCBN, Projection
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


@register
class ProjectionCBNConcat(GAN):
    name = "projection-cbn-concat"
    help = "projection discriminator + conditional batch norm in G, the label embedding also joined to z (BigGAN-deep)"
    reference = (
        "Miyato & Koyama 2018 (projection D, conditional BN); Brock et al. 2019, BigGAN-deep (label joined to z and "
        "to every BN)"
    )
    conditioning = Conditioning(g=LabelConcatCBN(), d=Projection())
    # g_batchnorm: the MLP G's batch norms carry the label too (the DCGAN G always has them)
    defaults = {"model": {"g_batchnorm": [True]}}
