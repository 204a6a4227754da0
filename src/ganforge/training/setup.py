"""Everything checked before a run directory is created: config, dataset, variant, network shapes.

So a typo, a missing dataset file or an impossible architecture fails before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ganforge.config import Config
from ganforge.data import Dataset, load_dataset
from ganforge.variants import VARIANTS, Family


@dataclass
class Setup:
    cfg: Config
    train_set: Dataset
    family: Family

    def build_networks(self) -> dict[str, nn.Module]:
        return self.family.build_networks(self.cfg, self.train_set)


def prepare(cfg: Config) -> Setup:
    family = VARIANTS.get(cfg.variant)
    data = load_dataset(cfg.data, "train")
    family.check(cfg, data)
    setup = Setup(cfg, data, family)
    family.check_networks(cfg, setup.build_networks(), data)
    return setup
