"""All GAN math behind one call: ``accumulate_gradients(phase, real_img, real_c, gen_z, gen_c)``.

The training loop walks the phases this object declares (D steps, n_critic, lazy R1, G step) and
never names a loss or variant; this file never touches an optimiser. Statistics come back as
detached device tensors so the loop can sum them without a host-device sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import Config
from ganforge.errors import ConfigError
from ganforge.models.layers import Conditioning, DOut
from ganforge.objectives.adversarial import LOSSES
from ganforge.objectives.augment import diff_augment, parse_policy
from ganforge.objectives.regularizers import gradient_penalty, r1_penalty

PhaseName = Literal["D", "Dreg", "G"]


@dataclass(frozen=True)
class Phase:
    name: PhaseName
    module: Literal["D", "G"]  # whose optimiser steps after this phase
    repeats: int = 1  # consecutive steps per iteration (n_critic for D)
    interval: int = 1  # run on every interval-th iteration (lazy regularisation)


class GANObjective:
    def __init__(
        self, G: nn.Module, D: nn.Module, cfg: Config, cond: Conditioning, num_classes: int, mask_channels: int = 0
    ) -> None:
        self.G, self.D, self.cond, self.num_classes = G, D, cond, num_classes
        self.mask_channels = mask_channels  # trailing mask channels of paired data: DiffAugment leaves their colour
        self.ocfg = cfg.objective
        self.loss = LOSSES.get(cfg.objective.loss)
        self.policy = parse_policy(cfg.augment.diffaugment)
        self.sigmoid_scores = self.loss.probabilities
        check_objective(cfg, D, cond, num_classes)

    def phases(self) -> list[Phase]:
        phases = [Phase("D", "D", repeats=self.ocfg.n_critic)]
        if self.ocfg.r1_gamma > 0:
            phases.append(Phase("Dreg", "D", interval=self.ocfg.r1_interval))
        phases.append(Phase("G", "G"))
        return phases

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> DOut:
        if self.policy:
            img = diff_augment(img, self.policy, self.mask_channels)  # the same for real and generated images
        return self.D(img, c if self.cond.d != "none" else None)

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.G(z, c if self.cond.g != "none" else None)

    def _aux_loss(self, out: DOut, c: torch.Tensor | None) -> torch.Tensor:
        # AC-GAN auxiliary classifier: cross-entropy on raw logits (no softmax before it).
        return F.cross_entropy(out.aux_logits, c)

    def accumulate_gradients(
        self,
        phase: PhaseName,
        real_img: torch.Tensor,  # [N, C, H, W] or [N, D]
        real_c: torch.Tensor | None,  # [N] labels or None
        gen_z: torch.Tensor,  # [N, z_dim]
        gen_c: torch.Tensor | None,  # [N] labels for generated samples or None
    ) -> dict[str, torch.Tensor]:
        o = self.ocfg
        if phase == "D":
            with torch.no_grad():
                gen_img = self.run_G(gen_z, gen_c)
            real_out = self.run_D(real_img, real_c)
            gen_out = self.run_D(gen_img, gen_c)
            loss = self.loss.d_loss(real_out.logits, gen_out.logits, o.label_smoothing)
            stats = self._d_stats(real_out, gen_out)
            if self.cond.d == "aux":
                aux = self._aux_loss(real_out, real_c) + self._aux_loss(gen_out, gen_c)
                loss = loss + o.aux_weight * aux
                stats["loss_aux"] = aux.detach()
            if o.gp_weight > 0:
                eps = torch.rand(len(real_img), device=real_img.device, dtype=real_img.dtype)
                gp = gradient_penalty(lambda x: self.run_D(x, real_c).logits, real_img, gen_img, eps)
                loss = loss + o.gp_weight * gp
                stats["gp"] = gp.detach()
            stats["loss_D"] = loss.detach()
            loss.backward()
            return stats
        if phase == "Dreg":
            r1 = r1_penalty(lambda x: self.run_D(x, real_c).logits, real_img)
            (r1 * (o.r1_gamma / 2) * o.r1_interval).backward()  # lazy: scale by the interval
            return {"r1": r1.detach()}
        if phase == "G":
            gen_img = self.run_G(gen_z, gen_c)
            gen_out = self.run_D(gen_img, gen_c)
            if o.feature_matching:
                # Salimans et al. 2016: || E f(x) - E f(G(z)) ||^2 on D's penultimate features.
                with torch.no_grad():
                    real_feat = self.run_D(real_img, real_c).features.mean(0)
                loss = (real_feat - gen_out.features.mean(0)).pow(2).sum()
            else:
                loss = self.loss.g_loss(gen_out.logits)
            if self.cond.d == "aux":
                loss = loss + o.aux_weight * self._aux_loss(gen_out, gen_c)
            loss.backward()
            return {"loss_G": loss.detach()}
        raise ValueError(phase)

    def _d_stats(self, real_out: DOut, gen_out: DOut) -> dict[str, torch.Tensor]:
        real, gen = real_out.logits.detach().float(), gen_out.logits.detach().float()
        thr = self.loss.logit_threshold
        # D accuracy: real scored above the decision threshold, fake below. Not a measure of quality.
        acc = 0.5 * ((real > thr).float().mean() + (gen <= thr).float().mean())
        if self.sigmoid_scores:
            real, gen = torch.sigmoid(real), torch.sigmoid(gen)
        return {"D_real": real.mean(), "D_fake": gen.mean(), "D_acc": acc}


def check_objective(cfg: Config, D: nn.Module, cond: Conditioning, num_classes: int) -> None:
    """Refuse objective settings that would silently do nothing or compute the wrong thing."""
    o = cfg.objective
    loss = LOSSES.get(o.loss)
    if o.label_smoothing > 0 and not loss.smoothing:
        raise ConfigError(
            f"objective.label_smoothing={o.label_smoothing} has no effect with objective.loss={o.loss} (it has no "
            "real-class target to soften). Use loss bce or ls, or set objective.label_smoothing=0."
        )
    if o.gp_weight > 0 and any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in D.modules()):
        raise ConfigError(
            "objective.gp_weight > 0 penalises each sample's gradient, but D has batch norm, which mixes the samples "
            "of a batch (Gulrajani et al. 2017, section 4). Set model.d_batchnorm=[false] (the wgan-gp variants do "
            "unless a preset turns it back on)."
        )
    if cond.d == "aux" and num_classes < 2:
        raise ConfigError("the AC-GAN auxiliary classifier needs a dataset with at least 2 labelled classes.")
