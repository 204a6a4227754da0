"""Everything checked before a run directory is created: config, dataset, variant, model shapes.

So a typo, a missing dataset file or an impossible architecture fails before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganforge.config import Config
from ganforge.data import Dataset, load_dataset
from ganforge.errors import ConfigError
from ganforge.models import build_models
from ganforge.models.layers import Conditioning
from ganforge.objectives import LOSSES
from ganforge.objectives.augment import parse_policy
from ganforge.variants import VARIANTS


@dataclass
class Setup:
    cfg: Config
    train_set: Dataset
    conditioning: Conditioning

    def build_models(self) -> tuple[nn.Module, nn.Module]:
        return build_models(self.cfg.model, self.train_set.shape, max(self.train_set.num_classes, 1), self.conditioning)


def prepare(cfg: Config) -> Setup:
    variant = VARIANTS.get(cfg.variant)
    LOSSES.get(cfg.objective.loss)
    parse_policy(cfg.augment.diffaugment)
    data = load_dataset(cfg.data, "train")
    if variant.needs_labels and not data.labelled:
        raise ConfigError(
            f"variant {cfg.variant!r} is conditional but dataset {data.name!r} has no labels. "
            "Use a labelled dataset (one subfolder per class for image folders) or variant=gan."
        )
    if cfg.augment.diffaugment and data.kind != "image":
        raise ConfigError("augment.diffaugment works on images only; clear it for 2D point data.")
    setup = Setup(cfg, data, variant.conditioning)
    G, D = setup.build_models()  # shape check: one tiny forward pass on CPU
    with torch.no_grad():
        G.eval(), D.eval()
        c = torch.zeros(2, dtype=torch.long)
        fake = G(torch.zeros(2, G.z_dim), c)
        if tuple(fake.shape[1:]) != data.shape:
            made = tuple(fake.shape[1:])
            raise ConfigError(f"model.arch={cfg.model.arch} makes {made} samples but the data is {data.shape}.")
        D(fake, c)
    return setup
