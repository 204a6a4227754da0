"""Auxiliary-classifier GAN (Odena et al. 2017).

G sees the label concatenated to the latent, as in the cGAN. D does not see the label: it has a
second head of class logits, trained with cross-entropy on the raw logits (never a softmax before
the cross-entropy) on real and generated images; G is trained to make its samples classified as the
label it was asked for. The weight of that classification loss is ``objective.aux_weight``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ganforge.config import Config
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.conditioning import AuxClassifier, Conditioning, LabelConcat
from ganforge.models.layers import DOut
from ganforge.variants.base import register
from ganforge.variants.gan import GAN, Batch, GANObjective, Term


def aux_loss(out: DOut, c: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of D's class logits [N, K] against the labels [N]: on raw logits, no softmax before it."""
    return F.cross_entropy(out.aux_logits, c)


class ACGANObjective(GANObjective):
    def d_terms(self, batch: Batch, real_out: DOut, gen_out: DOut, gen_img: torch.Tensor) -> Iterator[Term]:
        # D learns to classify real images and generated ones by the label G was asked for.
        yield "loss_aux", aux_loss(real_out, batch.real_c) + aux_loss(gen_out, batch.gen_c), self.ocfg.aux_weight
        yield from super().d_terms(batch, real_out, gen_out, gen_img)

    def g_terms(self, batch: Batch, gen_out: DOut) -> Iterator[Term]:
        yield None, aux_loss(gen_out, batch.gen_c), self.ocfg.aux_weight  # G: be classified as the label asked


@register
class ACGAN(GAN):
    name = "acgan"
    help = "AC-GAN: label concatenated to z in G; D predicts the class with an auxiliary head (CE on logits)"
    reference = "Odena, Olah & Shlens 2017, Conditional Image Synthesis with Auxiliary Classifier GANs"
    conditioning = Conditioning(g=LabelConcat(), d=AuxClassifier())
    objective_class = ACGANObjective

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)
        if data.num_classes < 2:
            raise ConfigError("the AC-GAN auxiliary classifier needs a dataset with at least 2 labelled classes.")
