"""Labels without annotations: ``data.clusters = K`` replaces a dataset's labels with K clusters of its images.

A conditional variant then trains without annotations. G draws each sample from one cluster, chosen at the
clusters' frequency in the training split, so it never has to bridge two clusters with one smooth map from its
Gaussian latent. Without labels those bridges are the samples that fall between digit classes (Liu et al. 2020,
"Diverse image generation via self-conditioned GANs", condition on clusters of D's features, re-fit during
training; here the clusters are fit once, before training, on the pixels).

The fit: the training split's images (after ``data.classes`` and ``data.limit``) flattened, reduced to at most
``PCA_DIMS`` principal components, then k-means (k-means++ starts, ``N_INIT`` restarts), all seeded by
``data.seed``. The test split is assigned to the nearest of the training split's centres. The dataset's true
labels are not used, and are not kept: the clusters are the labels from here on ("cluster 0", "cluster 1", ...).

What depends on this (all through ``Dataset.meta["clusters"]``, ``["cluster_prior"]``):
- the exported generator records the clusters' frequencies; ``generate`` and ``evaluate`` draw clusters at those
  frequencies, so the run samples like an unconditional generator (``training/export.py``);
- ``evaluate`` measures the run as unconditional, against the dataset without clusters: the same protocol ids
  as any unconditional run on that data (``metrics/evaluate.py``).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import torch

from ganforge.config import DataConfig
from ganforge.data.base import Dataset
from ganforge.data.stream import StreamedImages
from ganforge.errors import DataError

PCA_DIMS = 50
N_INIT = 4


def with_clusters(data: Dataset, cfg: DataConfig, train_x: torch.Tensor) -> Dataset:
    """``data`` with its labels replaced by ``cfg.clusters`` k-means clusters fit on ``train_x`` [N, ...]."""
    k = cfg.clusters
    _check(data, k, len(train_x))
    pca, km = _fit(train_x, k, cfg.seed)
    y = km.predict(pca.transform(_flat(data.x))).astype(np.int64)
    prior = np.bincount(km.labels_, minlength=k) / len(km.labels_)  # the training split's frequencies
    meta = {**data.meta, "clusters": k, "cluster_prior": [float(p) for p in prior]}
    return dataclasses.replace(data, y=torch.from_numpy(y), num_classes=k,
                               class_names=tuple(f"cluster {i}" for i in range(k)), meta=meta)


def _check(data: Dataset, k: int, n_train: int) -> None:
    if data.kind != "image" or data.two_domain:
        raise DataError(f"data.clusters applies to single-domain image data; {data.name!r} is not. "
                        "Remove data.clusters.")
    if isinstance(data.x, StreamedImages):
        raise DataError(f"data.clusters needs the images of {data.name!r} in memory, and they are streamed from "
                        "disk; raise data.max_memory_mb or remove data.clusters.")
    if n_train < 2 * k:
        raise DataError(f"data.clusters={k} needs at least {2 * k} training images; {data.name!r} has {n_train}. "
                        "Lower data.clusters.")


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.flatten(1).numpy().astype(np.float64)


def _fit(train_x: torch.Tensor, k: int, seed: int):  # -> (PCA, KMeans), cached by the pixels' bytes
    arr = np.ascontiguousarray(train_x.numpy())
    return _fit_cached(arr.tobytes(), arr.shape, k, seed)


@lru_cache(maxsize=8)
def _fit_cached(raw: bytes, shape: tuple[int, ...], k: int, seed: int):
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = np.frombuffer(raw, dtype=np.float32).reshape(shape[0], -1).astype(np.float64)
    pca = PCA(min(PCA_DIMS, *x.shape), random_state=seed).fit(x)
    km = KMeans(k, n_init=N_INIT, random_state=seed).fit(pca.transform(x))
    return pca, km


__all__ = ["with_clusters"]
