"""InfoGAN (Chen et al. 2016): an unconditional GAN whose G also takes a categorical latent code.

No label is used. G takes z and a code c drawn from ``family.codes`` values (a learned embedding of c
joined to z, as the cGAN joins its label); D never sees c. D has a second head, Q, that predicts c from an image
(the paper's Q shares D's body and adds one linear layer). Q is trained on generated images only, and G is
trained to make its code recoverable: both minimise ``family.info_weight`` x cross-entropy(Q(G(z, c)), c), the
variational lower bound on the mutual information I(c; G(z, c)) for a fixed prior (the paper's
lambda = 1 for discrete codes). The adversarial loss is ``objective.loss``, so WGAN-GP's critic with a Q head is
``variant=infogan`` with ``objective.loss=wasserstein`` and ``objective.gp_weight=10``.

Why a discrete code: a G that maps one Gaussian smoothly onto data made of separate classes (digits) must pass
through the space between them, and the samples it puts there are what precision and FID punish. A code lets G
jump; the information term makes it use the code, and on MNIST the codes come to stand for digit classes
(the paper: 5% error against the labels). Evaluated as an unconditional generator: the exported G draws its
codes itself, at the prior's frequencies, and ``generate`` / ``evaluate`` never ask it for a class.

The prior is uniform (the paper's) unless ``family.prior_kimg`` > 0. A uniform prior fixes how often G draws each
code, so when two codes come to stand for one digit and one code for two, the digits' proportions are wrong for
the rest of the run and FID counts it. From ``prior_kimg`` kimg on, the prior follows Q's mean posterior on the
real batches D sees (an exponential average with a half-life of ``PRIOR_HALF_LIFE_KIMG`` kimg): each code is then
drawn as often as Q finds it in the data (the prior is a running estimate, so the bound holds step by step,
for the prior of that step). The prior is a buffer of the ``code_prior`` network, so it is in every
checkpoint and resumes exactly, and ``generator.json`` records it for sampling.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

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
    prior_kimg: float = 0.0  # 0: codes drawn uniformly (the paper); > 0: from this kimg on, as often as Q finds them

    def __post_init__(self) -> None:
        if not 2 <= self.codes <= 1000:
            raise ConfigError("bad value: family.codes must be in [2, 1000]. Fix it in the preset or with --set.")
        if not 0 <= self.info_weight <= 1e3:
            raise ConfigError("bad value: family.info_weight must be in [0, 1000]. Fix it in the preset or with --set.")
        if not 0 <= self.prior_kimg <= 1e6:
            raise ConfigError("bad value: family.prior_kimg must be 0 (a uniform prior) or the kimg from which the "
                              "prior is learned, at most 1e6. Fix it in the preset or with --set.")


PRIOR_HALF_LIFE_KIMG = 10.0  # the learned prior's memory: Q's posterior on the last ~10 kimg of real images


class CodePrior(nn.Module):
    """How often G draws each code: uniform at first; once ``active`` (set from the images seen), an exponential
    average of Q's mean posterior on real batches. Buffers only (a network without parameters): in every
    checkpoint, resumed exactly; updated without a Python branch on its state."""

    def __init__(self, codes: int, batch: int) -> None:
        super().__init__()
        self.register_buffer("probs", torch.full((codes,), 1.0 / codes))
        self.register_buffer("active", torch.zeros([]))
        self.rate = 1.0 - 0.5 ** (batch / (PRIOR_HALF_LIFE_KIMG * 1000))  # per D step, for this batch size

    def draw(self, n: int) -> torch.Tensor:
        return torch.multinomial(self.probs, n, replacement=True)

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor) -> None:
        posterior = torch.softmax(real_logits.detach().float(), dim=1).mean(0)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(posterior)  # each rank holds its share of the global batch: the same prior on every rank
            posterior /= dist.get_world_size()
        self.probs.add_((posterior - self.probs) * (self.rate * self.active))


class InfoGANObjective(GANObjective):
    def __init__(self, family: InfoGAN, cfg: Config, *args: Any) -> None:
        opts = family.settings(cfg)
        self.codes, self.info_weight, self.prior_images = opts.codes, opts.info_weight, opts.prior_kimg * 1000
        self.prior: CodePrior | None = None  # family.prior_kimg > 0: the learned prior (family.objective)
        super().__init__(family, cfg, *args)

    def set_progress(self, images_seen: int) -> None:
        super().set_progress(images_seen)
        if self.prior is not None:
            self.prior.active.fill_(float(images_seen >= self.prior_images))

    def grid_classes(self, data: Dataset) -> int:
        return self.codes  # one grid row per code: what each code came to stand for

    def draw(self, phase: Phase, idx: torch.Tensor) -> Batch:
        batch = super().draw(phase, idx)  # real images, z; the data's labels are not used
        if self.prior is None:
            gen_c = torch.randint(0, self.codes, (self.batch,), device=self.device)  # c ~ uniform, every phase
        else:
            gen_c = self.prior.draw(self.batch)  # c ~ the prior, every phase
        return Batch(batch.real_img, None, batch.gen_z, gen_c)

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> DOut:
        return super().run_D(img, None)  # D never sees the code (nor its minibatch-std groups)

    def d_terms(self, batch: Batch, real_out: DOut, gen_out: DOut, gen_img: torch.Tensor) -> Iterator[Term]:
        yield "loss_info", aux_loss(gen_out, batch.gen_c), self.info_weight  # Q learns c from G's images only
        if self.prior is not None:  # Q's reading of the real batch moves the prior (once active)
            assert real_out.aux_logits is not None
            self.prior.update(real_out.aux_logits)
        yield from super().d_terms(batch, real_out, gen_out, gen_img)

    def g_terms(self, batch: Batch, gen_out: DOut) -> Iterator[Term]:
        yield None, aux_loss(gen_out, batch.gen_c), self.info_weight  # G: make c recoverable from the image


@register
class InfoGAN(GAN):
    name = "infogan"
    help = ("InfoGAN: unconditional; G also takes a categorical code (uniform, or from family.prior_kimg on as often "
            "as Q finds it in real images), D's Q head recovers it (mutual-information term, family.info_weight); "
            "no labels used")
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

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        nets = super().build_networks(cfg, data)
        if self.settings(cfg).prior_kimg > 0:
            nets["code_prior"] = CodePrior(self.own_labels(cfg), cfg.train.batch_size)
        return nets

    def objective(self, cfg: Config, networks: dict[str, nn.Module], data: Dataset, real_x: torch.Tensor,
                  real_y: torch.Tensor | None) -> InfoGANObjective:
        objective = super().objective(cfg, networks, data, real_x, real_y)
        assert isinstance(objective, InfoGANObjective)
        objective.prior = networks.get("code_prior")  # type: ignore[assignment]
        return objective

    def label_info(self, cfg: Config, data: Dataset, nets: dict[str, nn.Module] | None = None) -> dict[str, Any]:
        k = self.own_labels(cfg)  # G draws its codes itself: sampled and measured as unconditional
        prior = nets.get("code_prior") if nets is not None else None
        probs = prior.probs.tolist() if prior is not None else [1.0 / k] * k  # type: ignore[union-attr, operator]
        return {"num_classes": k, "class_names": [f"code {i}" for i in range(k)], "cluster_prior": probs}
