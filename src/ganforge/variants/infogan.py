"""InfoGAN (Chen et al. 2016): an unconditional GAN whose G also takes a categorical latent code.

No label is used. G takes z and a code c drawn uniformly from ``family.codes`` values (a learned embedding of c
joined to z, as the cGAN joins its label); D never sees c. D has a second head, Q, that predicts c from an image
(the paper's Q shares D's body and adds one linear layer). Q is trained on generated images only, and G is
trained to make its code recoverable: both minimise ``family.info_weight`` x cross-entropy(Q(G(z, c)), c), the
variational lower bound on the mutual information I(c; G(z, c)) for a fixed uniform prior (the paper's
lambda = 1 for discrete codes). The adversarial loss is ``objective.loss``, so WGAN-GP's critic with a Q head is
``variant=infogan`` with ``objective.loss=wasserstein`` and ``objective.gp_weight=10``.

Why a discrete code: a G that maps one Gaussian smoothly onto data made of separate classes (digits) must pass
through the space between them, and the samples it puts there are what precision and FID punish. A code lets G
jump; the information term makes it use the code, and on MNIST the codes come to stand for digit classes
(the paper: 5% error against the labels). Evaluated as an unconditional generator: the exported G draws its
codes itself, uniformly, and ``generate`` / ``evaluate`` never ask it for a class.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ganforge.config import Config
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.conditioning import AuxClassifier, Conditioning, LabelConcat
from ganforge.models.layers import DOut
from ganforge.variants.acgan import aux_loss
from ganforge.variants.base import Phase, register
from ganforge.variants.gan import GAN, Batch, GANObjective, Term


@dataclass(frozen=True)
class InfoGANOptions:
    codes: int = 10  # values of the categorical code (the paper: 10 on MNIST)
    info_weight: float = 1.0  # lambda, the mutual-information term's weight (the paper: 1 for discrete codes)

    def __post_init__(self) -> None:
        if not 2 <= self.codes <= 1000:
            raise ConfigError("bad value: family.codes must be in [2, 1000]. Fix it in the preset or with --set.")
        if not 0 <= self.info_weight <= 1e3:
            raise ConfigError("bad value: family.info_weight must be in [0, 1000]. Fix it in the preset or with --set.")


class InfoGANObjective(GANObjective):
    def __init__(self, family: InfoGAN, cfg: Config, *args: Any) -> None:
        opts = family.settings(cfg)
        self.codes, self.info_weight = opts.codes, opts.info_weight
        super().__init__(family, cfg, *args)

    def grid_classes(self, data: Dataset) -> int:
        return self.codes  # one grid row per code: what each code came to stand for

    def draw(self, phase: Phase, idx: torch.Tensor) -> Batch:
        batch = super().draw(phase, idx)  # real images, z; the data's labels are not used
        gen_c = torch.randint(0, self.codes, (self.batch,), device=self.device)  # c ~ uniform, every phase
        return Batch(batch.real_img, None, batch.gen_z, gen_c)

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> DOut:
        return super().run_D(img, None)  # D never sees the code (nor its minibatch-std groups)

    def d_terms(self, batch: Batch, real_out: DOut, gen_out: DOut, gen_img: torch.Tensor) -> Iterator[Term]:
        yield "loss_info", aux_loss(gen_out, batch.gen_c), self.info_weight  # Q learns c from G's images only
        yield from super().d_terms(batch, real_out, gen_out, gen_img)

    def g_terms(self, batch: Batch, gen_out: DOut) -> Iterator[Term]:
        yield None, aux_loss(gen_out, batch.gen_c), self.info_weight  # G: make c recoverable from the image


@register
class InfoGAN(GAN):
    name = "infogan"
    help = ("InfoGAN: unconditional; G also takes a uniform categorical code, D's Q head recovers it "
            "(mutual-information term, family.info_weight); no labels used")
    reference = "Chen et al. 2016, InfoGAN: Interpretable Representation Learning by Information Maximizing GANs"
    conditioning = Conditioning(g=LabelConcat(), d=AuxClassifier())
    objective_class = InfoGANObjective
    options = InfoGANOptions
    data_kinds = ("image",)

    @property
    def needs_labels(self) -> bool:
        return False  # the code is G's own latent input, not a label of the data

    def own_labels(self, cfg: Config) -> int:
        return self.settings(cfg).codes

    def label_info(self, cfg: Config, data: Dataset) -> dict[str, Any]:
        k = self.own_labels(cfg)  # G draws its codes itself, uniformly: sampled and measured as unconditional
        return {"num_classes": k, "class_names": [f"code {i}" for i in range(k)], "cluster_prior": [1.0 / k] * k}
