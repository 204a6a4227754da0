"""Reference generators that check the metrics themselves, under a run's own protocol.

- ``untrained``: the run's generator architecture, freshly initialised. Every fidelity metric must
  put it far from the real-vs-real floor.
- ``replay``: returns the run's real training images (drawn with replacement; by label for
  conditional runs). FID-style metrics put it at the floor; the memorisation audit must flag it.

``ganforge evaluate RUN --baseline replay`` evaluates one beside the run (written to
``eval-baseline-NAME.json``; the run's own ``eval.json`` is left alone).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from ganforge.config import Config
from ganforge.data.base import Dataset
from ganforge.errors import GanforgeError
from ganforge.training.export import LoadedGenerator, by_label
from ganforge.variants import VARIANTS

BASELINES = {
    "untrained": "the run's generator architecture, freshly initialised (far from the floor on every metric)",
    "replay": "returns real training images (at the floor on FID; the memorisation audit must flag it)",
    # image-to-image runs only (metrics/translation.py)
    "identity": "translation runs: the source image unchanged (channels matched to the target)",
    "histogram-matching": "translation runs: each source image's intensities mapped onto the target domain's "
                          "pooled training histogram",
}
TRANSLATION_ONLY = ("identity", "histogram-matching")


@dataclass
class ReplayGenerator:
    """Samples are training examples drawn with replacement (of the requested labels when conditional)."""

    data: Dataset
    config: Config
    conditional: bool = False
    sha256: str = "baseline:replay"
    spec: dict[str, Any] = field(default_factory=lambda: {"kimg": None, "ema": False, "baseline": "replay"})

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def kind(self) -> str:
        return self.data.kind

    def sample(self, n: int, seed: int = 0, labels: torch.Tensor | None = None, batch: int = 1024,
               device: torch.device | str = "cpu", world: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training images drawn with replacement (by label when given); every rank draws them all (cheap)."""
        gen = torch.Generator().manual_seed(seed)
        if self.conditional and labels is None:
            labels = torch.randint(0, self.num_classes, (n,), generator=gen)
        if labels is None:
            idx = torch.randint(0, len(self.data), (n,), generator=gen)
        else:
            if self.data.y is None:
                raise GanforgeError("the replay baseline cannot sample by label: the data has no labels.")
            idx = torch.empty(n, dtype=torch.long)
            for k in labels.unique():
                pool = (self.data.y == k).nonzero().flatten()
                where = (labels == k).nonzero().flatten()
                idx[where] = pool[torch.randint(0, len(pool), (len(where),), generator=gen)]
        return self.data.x[idx].clone().float(), labels


def check_baseline(name: str) -> None:
    if name not in BASELINES:
        raise GanforgeError(f"unknown baseline {name!r}; choose one of: {', '.join(BASELINES)}.")


def baseline_generator(name: str, gen: LoadedGenerator, train: Dataset, seed: int = 0) -> Any:
    """The baseline ``name`` shaped like ``gen`` (same config, conditioning and data)."""
    check_baseline(name)
    if name in TRANSLATION_ONLY:
        raise GanforgeError(f"baseline {name!r} is for image-to-image runs (pix2pix, cyclegan); use untrained or "
                            "replay for this run.")
    if name == "replay":
        return ReplayGenerator(train, gen.config, conditional=by_label(gen))
    with torch.random.fork_rng(devices=[]):  # untrained
        torch.manual_seed(seed)
        G = VARIANTS.get(gen.config.variant).build_exported(gen.config.model, gen.spec)
    return dataclasses.replace(gen, G=G.eval(), sha256=f"baseline:untrained(seed={seed})",
                               spec={**gen.spec, "kimg": 0.0, "ema": False, "baseline": "untrained"})


__all__ = ["BASELINES", "ReplayGenerator", "baseline_generator", "check_baseline"]
