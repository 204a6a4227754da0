"""Progressive growing of GANs (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability,
and Variation"), written from the paper.

The networks (``models/progan.py``) hold every resolution; this family owns the schedule that grows them,
measured in real images shown: the first level (``family.start_res``) trains for ``family.stage_kimg``, then each
next level fades in linearly over ``family.fade_kimg`` and trains for ``family.stage_kimg`` (the paper: 600k + 600k
images per resolution). Before every D step the objective sets the stage, from the number of real images D has
seen (a buffer of D, so a checkpoint carries it and resume is exact across a stage change), on G and D; real images
are shown at the stage's resolution, faded like G's output. The loss is WGAN-GP (Gulrajani et al. 2017; lambda 10,
one D step per G step as in the paper) plus the drift term eps * E[D(x)^2], eps = 0.001 (appendix A.1), Adam
lr 0.001 with betas (0, 0.99). ``train.ema_kimg`` gives G's EMA (the paper: decay 0.999).

``progan`` is unconditional; ``cprogan`` concatenates a label embedding to z and projects the label in D.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganforge.config import Config, ModelConfig, from_dict
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.conditioning import Conditioning, LabelConcat, Projection
from ganforge.models.layers import DOut
from ganforge.models.progan import ProGANArch, ProGANDiscriminator, ProGANGenerator, fade_images, num_levels
from ganforge.models.stylegan2 import check_resolution
from ganforge.variants.base import Phase, register
from ganforge.variants.gan import GAN, Batch, GANObjective, Term


@dataclass(frozen=True)
class ProGANOptions:
    """``family.*`` settings of the ProGAN families."""

    start_res: int = 4  # the first level's resolution (a power of two, 4 up to the data's)
    stage_kimg: float = 600.0  # real images shown (thousands) at each level once faded in
    fade_kimg: float = 600.0  # real images shown while a new level fades in
    drift: float = 0.001  # eps of the drift term eps * E[D(x)^2]
    channel_base: int = 8192  # feature maps at resolution r: min(channel_base // r, model.g_channels / d_channels)
    mbstd_group: int = 4

    def __post_init__(self) -> None:
        checks = [
            (
                self.start_res >= 4 and self.start_res & (self.start_res - 1) == 0,
                "family.start_res must be a power of two >= 4",
            ),
            (self.stage_kimg > 0 and self.fade_kimg >= 0, "family.stage_kimg must be > 0 and fade_kimg >= 0"),
            (self.drift >= 0, "family.drift must be >= 0"),
            (self.channel_base >= 1 and self.mbstd_group >= 1, "family.channel_base and mbstd_group must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"bad value: {message}. Fix it in the preset or with --set.")


def progan_schedule(kimg: float, first: int, levels: int, stage_kimg: float, fade_kimg: float) -> tuple[int, float]:
    """(level, alpha) after ``kimg`` thousand real images: level ``first`` for ``stage_kimg``, then each next level
    fades in over ``fade_kimg`` (alpha 0 -> 1) and is trained for ``stage_kimg``; the last level stays."""
    t = kimg - stage_kimg  # time since the first level's stage ended
    if t < 0 or first >= levels:
        return first, 1.0
    per = fade_kimg + stage_kimg
    k = min(int(t // per), levels - first - 1)  # growths completed before the current one
    level = first + 1 + k
    into = t - k * per  # time since this level started fading in
    alpha = 1.0 if fade_kimg == 0 else min(1.0, into / fade_kimg)
    return level, alpha


def arch_of(model: ModelConfig, opts: ProGANOptions) -> ProGANArch:
    return ProGANArch(
        z_dim=model.z_dim,
        g_channel_max=model.g_channels,
        d_channel_max=model.d_channels,
        channel_base=opts.channel_base,
        embed_dim=model.embed_dim,
        mbstd_group=opts.mbstd_group,
    )


class ProGANObjective(GANObjective):
    stat_labels = {**GANObjective.stat_labels, "res": "res", "alpha": "alpha"}

    def __init__(
        self,
        family: ProGAN,
        cfg: Config,
        G: nn.Module,
        D: nn.Module,
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> None:
        super().__init__(family, cfg, G, D, data, real_x, real_y)
        self.opts: ProGANOptions = family.settings(cfg)
        self.first = num_levels(self.opts.start_res)
        self.levels = num_levels(data.shape[-1])

    def draw(self, phase: Phase, idx: torch.Tensor) -> Batch:
        if phase.shows_real:  # the stage is set before each D step, from the images D has seen before it
            seen = int(self.D.images_seen)
            level, alpha = progan_schedule(
                seen / 1000, self.first, self.levels, self.opts.stage_kimg, self.opts.fade_kimg
            )
            self.G.set_stage(level, alpha)
            self.D.set_stage(level, alpha)
            self.D.images_seen.add_(len(idx))
        batch = super().draw(phase, idx)
        if phase.shows_real:
            batch.real_img = fade_images(batch.real_img, *self.D.stage())
        return batch

    def d_terms(self, batch: Batch, real_out: DOut, gen_out: DOut, gen_img: torch.Tensor) -> Iterator[Term]:
        yield from super().d_terms(batch, real_out, gen_out, gen_img)  # the gradient penalty
        if self.opts.drift > 0:
            yield "drift", real_out.logits.float().square().mean(), self.opts.drift  # keeps D(x) near 0

    def _d_stats(self, real_out: DOut, gen_out: DOut) -> dict[str, torch.Tensor]:
        stats = super()._d_stats(real_out, gen_out)
        level, alpha = self.D.stage()
        stats["res"] = torch.tensor(float(4 * 2**level), device=self.device)  # the stage, logged per tick
        stats["alpha"] = torch.tensor(alpha, device=self.device)
        return stats


@register
class ProGAN(GAN):
    name = "progan"
    help = "progressive growing: fade-in per resolution, pixel norm, minibatch stddev, equalised lr, WGAN-GP + drift"
    reference = "Karras et al. 2018, Progressive Growing of GANs for Improved Quality, Stability, and Variation"
    options = ProGANOptions
    uses_model_arch = False  # its own networks (models/progan.py)
    reuses_fakes = False  # untested with its stage schedule
    packs_d = False  # its own growing D
    data_kinds = ("image",)
    defaults = {
        "objective": {"loss": "wasserstein", "gp_weight": 10.0, "n_critic": 1},
        "optim": {"lr_g": 0.001, "lr_d": 0.001, "beta1": 0.0, "beta2": 0.99},
        "model": {"z_dim": 512, "embed_dim": 512, "g_channels": 512, "d_channels": 512},
    }

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)  # refuses 2D points (data_kinds)
        res = check_resolution(data.shape, f"variant {self.name}")
        opts: ProGANOptions = self.settings(cfg)
        if opts.start_res > res:
            raise ConfigError(f"family.start_res={opts.start_res} is above the data's {res} px; set it to 4..{res}.")
        if cfg.augment.diffaugment or cfg.objective.feature_matching:
            raise ConfigError(
                f"variant {self.name} does not combine with augment.diffaugment or "
                "objective.feature_matching (its real images are resampled per stage); clear them."
            )

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        arch, classes = arch_of(cfg.model, self.settings(cfg)), max(data.num_classes, 1)
        G = ProGANGenerator(arch, data.shape, classes, self.conditioning)
        D = ProGANDiscriminator(arch, data.shape, classes, self.conditioning)
        D.register_buffer("images_seen", torch.zeros([], dtype=torch.long))  # drives the schedule; resumes exactly
        return {"G": G, "D": D}

    def build_generator(self, model: ModelConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return ProGANGenerator(arch_of(model, ProGANOptions()), shape, max(num_classes, 1), self.conditioning)

    def build_exported(self, model: ModelConfig, spec: dict[str, Any]) -> nn.Module:
        opts = from_dict(ProGANOptions, spec["config"].get("family", {}), "family")  # the run's channel_base, ...
        arch = arch_of(model, opts)
        return ProGANGenerator(arch, tuple(spec["shape"]), max(spec["num_classes"], 1), self.conditioning)

    def objective(
        self,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> ProGANObjective:
        return ProGANObjective(self, cfg, networks["G"], networks["D"], data, real_x, real_y)


@register
class CProGAN(ProGAN):
    name = "cprogan"
    help = "conditional ProGAN: label embedding concatenated to z, projection discriminator"
    reference = "Karras et al. 2018 (progressive growing); Miyato & Koyama 2018 (projection)"
    conditioning = Conditioning(g=LabelConcat(), d=Projection())
