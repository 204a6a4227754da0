"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"), CVPR 2017.

Paired translation A -> B: a U-Net G maps the source to the target, a PatchGAN D judges (source, target) pairs
patch by patch, and G minimises the adversarial loss plus ``l1_weight`` (100) times the L1 distance to the ground
truth, which carries the low frequencies while D sharpens the high ones:

    L_D = 1/2 [ -log D(a, b) - log(1 - D(a, G(a))) ]          (halved, as the paper does, to slow D)
    L_G = -log D(a, G(a)) + 100 * |b - G(a)|_1                 (eq. 4, the non-saturating form)

Networks: ``G`` = Translator(AtoB = U-Net or ResNet generator, ``model.g_channels`` wide), ``D`` = PatchGAN on the
2-channel-group concatenation [a, b] (``model.d_channels`` wide). Adam 2e-4, beta1 0.5 (the paper's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ganforge.config import Config, ModelConfig
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.translation import PatchDiscriminator, ResnetGenerator, Translator, UNetGenerator
from ganforge.objectives.adversarial import LOSSES
from ganforge.variants.base import Phase, register
from ganforge.variants.two_domain import PairBatch, TranslationObjective, TwoDomainFamily, image_part


@dataclass(frozen=True)
class Pix2PixOptions:
    l1_weight: float = 100.0  # lambda of the L1 term (eq. 4)
    generator: Literal["unet", "resnet"] = "unet"  # the paper's U-Net, or CycleGAN's ResNet generator
    n_blocks: int = 6  # residual blocks of the ResNet generator
    d_layers: int = 2  # PatchGAN stride-2 stages: 2 judges 34x34 patches (3: the paper's 70x70, for >= 128 px)
    dropout: float = 0.0  # the paper's decoder dropout (0.5) as noise; off by default: it slows small CPU runs

    def __post_init__(self) -> None:
        check_options(self)


def check_options(o: Any) -> None:
    """Range checks shared by the translation families' options (ConfigError naming the key)."""
    checks = [
        (getattr(o, "l1_weight", 0) >= 0, "family.l1_weight must be >= 0"),
        (getattr(o, "cycle_weight", 0) >= 0, "family.cycle_weight must be >= 0"),
        (getattr(o, "identity_weight", 0) >= 0, "family.identity_weight must be >= 0"),
        (0 <= getattr(o, "pool_size", 0) <= 10_000, "family.pool_size must be in [0, 10000]"),
        (1 <= o.n_blocks <= 64, "family.n_blocks must be in [1, 64]"),
        (1 <= o.d_layers <= 6, "family.d_layers must be in [1, 6]"),
        (0 <= o.dropout < 1, "family.dropout must be in [0, 1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"bad value: {message}. Fix it in the preset or with --set.")


def unet_depth(side: int) -> int:
    """Encoder stages of the U-Net: down to a 2x2 bottleneck (32 px: 4 stages; 64 px: 5)."""
    return max(2, side.bit_length() - 2)


def build_g(options: Any, model: ModelConfig, in_ch: int, out_ch: int, side: int) -> nn.Module:
    if options.generator == "unet":
        return UNetGenerator(in_ch, out_ch, model.g_channels, unet_depth(side), options.dropout)
    return ResnetGenerator(in_ch, out_ch, model.g_channels, options.n_blocks)


class Pix2PixObjective(TranslationObjective):
    def __init__(
        self, cfg: Config, options: Pix2PixOptions, G: Translator, D: nn.Module, data: Dataset, real_x: torch.Tensor
    ) -> None:
        super().__init__(cfg, G, data, real_x)
        self.D, self.options = D, options
        self.loss = LOSSES.get(cfg.objective.loss)
        self.phases = [Phase("D", "D", shows_real=True), Phase("G", "G")]

    def draw(self, phase: Phase, idx: torch.Tensor) -> PairBatch:
        return self.draw_pair(idx, paired=True)

    def accumulate_gradients(self, phase: Phase, batch: PairBatch) -> dict[str, torch.Tensor]:
        a, b = batch.real_a, batch.real_b
        if phase.name == "D":
            with torch.no_grad():
                fake_b = self.G.AtoB(a)
            real_logits = self.D(torch.cat([a, b], 1))  # [N, 1, h, w] one score per patch
            gen_logits = self.D(torch.cat([a, fake_b], 1))
            loss = 0.5 * self.loss.d_loss(real_logits, gen_logits, self.cfg.objective.label_smoothing)
            loss.backward()
            real, gen = real_logits.detach().float(), gen_logits.detach().float()
            thr = self.loss.logit_threshold
            acc = 0.5 * ((real > thr).float().mean() + (gen <= thr).float().mean())
            if self.loss.probabilities:
                real, gen = torch.sigmoid(real), torch.sigmoid(gen)
            return {"loss_D": loss.detach(), "D_real": real.mean(), "D_fake": gen.mean(), "D_acc": acc}
        if phase.name == "G":
            fake_b = self.G.AtoB(a)
            adv = self.loss.g_loss(self.D(torch.cat([a, fake_b], 1)))
            l1 = (fake_b - b).abs().mean()  # |b - G(a)|_1, per pixel
            loss = adv + self.options.l1_weight * l1
            loss.backward()
            return {"loss_G": loss.detach(), "L1": l1.detach()}
        raise ValueError(f"pix2pix has no phase {phase.name!r}")


@register
class Pix2Pix(TwoDomainFamily):
    name = "pix2pix"
    help = "paired image-to-image translation A -> B: U-Net G, PatchGAN D on (source, target), L1 x100"
    reference = "Isola et al. 2017, Image-to-Image Translation with Conditional Adversarial Networks"
    paired = True
    options = Pix2PixOptions
    defaults = {"objective": {"loss": "bce"}, "optim": {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5}}

    def build_translator(
        self, model: ModelConfig, shape_a: tuple[int, ...], shape_b: tuple[int, ...], options: Any,
        num_classes: int = 0,
    ) -> Translator:
        return Translator(build_g(options or Pix2PixOptions(), model, shape_a[0], shape_b[0], shape_a[-1]))

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        options = self.settings(cfg)
        shape_a = image_part(data)
        G = self.build_translator(cfg.model, shape_a, data.shape_b, options)
        D = PatchDiscriminator(shape_a[0] + data.shape_b[0], cfg.model.d_channels, options.d_layers)
        return {"G": G, "D": D}

    def objective(
        self,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> Pix2PixObjective:
        return Pix2PixObjective(cfg, self.settings(cfg), networks["G"], networks["D"], data, real_x)  # type: ignore[arg-type]
