"""What the image-to-image families (pix2pix, CycleGAN) share: two-domain data checks, the batch of a step, the
exported ``Translator`` and the progress grid (source | translated | ground truth). Registers no family itself.

Two-domain data (``Dataset.x_b``, ``data/two_domain.py``) holds domain A in ``x`` (with any mask channels last, e.g.
the phantom's tumour mask) and domain B in ``x_b``; ``paired`` says row i of B is the translation of row i of A.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ganforge.config import Config, ModelConfig, from_dict
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.translation import Translator
from ganforge.variants.base import Family, Objective


@dataclass
class PairBatch:
    real_a: torch.Tensor  # [N, C_A, H, W] domain A (image channels only)
    real_b: torch.Tensor  # [N, C_B, H, W] domain B: the pair of real_a when the family trains paired


class TwoDomainFamily(Family):
    """Base of the translation families. Subclasses build ``Translator(AtoB, BtoA?)`` as network "G"."""

    paired: ClassVar[bool] = False  # needs row-aligned pairs (pix2pix), or learns from unpaired domains
    two_way: ClassVar[bool] = False  # exports BtoA beside AtoB (CycleGAN); one-way: pix2pix, DTN
    ema_networks = ("G",)

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)  # the translators build their own networks: a model.arch is refused there
        if not data.two_domain:
            raise ConfigError(
                f"variant {cfg.variant} translates between two domains but dataset {data.name!r} has one. Use a "
                "two-domain dataset: brain-contrasts, mnist-styles, digits-to-mnist or two-domain-folder."
            )
        if self.paired and not data.paired:
            raise ConfigError(
                f"variant {cfg.variant} needs paired data, but dataset {data.name!r} is unpaired. Give it A/ and B/ "
                "folders with matching file names (data.name=two-domain-folder), or use variant=cyclegan, which "
                "learns from unpaired trainA/ trainB/."
            )
        if cfg.eval.every_ticks:
            raise ConfigError(
                f"variant {cfg.variant} is evaluated after training (`ganforge evaluate RUN` translates "
                "the test split); set eval.every_ticks=0."
            )
        side = data.shape[-1]
        if side != data.shape[-2] or side % 4 or side < 16:
            raise ConfigError(
                f"variant {cfg.variant} needs square images of a side divisible by 4 (>= 16), not "
                f"{data.shape[-2]}x{side}; set data.resolution=32 (or 64)."
            )

    def check_networks(self, cfg: Config, networks: dict[str, nn.Module], data: Dataset) -> None:
        G = networks["G"]
        with torch.no_grad():  # shape check: one tiny forward pass on CPU
            G.eval()
            try:
                made = tuple(G(torch.zeros(1, *image_part(data)), "AtoB").shape[1:])
            except RuntimeError:
                made = None
            G.train()
        if made != data.shape_b:
            raise ConfigError(
                f"variant {cfg.variant}'s generator cannot map {image_part(data)} images to "
                f"{data.shape_b}; use a power-of-two resolution, e.g. --set data.resolution=32."
            )

    def build_generator(self, model: ModelConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """The translator for images of ``shape`` in both domains (``build_exported`` knows domain B's shape)."""
        return self.build_translator(model, shape, shape, None)

    def build_exported(self, model: ModelConfig, spec: dict[str, Any]) -> nn.Module:
        """The translator of ``generator.json``: A's image channels (its masks dropped), B's shape, the classes."""
        shape_a, shape_b = exported_shapes(spec)
        options = from_dict(self.options, spec["config"].get("family") or {}, "family") if self.options else None
        return self.build_translator(model, shape_a, shape_b, options, int(spec.get("num_classes") or 0))

    @abstractmethod
    def build_translator(
        self, model: ModelConfig, shape_a: tuple[int, ...], shape_b: tuple[int, ...], options: Any,
        num_classes: int = 0,
    ) -> Translator:
        """G: a Translator from A images ``shape_a`` to B images ``shape_b`` (options None: the defaults); the
        data's ``num_classes`` for a family whose G uses them (DTN's class head)."""

    def export_info(self) -> dict[str, Any]:
        return {**super().export_info(), "translation": True, "paired_family": self.paired}


def exported_shapes(spec: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(domain A's image shape, its masks dropped; domain B's shape) from ``generator.json``'s fields."""
    shape_a = (spec["shape"][0] - int(spec.get("mask_channels", 0)), *spec["shape"][1:])
    return shape_a, tuple(spec.get("shape_b", shape_a))


def image_part(data: Dataset) -> tuple[int, ...]:
    """Shape of domain A's image alone (without its mask channels)."""
    return (data.image_channels, *data.shape[1:])


class TranslationObjective(Objective):
    """Shared pieces of a translation objective: the data on the device, the step's batch and the grid."""

    stat_labels = {"D_real": "D(x)", "D_fake": "D(G(x))"}

    def __init__(self, cfg: Config, G: Translator, data: Dataset, real_x: torch.Tensor) -> None:
        assert data.x_b is not None
        self.cfg, self.G, self.paired = cfg, G, data.paired
        self.device = real_x.device
        self.real_a = real_x[:, : data.image_channels]  # [N, C_A, H, W] (a view: no copy)
        self.real_b = data.x_b.to(self.device)  # [M, C_B, H, W]
        self.mask_channels = data.mask_channels
        self.masks = real_x[:, data.image_channels :]  # [N, M, H, W] the source's masks (grid only)
        self.batch = cfg.train.batch_size
        gen = torch.Generator().manual_seed(cfg.train.seed + 12345)  # its own generator: training RNG untouched
        self.grid_idx = torch.randperm(len(real_x), generator=gen)[: max(1, min(cfg.train.grid_size // 3, 8))]

    def draw_pair(self, idx: torch.Tensor, paired: bool) -> PairBatch:
        """A's rows ``idx`` and B's: the same rows (paired training) or independent random ones (unpaired)."""
        idx_b = idx if paired else torch.randint(0, len(self.real_b), (len(idx),), device=self.device)
        return PairBatch(self.real_a[idx], self.real_b[idx_b])

    @torch.no_grad()
    def grid(self, G: nn.Module) -> tuple[torch.Tensor, int | None]:
        """Rows of source | translated A->B | ground truth (paired data) or B->A->... cycle (unpaired)."""
        was_training = G.training
        G.eval()
        idx = self.grid_idx.to(self.device)
        src = self.real_a[idx]
        cells = [src, G(src, "AtoB")]
        if self.paired:
            cells.append(self.real_b[idx])
        elif "BtoA" in G.directions:
            cells.append(G(cells[1], "BtoA"))  # back to A: the cycle
        G.train(was_training)
        channels = max(c.shape[1] for c in cells)
        cells = [c.float().expand(-1, channels, -1, -1) if c.shape[1] == 1 else c.float() for c in cells]
        if self.mask_channels:  # the loop's grid shows each cell beside the source's mask
            cells = [torch.cat([c, self.masks[idx].float()], 1) for c in cells]
        return torch.stack(cells, 1).flatten(0, 1).cpu(), len(cells)  # [n * k, C, H, W], k cells a row
