"""SPADE (Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive Normalization"), CVPR 2019.

Mask-to-image synthesis: domain A is a segmentation map (one-hot, e.g. ``brain-labels``), domain B the image of
it. G = ``SPADEGenerator``: z ~ N(0, I) through SPADE residual blocks that re-inject the map at every scale
(models/spade.py). D = a PatchGAN on (map, image) that also exposes its features. Losses (section 3 and appendix):

    L_D = E[max(0, 1 - D(m, x))] + E[max(0, 1 + D(m, G(z, m)))]                  (hinge)
    L_G = -E[D(m, G(z, m))] + fm_weight * sum_l mean |D_l(m, x) - D_l(m, G(z, m))|  (hinge + feature matching x10)

The paper's VGG perceptual loss (x10) needs ImageNet weights, which an offline CPU run cannot download: left out
(``family.fm_weight`` carries the reconstruction signal instead). Its two-scale D is one scale here: a 32 px image
is covered by one 34 px PatchGAN. TTUR as in the paper: lr_g 1e-4, lr_d 4e-4, Adam betas (0, 0.999).

The exported network is a ``Translator`` whose ``AtoB`` is the generator, so ``translate`` and ``evaluate`` treat a
SPADE run as a paired translation map -> image (with z = 0), and ``ganforge generate RUN --masks DIR`` draws images
for given label maps with z from its seed (``ganforge/mask_to_image.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganforge.config import Config, ModelConfig
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.spade import FeaturePatchDiscriminator, SPADEGenerator
from ganforge.models.translation import Translator
from ganforge.objectives.adversarial import LOSSES
from ganforge.variants.base import Phase, register
from ganforge.variants.two_domain import PairBatch, TranslationObjective, TwoDomainFamily


@dataclass(frozen=True)
class SpadeOptions:
    fm_weight: float = 10.0  # lambda of the feature-matching term (pix2pixHD, kept by SPADE)
    z_dim: int = 64  # the paper's 256; smaller for 32-64 px CPU runs
    d_layers: int = 2  # PatchGAN stride-2 stages (2: 34x34 patches)

    def __post_init__(self) -> None:
        for ok, message in (
            (self.fm_weight >= 0, "family.fm_weight must be >= 0"),
            (1 <= self.z_dim <= 1024, "family.z_dim must be in [1, 1024]"),
            (1 <= self.d_layers <= 6, "family.d_layers must be in [1, 6]"),
        ):
            if not ok:
                raise ConfigError(f"bad value: {message}. Fix it in the preset or with --set.")


@dataclass
class MapBatch(PairBatch):
    gen_z: torch.Tensor | None = None  # [N, z_dim]


class SpadeObjective(TranslationObjective):
    def __init__(
        self, cfg: Config, options: SpadeOptions, G: Translator, D: nn.Module, data: Dataset, real_x: torch.Tensor
    ) -> None:
        super().__init__(cfg, G, data, real_x)
        self.D, self.options = D, options
        self.loss = LOSSES.get(cfg.objective.loss)
        self.phases = [Phase("D", "D", shows_real=True), Phase("G", "G")]

    def draw(self, phase: Phase, idx: torch.Tensor) -> MapBatch:
        pair = self.draw_pair(idx, paired=True)
        gen_z = torch.randn(len(idx), self.options.z_dim, device=self.device)
        return MapBatch(pair.real_a, pair.real_b, gen_z)

    def accumulate_gradients(self, phase: Phase, batch: MapBatch) -> dict[str, torch.Tensor]:
        seg, real_img = batch.real_a, batch.real_b
        if phase.name == "D":
            with torch.no_grad():
                gen_img = self.G.AtoB(seg, batch.gen_z)
            real_logits, _ = self.D(torch.cat([seg, real_img], 1))  # [N, 1, h, w] one score per patch
            gen_logits, _ = self.D(torch.cat([seg, gen_img], 1))
            loss = self.loss.d_loss(real_logits, gen_logits, self.cfg.objective.label_smoothing)
            loss.backward()
            real, gen = real_logits.detach().float(), gen_logits.detach().float()
            thr = self.loss.logit_threshold
            acc = 0.5 * ((real > thr).float().mean() + (gen <= thr).float().mean())
            return {"loss_D": loss.detach(), "D_real": real.mean(), "D_fake": gen.mean(), "D_acc": acc}
        if phase.name == "G":
            gen_img = self.G.AtoB(seg, batch.gen_z)
            gen_logits, gen_feats = self.D(torch.cat([seg, gen_img], 1))
            with torch.no_grad():
                _, real_feats = self.D(torch.cat([seg, real_img], 1))
            fm = sum((g - r).abs().mean() for g, r in zip(gen_feats, real_feats))  # sum over D's layers
            adv = self.loss.g_loss(gen_logits)
            loss = adv + self.options.fm_weight * fm
            loss.backward()
            return {"loss_G": loss.detach(), "FM": torch.as_tensor(fm).detach()}
        raise ValueError(f"spade has no phase {phase.name!r}")

    @torch.no_grad()
    def grid(self, G: nn.Module) -> tuple[torch.Tensor, int | None]:
        """Rows of label map (class index as gray) | G(map, z=0) | the real image."""
        was_training = G.training
        G.eval()
        idx = self.grid_idx.to(self.device)
        seg = self.real_a[idx]
        k = seg.shape[1]
        label_gray = seg.argmax(1, keepdim=True).float() * (2 / max(k - 1, 1)) - 1  # [n, 1, H, W]
        cells = [label_gray, G(seg, "AtoB").float(), self.real_b[idx].float()]
        G.train(was_training)
        channels = max(c.shape[1] for c in cells)  # an RGB target: the gray map in every channel
        cells = [c.expand(-1, channels, -1, -1) for c in cells]
        return torch.stack(cells, 1).flatten(0, 1).cpu(), len(cells)


@register
class Spade(TwoDomainFamily):
    name = "spade"
    help = "mask-to-image (label map -> image): SPADE generator, PatchGAN D on (map, image), hinge + feature matching"
    reference = "Park et al. 2019, Semantic Image Synthesis with Spatially-Adaptive Normalization"
    paired = True
    options = SpadeOptions
    defaults = {"objective": {"loss": "hinge"}, "optim": {"lr_g": 1e-4, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.999}}

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)
        if data.mask_channels:
            raise ConfigError(
                f"variant spade draws images from label maps; dataset {data.name!r} carries an image with masks in "
                "domain A. Use data.name=brain-labels (a one-hot tissue map -> image)."
            )

    def build_translator(
        self, model: ModelConfig, shape_a: tuple[int, ...], shape_b: tuple[int, ...], options: Any,
        num_classes: int = 0,
    ) -> Translator:
        o = options or SpadeOptions()
        return Translator(SPADEGenerator(shape_a[0], shape_b[0], shape_a[-1], model.g_channels, o.z_dim))

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        options = self.settings(cfg)
        G = self.build_translator(cfg.model, data.shape, data.shape_b, options)
        D = FeaturePatchDiscriminator(data.shape[0] + data.shape_b[0], cfg.model.d_channels, options.d_layers)
        return {"G": G, "D": D}

    def export_info(self) -> dict[str, Any]:
        return {**super().export_info(), "mask_to_image": True}

    def objective(
        self,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> SpadeObjective:
        return SpadeObjective(cfg, self.settings(cfg), networks["G"], networks["D"], data, real_x)  # type: ignore[arg-type]
