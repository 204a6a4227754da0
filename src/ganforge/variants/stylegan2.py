"""StyleGAN2 with adaptive discriminator augmentation (Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN"; Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data").

The networks are in ``models/stylegan2.py``, the augmentation in ``objectives/ada.py``. This family is the GAN
family with:

- losses: the non-saturating logistic loss (``objective.loss=bce``), lazy R1 on real images every
  ``objective.r1_interval`` D steps (the GAN family's ``Dreg`` phase), and lazy path-length regularisation
  (section 3.2) in a ``Greg`` phase every ``family.pl_interval`` iterations:
  ``pl_weight * E[(||J_w^T y||_2 - a)^2]``, y ~ N(0, I) / sqrt(H W), ``a`` the running mean of the lengths;
- style mixing (StyleGAN, section 3.1): with probability ``family.style_mixing`` an image takes its styles from a
  second latent from a random layer on;
- ADA in front of D for real and generated images (and for R1), p following r_t = E[sign(D(real))] towards
  ``family.ada_target``; p and r_t are logged per tick (``ada_p``, ``ada_rt`` in metrics.jsonl);
- lazy regularisation's correction of both optimizers (Appendix B; ``StyleGAN2.optimizers``);
- G's EMA (``train.ema_kimg``, ramped up over the first images by ``train.ema_rampup``, StyleGAN2-ADA) is what
  ``generate`` samples, with truncation ``--truncation-psi``.

``stylegan2`` is unconditional; ``cstylegan2`` takes the label into the mapping network and projects it in D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganforge.config import Config, ModelConfig, from_dict
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.conditioning import Conditioning, LabelConcat, Projection
from ganforge.models.layers import DOut
from ganforge.models.stylegan2 import StyleGAN2Arch, StyleGAN2Discriminator, StyleGAN2Generator, check_resolution
from ganforge.objectives.ada import AdaptiveAugment
from ganforge.variants.base import OptimizerSpec, Phase, register
from ganforge.variants.gan import GAN, Batch, GANObjective


@dataclass(frozen=True)
class StyleGAN2Options:
    """``family.*`` settings of the StyleGAN2 families (``--set family.pl_weight=0``)."""

    w_dim: int = 512  # intermediate latent size
    mapping_layers: int = 8  # dense layers of the mapping network
    channel_base: int = 32768  # feature maps at resolution r: min(channel_base // r, model.g_channels / d_channels)
    mbstd_group: int = 4  # minibatch standard deviation group size in D
    style_mixing: float = 0.9  # probability that an image mixes the styles of two latents
    pl_weight: float = 2.0  # path-length regularisation weight (0 disables)
    pl_interval: int = 4  # lazy path-length regularisation: every this many iterations
    pl_batch_shrink: int = 2  # the path-length batch is train.batch_size // this
    pl_decay: float = 0.01  # the running mean of path lengths moves this far per penalty
    ada: bool = True  # adaptive discriminator augmentation
    ada_target: float = 0.6  # the r_t that ADA steers towards
    ada_interval: int = 4  # D steps between p updates
    ada_kimg: float = 500.0  # p can move from 0 to 1 in this many kimg
    ada_p: float = 0.0  # initial p (with ada_fixed: the fixed p)
    ada_fixed: bool = False  # keep p at ada_p instead of adapting it

    def __post_init__(self) -> None:
        checks = [
            (self.w_dim >= 1 and self.mapping_layers >= 1, "family.w_dim and family.mapping_layers must be >= 1"),
            (self.channel_base >= 1 and self.mbstd_group >= 1, "family.channel_base and mbstd_group must be >= 1"),
            (0 <= self.style_mixing <= 1, "family.style_mixing must be in [0, 1]"),
            (self.pl_weight >= 0 and self.pl_decay > 0, "family.pl_weight must be >= 0 and pl_decay > 0"),
            (
                self.pl_interval >= 1 and self.pl_batch_shrink >= 1,
                "family.pl_interval and pl_batch_shrink must be >= 1",
            ),
            (0 <= self.ada_target <= 1, "family.ada_target must be in [0, 1]"),
            (self.ada_interval >= 1 and self.ada_kimg > 0, "family.ada_interval must be >= 1 and ada_kimg > 0"),
            (0 <= self.ada_p <= 1, "family.ada_p must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"bad value: {message}. Fix it in the preset or with --set.")


def arch_of(model: ModelConfig, opts: StyleGAN2Options) -> StyleGAN2Arch:
    return StyleGAN2Arch(
        z_dim=model.z_dim,
        w_dim=opts.w_dim,
        mapping_layers=opts.mapping_layers,
        g_channel_max=model.g_channels,
        d_channel_max=model.d_channels,
        channel_base=opts.channel_base,
        embed_dim=model.embed_dim,
        mbstd_group=opts.mbstd_group,
    )


class StyleGAN2Objective(GANObjective):
    def __init__(
        self,
        family: GAN,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> None:
        super().__init__(family, cfg, networks["G"], networks["D"], data, real_x, real_y)
        self.opts: StyleGAN2Options = family.settings(cfg)
        self.augment: AdaptiveAugment | None = networks.get("augment")  # type: ignore[assignment]
        if self.opts.pl_weight > 0:  # after G: the path-length step regularises G on its own interval
            self.phases.append(Phase("Greg", "G", interval=self.opts.pl_interval))
        self._phase = ""

    # ---- G with style mixing, D behind the augmentation --------------------------------------------------------

    def mapped(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """ws [N, num_ws, w_dim] for latents z, mixing the styles of a second latent into some images."""
        G = self.G
        c = c if self.cond.g.conditional else None
        ws = G.mapping(z, c, update_w_avg=self._phase == "G").unsqueeze(1).expand(-1, G.num_ws, -1)
        if self.opts.style_mixing > 0:
            n = len(z)
            z2 = torch.randn_like(z)
            cutoff = torch.randint(1, G.num_ws, (n, 1), device=z.device)  # first layer that takes the second style
            mix = torch.rand(n, 1, device=z.device) < self.opts.style_mixing
            cutoff = torch.where(mix, cutoff, G.num_ws)  # [N, 1]; num_ws: no mixing
            ws2 = G.mapping(z2, c).unsqueeze(1)
            ws = torch.where((torch.arange(G.num_ws, device=z.device) >= cutoff)[:, :, None], ws2, ws)
        return ws

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.G.synthesis(self.mapped(z, c))

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> DOut:
        if self.augment is not None:
            img = self.augment(img, self.mask_channels)  # ADA: the same pipeline for real and generated images
        return super().run_D(img, c)

    # ---- phases -------------------------------------------------------------------------------------------------

    def accumulate_gradients(self, phase: Phase, batch: Batch) -> dict[str, torch.Tensor]:
        self._phase = phase.name
        if phase.name == "Greg":
            return self._path_length(batch)
        return super().accumulate_gradients(phase, batch)

    def steered(self) -> AdaptiveAugment | None:
        return self.augment  # ADA's pipeline: GANObjective._d_stats feeds it sign(D(real)) and logs p, r_t

    def _path_length(self, batch: Batch) -> dict[str, torch.Tensor]:
        """pl_weight * E[(||J_w^T y|| - a)^2] (section 3.2), lazily: scaled by the interval."""
        o = self.opts
        n = max(1, len(batch.gen_z) // o.pl_batch_shrink)
        gen_c = batch.gen_c[:n] if batch.gen_c is not None else None
        ws = self.mapped(batch.gen_z[:n], gen_c)  # [n, num_ws, w_dim]
        img = self.G.synthesis(ws)  # [n, C, H, W]
        y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)  # J_w^T y: [n, num_ws, w_dim]
        lengths = grad.float().square().sum(2).mean(1).sqrt()  # [n]
        pl_mean = self.G.pl_mean
        with torch.no_grad():
            pl_mean.lerp_(lengths.mean().detach(), o.pl_decay)  # a: running mean of the lengths
        penalty = (lengths - pl_mean).square().mean()
        (penalty * o.pl_weight * o.pl_interval).backward()
        return {"pl": penalty.detach()}


@register
class StyleGAN2(GAN):
    name = "stylegan2"
    help = "StyleGAN2 + ADA: mapping net, modulated convs, noise, skip G / residual D, lazy R1 + path length, mixing"
    reference = "Karras et al. 2020, Analyzing and Improving the Image Quality of StyleGAN; Karras et al. 2020, ADA"
    options = StyleGAN2Options
    uses_model_arch = False  # its own networks (models/stylegan2.py)
    reuses_fakes = False  # its own D and G steps (style mixing, path-length regularisation)
    selects_topk = False
    packs_d = False  # its own D
    data_kinds = ("image",)
    defaults = {
        "objective": {"loss": "bce", "r1_gamma": 1.0, "r1_interval": 16},
        "optim": {"lr_g": 0.0025, "lr_d": 0.0025, "beta1": 0.0, "beta2": 0.99},
        "model": {"z_dim": 512, "embed_dim": 512, "g_channels": 512, "d_channels": 512},
        # StyleGAN2-ADA's EMA ramp-up; channels_last: oneDNN's convolutions run ~1.5x faster on a CPU in that layout
        # (benchmarks/stylegan2_cpu_speed.py), and it is the layout GPUs prefer too
        "train": {"ema_rampup": 0.05, "channels_last": True},
    }

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)  # refuses 2D points (data_kinds)
        check_resolution(data.shape, f"variant {self.name}")
        if cfg.objective.feature_matching:
            raise ConfigError(f"variant {self.name} has its own G loss; set objective.feature_matching=false.")
        if cfg.augment.diffaugment_target > 0:
            raise ConfigError(f"variant {self.name} adapts its own augmentation (family.ada, family.ada_target); "
                              "set augment.diffaugment_target=0.")

    def optimizers(self, cfg: Config) -> dict[str, OptimizerSpec]:
        """G and D with lazy regularisation's correction (StyleGAN2, Appendix B): a network regularised every k
        iterations takes k + 1 optimizer steps per k minibatches, so its Adam runs at lr * c with betas ** c,
        c = k / (k + 1), to keep the schedule of an unregularised run (k: objective.r1_interval for D when R1 is
        on, family.pl_interval for G when the path-length penalty is on)."""
        opts: StyleGAN2Options = self.settings(cfg)
        o = cfg.optim
        intervals = {  # 0: no lazy regulariser on this network
            "G": opts.pl_interval if opts.pl_weight > 0 else 0,
            "D": cfg.objective.r1_interval if cfg.objective.r1_gamma > 0 else 0,
        }
        specs = {}
        for name, lr in (("G", o.lr_g), ("D", o.lr_d)):
            k = intervals[name]
            c = k / (k + 1) if k else 1.0
            specs[name] = OptimizerSpec((name,), lr * c, (o.beta1**c, o.beta2**c))
        return specs

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        opts: StyleGAN2Options = self.settings(cfg)
        arch, classes = arch_of(cfg.model, opts), max(data.num_classes, 1)
        nets: dict[str, nn.Module] = {
            "G": self._generator(arch, data.shape, classes),
            "D": StyleGAN2Discriminator(arch, data.shape, classes, self.conditioning),
        }
        if opts.ada:
            # A network with buffers only: its state (p, r_t's running sums) rides in every checkpoint.
            nets["augment"] = AdaptiveAugment(
                opts.ada_target,
                opts.ada_interval,
                opts.ada_kimg,
                cfg.train.batch_size,
                opts.ada_p,
                adaptive=not opts.ada_fixed,
            )
        return nets

    def _generator(self, arch: StyleGAN2Arch, shape: tuple[int, ...], num_classes: int) -> StyleGAN2Generator:
        G = StyleGAN2Generator(arch, shape, num_classes, self.conditioning)
        G.register_buffer("pl_mean", torch.zeros([]))  # path-length regularisation's running mean (resumes exactly)
        return G

    def build_generator(self, model: ModelConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return self._generator(arch_of(model, StyleGAN2Options()), shape, max(num_classes, 1))  # default options

    def build_exported(self, model: ModelConfig, spec: dict[str, Any]) -> nn.Module:
        opts = from_dict(StyleGAN2Options, spec["config"].get("family", {}), "family")  # the run's mapping depth, ...
        return self._generator(arch_of(model, opts), tuple(spec["shape"]), max(spec["num_classes"], 1))

    def export_info(self) -> dict[str, Any]:
        return {**super().export_info(), "truncation": True}

    def objective(
        self,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> StyleGAN2Objective:
        return StyleGAN2Objective(self, cfg, networks, data, real_x, real_y)


@register
class CStyleGAN2(StyleGAN2):
    name = "cstylegan2"
    help = "conditional StyleGAN2 + ADA: label embedding into the mapping network, projection in D"
    reference = "Karras et al. 2020, Training Generative Adversarial Networks with Limited Data (conditional)"
    conditioning = Conditioning(g=LabelConcat(), d=Projection())
