"""CoGAN (Liu & Tuzel 2016, "Coupled Generative Adversarial Networks"), NIPS 2016.

Two GANs, one per domain, whose generators share their first (high-level) layers and whose discriminators share
their last ones (``models/cogan.py``). Trained on UNPAIRED images of the two domains (each step draws A and B rows
independently, even when the data has pairs: those are kept for evaluation), the tied layers must serve both
domains, so the same z decodes to the same content in A and in B: the pair learns the joint distribution.

    L_D = l_D(D_A(a), D_A(G_A(z))) + l_D(D_B(b), D_B(G_B(z)))       a ~ A, b ~ B, z ~ N(0, I), independent
    L_G = l_G(D_A(G_A(z))) + l_G(D_B(G_B(z)))                        one z for both domains

with ``objective.loss`` (bce, non-saturating, by default: the paper's). ``family.tie_weights=false`` unties them:
two independent GANs, the paper's control (a pair then shares nothing but its z). ``ganforge generate RUN``
writes matching pairs (``A/000000.png`` and ``B/000000.png`` from one z); ``ganforge evaluate RUN`` measures the
pairing (``metrics/cogan.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganforge.config import Config, ModelConfig, from_dict
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.cogan import CoupledDiscriminator, CoupledGenerator
from ganforge.models.dcgan import upsampling_plan
from ganforge.objectives.adversarial import LOSSES
from ganforge.variants.base import Family, Objective, Phase, register
from ganforge.variants.two_domain import exported_shapes, image_part


@dataclass(frozen=True)
class CoGANOptions:
    tie_weights: bool = True  # share G's trunk and D's body between the domains (false: two separate GANs)


@dataclass
class CoupledBatch:
    real_a: torch.Tensor  # [N, C_A, H, W]
    real_b: torch.Tensor  # [N, C_B, H, W], drawn independently of real_a
    gen_z: torch.Tensor  # [N, z_dim]: one z for both domains


class CoGANObjective(Objective):
    stat_labels = {"D_real": "D(x)", "D_fake": "D(G(z))"}

    def __init__(
        self, cfg: Config, G: CoupledGenerator, D: CoupledDiscriminator, data: Dataset, real_x: torch.Tensor
    ) -> None:
        assert data.x_b is not None
        self.cfg, self.G, self.D, self.device = cfg, G, D, real_x.device
        self.real_a = real_x[:, : data.image_channels]  # [N, C_A, H, W] (masks dropped: CoGAN draws images)
        self.real_b = data.x_b.to(self.device)  # [M, C_B, H, W]
        self.mask_channels = data.mask_channels  # the loop's grid expects them (brain-contrasts: A's tumour mask)
        self.batch = cfg.train.batch_size
        self.loss = LOSSES.get(cfg.objective.loss)
        self.phases = [Phase("D", "D", shows_real=True), Phase("G", "G")]
        gen = torch.Generator().manual_seed(cfg.train.seed + 12345)  # its own generator: training RNG untouched
        self.grid_z = torch.randn(max(1, min(cfg.train.grid_size // 2, 32)), G.z_dim, generator=gen).to(self.device)

    def draw(self, phase: Phase, idx: torch.Tensor) -> CoupledBatch:
        idx_b = torch.randint(0, len(self.real_b), (len(idx),), device=self.device)  # unpaired: B rows of their own
        z = torch.randn(self.batch, self.G.z_dim, device=self.device)
        return CoupledBatch(self.real_a[idx], self.real_b[idx_b], z)

    def accumulate_gradients(self, phase: Phase, batch: CoupledBatch) -> dict[str, torch.Tensor]:
        G, D = self.G, self.D
        if phase.name == "D":
            with torch.no_grad():
                gen_a, gen_b = G.pair(batch.gen_z)
            real_a, fake_a = D(batch.real_a, "A"), D(gen_a, "A")  # [N] logits each
            real_b, fake_b = D(batch.real_b, "B"), D(gen_b, "B")
            smooth = self.cfg.objective.label_smoothing
            loss = self.loss.d_loss(real_a, fake_a, smooth) + self.loss.d_loss(real_b, fake_b, smooth)
            loss.backward()
            real = torch.cat([real_a, real_b]).detach().float()
            fake = torch.cat([fake_a, fake_b]).detach().float()
            thr = self.loss.logit_threshold
            acc = 0.5 * ((real > thr).float().mean() + (fake <= thr).float().mean())
            if self.loss.probabilities:
                real, fake = torch.sigmoid(real), torch.sigmoid(fake)
            return {"loss_D": loss.detach(), "D_real": real.mean(), "D_fake": fake.mean(), "D_acc": acc}
        if phase.name == "G":
            gen_a, gen_b = G.pair(batch.gen_z)  # the same z in both domains
            loss = self.loss.g_loss(D(gen_a, "A")) + self.loss.g_loss(D(gen_b, "B"))
            loss.backward()
            return {"loss_G": loss.detach()}
        raise ValueError(f"CoGAN has no phase {phase.name!r}")

    @torch.no_grad()
    def grid(self, G: nn.Module) -> tuple[torch.Tensor, int | None]:
        """Pairs from the fixed latents: A | B side by side, several pairs a row."""
        was_training = G.training
        G.eval()
        a, b = G.pair(self.grid_z)  # type: ignore[operator]
        G.train(was_training)
        channels = max(a.shape[1], b.shape[1])
        a, b = (t.float().expand(-1, channels, -1, -1) if t.shape[1] == 1 else t.float() for t in (a, b))
        cells = torch.stack([a, b], 1).flatten(0, 1)  # [2n, C, H, W]: 4 pairs a row
        if self.mask_channels:  # CoGAN draws no masks: an empty one beside each image, for the loop's grid layout
            cells = torch.cat([cells, -torch.ones_like(cells[:, :1]).expand(-1, self.mask_channels, -1, -1)], 1)
        return cells.cpu(), 8


@register
class CoGAN(Family):
    name = "cogan"
    help = (
        "coupled GAN: two generators sharing their first layers and two Ds sharing their last, trained on "
        "unpaired images of two domains; generate writes matching A/B pairs"
    )
    reference = "Liu & Tuzel 2016, Coupled Generative Adversarial Networks"
    options = CoGANOptions
    ema_networks = ("G",)
    data_kinds = ("image",)
    defaults = {"optim": {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5}}

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)
        if not data.two_domain:
            raise ConfigError(
                f"variant cogan learns two domains but dataset {data.name!r} has one. Use a two-domain dataset: "
                "mnist-styles, brain-contrasts, digits-to-mnist or two-domain-folder."
            )
        side = data.shape[-1]
        if data.shape[-2] != side or tuple(data.shape_b[1:]) != tuple(data.shape[1:]):
            raise ConfigError(
                f"variant cogan needs both domains as square images of one size, not {data.shape[-2]}x{side} and "
                f"{tuple(data.shape_b[1:])}; set data.resolution=32."
            )
        upsampling_plan(side)  # the DCGAN-style sizes: 16, 28, 32, 64 (a ConfigError names data.resolution)
        if cfg.eval.every_ticks:
            raise ConfigError(
                "variant cogan is evaluated after training (`ganforge evaluate RUN` measures the "
                "pairs); set eval.every_ticks=0."
            )
        if cfg.augment.diffaugment or cfg.objective.gp_weight or cfg.objective.r1_gamma:
            raise ConfigError(
                "variant cogan uses the plain adversarial loss: clear augment.diffaugment, "
                "objective.gp_weight and objective.r1_gamma."
            )

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        o = self.settings(cfg)
        shape_a = image_part(data)
        G = CoupledGenerator(cfg.model.z_dim, cfg.model.g_channels, shape_a, data.shape_b, o.tie_weights)
        D = CoupledDiscriminator(cfg.model.d_channels, shape_a, data.shape_b, o.tie_weights)
        return {"G": G, "D": D}

    def build_generator(self, model: ModelConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return CoupledGenerator(model.z_dim, model.g_channels, shape, shape)

    def build_exported(self, model: ModelConfig, spec: dict[str, Any]) -> nn.Module:
        """Domain A's image channels (its masks dropped), B's shape and the tying from ``generator.json``."""
        shape_a, shape_b = exported_shapes(spec)
        o = from_dict(CoGANOptions, spec["config"].get("family") or {}, "family")
        return CoupledGenerator(model.z_dim, model.g_channels, shape_a, shape_b, o.tie_weights)

    def export_info(self) -> dict[str, Any]:
        return {**super().export_info(), "coupled": True}

    def objective(
        self,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> CoGANObjective:
        return CoGANObjective(cfg, networks["G"], networks["D"], data, real_x)  # type: ignore[arg-type]
