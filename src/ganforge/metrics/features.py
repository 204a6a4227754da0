"""Features of real splits, cached on disk, and the cache folder shared by extractors and features.

A metric is features -> statistics -> value. Features of the *real* splits do not change between
evaluations of different runs on the same data, so they are cached, keyed by a SHA-256 of
everything that affects them: the extractor's identity (its name and weights/recipe hash), its
preprocessing text, the data fingerprint (pixels and labels) and this cache's format version.
Generated samples are never cached: they change with every generator.

The cache lives in ``$GANFORGE_CACHE`` (default ``~/.cache/ganforge``)::

    extractors/domain-<key>.safetensors + .json   trained domain classifiers / autoencoders
    features/<key>.safetensors                    features (and logits) of real splits
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ganforge.data.base import Dataset
from ganforge.training import distributed
from ganforge.training.checkpoint import atomic_write_bytes
from ganforge.training.distributed import World

if TYPE_CHECKING:
    from ganforge.metrics.extractors import FeatureExtractor

FEATURE_CACHE_FORMAT = "ganforge-features/1"


def cache_root() -> Path:
    """``$GANFORGE_CACHE`` or ``~/.cache/ganforge``."""
    return Path(os.environ.get("GANFORGE_CACHE") or "~/.cache/ganforge").expanduser()


def sha256_json(obj: object) -> str:
    """SHA-256 of the canonical JSON text of ``obj`` (sorted keys): the cache keys and protocol ids."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class FeatureSet:
    feats: torch.Tensor  # [N, D] float32, CPU
    logits: torch.Tensor | None  # [N, K] float32, CPU; None when the extractor has no class head


def extract(extractor: FeatureExtractor, x: torch.Tensor, batch: int = 500, world: World | None = None) -> FeatureSet:
    """Features (and logits) of samples x [N, ...] through ``extractor``; under ``torchrun`` each rank
    extracts its share of the rows and every rank gets them all (``distributed.gather_rows``)."""
    world = world or World()
    lo, hi = distributed.row_range(len(x), world)
    feats, logits = extractor.features_and_logits(x[lo:hi], batch=batch)
    feats = distributed.gather_rows(feats, len(x), world)
    # every rank's extractor has a class head or none, so the ranks agree on this branch
    logits = distributed.gather_rows(logits, len(x), world) if logits is not None else None
    return FeatureSet(feats, logits)


def split_features(
    extractor: FeatureExtractor, data: Dataset, batch: int = 500, cache: bool = True, world: World | None = None
) -> FeatureSet:
    """Features of a real split, from the disk cache when the same extractor already saw the same data."""
    world = world or World()
    if not cache:
        return extract(extractor, data.x, batch, world)
    key = sha256_json({"format": FEATURE_CACHE_FORMAT, "extractor": extractor.identity,
                       "preprocessing": extractor.preprocessing, "data": data.fingerprint()})
    path = cache_root() / "features" / f"{key[:32]}.safetensors"
    stored = _read_cached(path, len(data))
    # Under torchrun the ranks compute together unless every one of them found the file.
    if distributed.all_agree(stored is not None, world):
        return stored
    out = extract(extractor, data.x, batch, world)
    if world.main:
        from safetensors.torch import save

        tensors = {"feats": out.feats.contiguous()}
        if out.logits is not None:
            tensors["logits"] = out.logits.contiguous()
        atomic_write_bytes(path, lambda f: f.write(save(tensors)))
    return out


def _read_cached(path: Path, n: int) -> FeatureSet | None:
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        stored = load_file(str(path))
        if stored["feats"].shape[0] == n:
            return FeatureSet(stored["feats"], stored.get("logits"))
    except Exception:  # a truncated or foreign file: recompute and overwrite it
        pass
    return None
