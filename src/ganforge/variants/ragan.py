"""Relativistic average GAN (Jolicoeur-Martineau 2018, The relativistic discriminator: a key element missing
from standard GAN).

D no longer says how real an image is, but how much more real it is than the average image of the other kind:

    real_rel = C(x_r) - E[C(x_f)]        gen_rel = C(x_f) - E[C(x_r)]        (C: D's raw logits)

and the adversarial loss is applied to these relative logits, symmetrically in both phases:

    D:  L(real_rel, gen_rel)             G:  L(gen_rel, real_rel)

with L the D loss of ``objective.loss`` (bce: RaSGAN, the paper's main form, -log sigmoid(real_rel) -
log(1 - sigmoid(gen_rel)); hinge: RaHingeGAN). G therefore also learns from the real images' logits, through
E[C(x_f)] in real_rel: the real logits are constants to G, taken without gradient.
"""

from __future__ import annotations

import torch

from ganforge.config import Config
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.conditioning import Conditioning, LabelConcat, LabelInput, Projection
from ganforge.models.layers import DOut
from ganforge.variants.base import register
from ganforge.variants.gan import GAN, Batch, GANObjective


def relative_logits(real_logits: torch.Tensor, gen_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C(x_r) - E C(x_f), C(x_f) - E C(x_r)), each [N]."""
    return real_logits - gen_logits.mean(), gen_logits - real_logits.mean()


class RelativisticObjective(GANObjective):
    def d_adversarial(self, real_out: DOut, gen_out: DOut) -> torch.Tensor:
        real_rel, gen_rel = relative_logits(real_out.logits, gen_out.logits)
        return self.loss.d_loss(real_rel, gen_rel, self.ocfg.label_smoothing)

    def g_adversarial(self, batch: Batch, gen_out: DOut) -> torch.Tensor:
        with torch.no_grad():  # constants to G: it cannot change how D scores real images
            real_logits = self.run_D(batch.real_img, batch.real_c).logits
        real_rel, gen_rel = relative_logits(real_logits, gen_out.logits)
        return self.loss.d_loss(gen_rel, real_rel, 0.0)  # the roles swapped: G wants its samples "more real"


@register
class RaGAN(GAN):
    name = "ragan"
    help = "relativistic average GAN: D scores real vs the average fake and back (RaSGAN with bce, RaHinge, ...)"
    reference = "Jolicoeur-Martineau 2018, The relativistic discriminator: a key element missing from standard GAN"
    objective_class = RelativisticObjective

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)
        if cfg.objective.loss == "wasserstein":
            raise ConfigError(
                "variant ragan with objective.loss=wasserstein is just WGAN (the averages cancel). "
                "Use objective.loss=bce (RaSGAN), hinge or ls, or variant=wgan-gp."
            )


@register
class CRaGAN(RaGAN):
    name = "cragan"
    help = "conditional RaGAN: cGAN label pieces (embedding in G, label map in D) + relativistic average loss"
    conditioning = Conditioning(g=LabelConcat(), d=LabelInput())


@register
class CRaGANProjection(RaGAN):
    """The relativistic average loss on a projection D (Miyato & Koyama 2018) with the cGAN's G.

    The label enters D as an inner product with its penultimate features, as in ``cgan-projection``;
    only the loss differs. Measured on MNIST: docs/variants-measured.md, "cRaGAN on the projection D".
    """

    name = "cragan-projection"
    help = "conditional RaGAN on a projection D: the cGAN's G (label embedded, joined to z) + relativistic average loss"
    reference = "Jolicoeur-Martineau 2018 (relativistic loss); Miyato & Koyama 2018 (projection D)"
    conditioning = Conditioning(g=LabelConcat(), d=Projection())
