"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks").

Two generators, G_AB: A -> B and G_BA: B -> A, and two PatchGAN discriminators, D_A and D_B, trained from
unpaired images of the two domains. G's loss, with the least-squares adversarial loss (``objective.loss=ls``):

    L_G = (D_B(G_AB(a)) - 1)^2 + (D_A(G_BA(b)) - 1)^2                                  adversarial
        + 10 * ( |G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1 )                       cycle (lambda = 10)
        + 0.5 * 10 * ( |G_BA(a) - a|_1 + |G_AB(b) - b|_1 )                             identity (0.5 lambda)
    L_D = 1/2 (D(x) - 1)^2 + 1/2 D(fake)^2 for each D, the fakes drawn from a 50-image history pool per domain.

The identity term (section 5.2) keeps colours and needs domains with the same number of channels; it is off
otherwise. Networks: ``G`` = Translator(AtoB, BtoA), ResNet generators (``model.g_channels`` wide, ``n_blocks``
residual blocks) or U-Nets; ``D`` = ``PairOfDiscriminators`` holding D_A, D_B and both pools (in its buffers, so a
checkpoint keeps them). One Adam per pair (the paper steps G_AB and G_BA together, and Adam is per-parameter, so
one optimizer over D_A and D_B equals two). Phases: G first, then D on the fakes that G step produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ganforge.config import Config, ModelConfig
from ganforge.data.base import Dataset
from ganforge.models.translation import PatchDiscriminator, Translator
from ganforge.objectives.adversarial import LOSSES
from ganforge.objectives.history import ImagePool
from ganforge.variants.base import Phase, register
from ganforge.variants.pix2pix import build_g, check_options
from ganforge.variants.two_domain import PairBatch, TranslationObjective, TwoDomainFamily, image_part


@dataclass(frozen=True)
class CycleGANOptions:
    cycle_weight: float = 10.0  # lambda of the cycle-consistency L1 terms
    identity_weight: float = 0.5  # the identity L1 terms weigh identity_weight * cycle_weight (0: off)
    pool_size: int = 50  # images in each domain's history pool (0: D sees only the newest fakes)
    generator: Literal["resnet", "unet"] = "resnet"
    n_blocks: int = 6  # residual blocks of the ResNet generators (the paper: 6 at 128 px, 9 at 256 px)
    d_layers: int = 2  # PatchGAN stride-2 stages: 2 judges 34x34 patches (3: the paper's 70x70)
    dropout: float = 0.0  # U-Net decoder dropout (generator=unet only)

    def __post_init__(self) -> None:
        check_options(self)


class PairOfDiscriminators(nn.Module):
    """D_A judges domain A, D_B domain B; each with the history pool of the fakes it is shown."""

    def __init__(self, shape_a: tuple[int, ...], shape_b: tuple[int, ...], ndf: int, n_layers: int, pool: int):
        super().__init__()
        self.D_A, self.D_B = (
            PatchDiscriminator(shape_a[0], ndf, n_layers),
            PatchDiscriminator(shape_b[0], ndf, n_layers),
        )
        self.pool_A, self.pool_B = ImagePool(pool, shape_a), ImagePool(pool, shape_b)


class CycleGANObjective(TranslationObjective):
    def __init__(
        self,
        cfg: Config,
        options: CycleGANOptions,
        G: Translator,
        D: PairOfDiscriminators,
        data: Dataset,
        real_x: torch.Tensor,
    ) -> None:
        super().__init__(cfg, G, data, real_x)
        self.D, self.options = D, options
        self.loss = LOSSES.get(cfg.objective.loss)
        # The paper's G term is (D(G(x)) - 1)^2; the registry's ls loss is half of that (0.5 (D - 1)^2).
        self.g_scale = 2.0 if cfg.objective.loss == "ls" else 1.0
        same_channels = self.real_a.shape[1] == self.real_b.shape[1]
        self.identity = self.options.identity_weight * self.options.cycle_weight if same_channels else 0.0
        self.phases = [Phase("G", "G"), Phase("D", "D", shows_real=True)]
        self.fakes: tuple[torch.Tensor, torch.Tensor] | None = None  # the last G step's (fake_a, fake_b), for D

    def draw(self, phase: Phase, idx: torch.Tensor) -> PairBatch:
        return self.draw_pair(idx, paired=False)  # unpaired even when the data has pairs (they are for evaluation)

    def accumulate_gradients(self, phase: Phase, batch: PairBatch) -> dict[str, torch.Tensor]:
        a, b = batch.real_a, batch.real_b
        G, D, o = self.G, self.D, self.options
        if phase.name == "G":
            fake_b, fake_a = G.AtoB(a), G.BtoA(b)  # [N, C_B, H, W], [N, C_A, H, W]
            adv = self.g_scale * (self.loss.g_loss(D.D_B(fake_b)) + self.loss.g_loss(D.D_A(fake_a)))
            cycle = (G.BtoA(fake_b) - a).abs().mean() + (G.AtoB(fake_a) - b).abs().mean()
            loss = adv + o.cycle_weight * cycle
            stats = {"adv_G": adv.detach(), "cycle": cycle.detach()}
            if self.identity > 0:
                idt = (G.BtoA(a) - a).abs().mean() + (G.AtoB(b) - b).abs().mean()
                loss = loss + self.identity * idt
                stats["identity"] = idt.detach()
            loss.backward()
            self.fakes = (fake_a.detach(), fake_b.detach())
            return {"loss_G": loss.detach(), **stats}
        if phase.name == "D":
            if self.fakes is None:  # a D step with no G step before it (e.g. run on its own): fresh fakes
                with torch.no_grad():
                    self.fakes = (G.BtoA(b), G.AtoB(a))
            fake_a, fake_b = D.pool_A.query(self.fakes[0]), D.pool_B.query(self.fakes[1])
            self.fakes = None
            real_a, gen_a = D.D_A(a), D.D_A(fake_a)
            real_b, gen_b = D.D_B(b), D.D_B(fake_b)
            smooth = self.cfg.objective.label_smoothing
            loss = self.loss.d_loss(real_a, gen_a, smooth) + self.loss.d_loss(real_b, gen_b, smooth)
            loss.backward()
            real = torch.cat([real_a.detach().flatten(), real_b.detach().flatten()]).float()
            gen = torch.cat([gen_a.detach().flatten(), gen_b.detach().flatten()]).float()
            thr = self.loss.logit_threshold
            acc = 0.5 * ((real > thr).float().mean() + (gen <= thr).float().mean())
            if self.loss.probabilities:
                real, gen = torch.sigmoid(real), torch.sigmoid(gen)
            return {"loss_D": loss.detach(), "D_real": real.mean(), "D_fake": gen.mean(), "D_acc": acc}
        raise ValueError(f"CycleGAN has no phase {phase.name!r}")


@register
class CycleGAN(TwoDomainFamily):
    name = "cyclegan"
    help = (
        "unpaired image-to-image translation A <-> B: two ResNet generators, two PatchGAN Ds, LSGAN, "
        "cycle L1 x10, identity x0.5, 50-image history pools"
    )
    reference = "Zhu et al. 2017, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks"
    paired = False
    two_way = True
    options = CycleGANOptions
    defaults = {"objective": {"loss": "ls"}, "optim": {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5}}

    def build_translator(
        self, model: ModelConfig, shape_a: tuple[int, ...], shape_b: tuple[int, ...], options: Any,
        num_classes: int = 0,
    ) -> Translator:
        o = options or CycleGANOptions()
        side = shape_a[-1]
        return Translator(
            build_g(o, model, shape_a[0], shape_b[0], side), build_g(o, model, shape_b[0], shape_a[0], side)
        )

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        o = self.settings(cfg)
        shape_a = image_part(data)
        G = self.build_translator(cfg.model, shape_a, data.shape_b, o)
        D = PairOfDiscriminators(shape_a, data.shape_b, cfg.model.d_channels, o.d_layers, o.pool_size)
        return {"G": G, "D": D}

    def objective(
        self,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> CycleGANObjective:
        return CycleGANObjective(cfg, self.settings(cfg), networks["G"], networks["D"], data, real_x)  # type: ignore[arg-type]
