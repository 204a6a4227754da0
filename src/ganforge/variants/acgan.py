"""Auxiliary-classifier GAN (Odena et al. 2017).

G sees the label concatenated to the latent, as in the cGAN. D does not see the label: it has a
second head of class logits, trained with cross-entropy on the raw logits (never a softmax before
the cross-entropy) on real and generated images; G is trained to make its samples classified as the
label it was asked for. The weight of that classification loss is ``objective.aux_weight``.

``family.fake_aux`` (default 1, the paper) weighs D's classification of *generated* images. Rewarding D for
recognising G's class, and G for being recognised, pushes each class's samples away from the class boundaries
towards a few easy, prototypical images: the loss of intra-class diversity that Shu, Bui & Ermon 2017 (AC-GAN
learns a biased distribution) and Gong et al. 2019 (Twin Auxiliary Classifiers GAN) analyse. With
``family.fake_aux=0`` D's classifier learns from real images only and G is still asked to be classified as its
label (the presets use this; measurements in docs/variants-measured.md).

``family.g_aux`` (default 1) weighs G's own classification term: G maximising log p(c | G(z, c)) under a
classifier of real digits is mode-seeking (it gains most from the one most typical image of each class), which
is the within-class collapse above seen from G's side; a smaller weight leaves more of G's update to the
adversarial term that rewards covering the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class ACGANOptions:
    fake_aux: float = 1.0  # weight of D's classification of generated images, relative to real ones (paper: 1)
    g_aux: float = 1.0  # weight of G's classification term, relative to objective.aux_weight (paper: 1)

    def __post_init__(self) -> None:
        for name in ("fake_aux", "g_aux"):
            if not 0 <= getattr(self, name) <= 1e3:
                raise ConfigError(f"bad value: family.{name} must be in [0, 1000]. Fix it in the preset or with --set.")


class ACGANObjective(GANObjective):
    def __init__(self, family: GAN, cfg: Config, *args: Any) -> None:
        super().__init__(family, cfg, *args)
        self.fake_aux, self.g_aux = family.settings(cfg).fake_aux, family.settings(cfg).g_aux

    def d_terms(self, batch: Batch, real_out: DOut, gen_out: DOut, gen_img: torch.Tensor) -> Iterator[Term]:
        # D learns to classify real images, and (fake_aux > 0) generated ones by the label G was asked for.
        aux = aux_loss(real_out, batch.real_c)
        if self.fake_aux > 0:
            aux = aux + self.fake_aux * aux_loss(gen_out, batch.gen_c)
        yield "loss_aux", aux, self.ocfg.aux_weight
        yield from super().d_terms(batch, real_out, gen_out, gen_img)

    def g_terms(self, batch: Batch, gen_out: DOut) -> Iterator[Term]:
        # G: be classified as the label asked; -log softmax(aux_logits)[c]
        yield None, aux_loss(gen_out, batch.gen_c), self.ocfg.aux_weight * self.g_aux


@register
class ACGAN(GAN):
    name = "acgan"
    help = "AC-GAN: label concatenated to z in G; D predicts the class with an auxiliary head (CE on logits)"
    reference = "Odena, Olah & Shlens 2017, Conditional Image Synthesis with Auxiliary Classifier GANs"
    conditioning = Conditioning(g=LabelConcat(), d=AuxClassifier())
    objective_class = ACGANObjective
    options = ACGANOptions

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)
        if data.num_classes < 2:
            raise ConfigError("the AC-GAN auxiliary classifier needs a dataset with at least 2 labelled classes.")
