"""Nearest-neighbour memorisation audit: does the generator return (near) copies of training samples?

For every generated sample we find its nearest training sample, and compare those distances to the
nearest-training-sample distances of *held-out real test samples*, which are independent draws from
the data distribution and so show what "close to the training set by chance" looks like
(the baseline of Webster et al. 2019 "Detecting Overfitting of Deep Generative Networks via Latent
Recovery" and of the nearest-neighbour checks in the GAN literature). The space is the caller's
choice: extractor features, or flattened pixels (pass [N, C, H, W]; rows are flattened).

Near-copy rule (``threshold=None``, the default): a generated sample is a near-copy when its
distance to the training set is at most the ``quantile`` (default 1%) quantile of the test-to-train
distances. By construction about ``quantile`` of independent real samples fall below it, so an
honest generator shows ~1% near-copies and a generator that returns training images (distance 0)
shows ~100%. ``flagged`` is ``near_copy_fraction > flag_fraction`` (default 5%, five times the
rate expected by chance). Pass ``threshold`` (e.g. a pixel-space L2 distance) to use a fixed
threshold instead; the rule used is recorded in ``threshold_rule``.

Also reported:

- ``median_ratio`` = median(gen-to-train) / median(test-to-train): ~1 for a generator as far from
  the training set as fresh data, << 1 when it sits on the training samples.
- ``data_copying_zu``: the Mann-Whitney Z statistic of Meehan et al. 2020, "A Non-Parametric Test to
  Detect Data-Copying in Generative Models" (https://arxiv.org/abs/2004.05675), comparing gen-to-train
  with test-to-train distances: ~0 when they match, << 0 for data copying, >> 0 for underfitting.
  Global by default; with cell labels (e.g. k-means of the training set) it is their cell-weighted
  C_T statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from ganforge.metrics.prdc import nearest_neighbours


@dataclass(frozen=True)
class MemorizationAudit:
    gen_nn_dist: np.ndarray  # [N_gen] distance from each generated sample to its nearest training sample
    gen_nn_index: np.ndarray  # [N_gen] index of that training sample
    test_nn_dist: np.ndarray  # [N_test] same for held-out real samples: the chance baseline
    median_ratio: float  # median(gen_nn_dist) / median(test_nn_dist)
    threshold: float  # near-copy distance threshold actually used
    threshold_rule: str  # "test-quantile(0.01)" or "absolute"
    near_copy_fraction: float  # fraction of generated samples with gen_nn_dist <= threshold
    test_near_copy_fraction: float  # same fraction for the test samples (~quantile under the default rule)
    flagged: bool  # near_copy_fraction > flag_fraction
    closest_pairs: np.ndarray  # [n_pairs, 2] int64 (gen index, train index), closest first
    closest_dist: np.ndarray  # [n_pairs]
    data_copying_zu: float  # Meehan et al. Z_U (or C_T with cells): << 0 means copying


def mann_whitney_z(gen_nn_dist: np.ndarray, test_nn_dist: np.ndarray) -> float:
    """Z score of U = #{(i, j): gen_i > test_j} (+ 1/2 per tie) under the null of equal distributions."""
    m, n = len(gen_nn_dist), len(test_nn_dist)
    test = np.sort(test_nn_dist)
    below = np.searchsorted(test, gen_nn_dist, side="left")  # per gen_i: #{j: test_j < gen_i}
    ties = np.searchsorted(test, gen_nn_dist, side="right") - below
    u = below.sum() + 0.5 * ties.sum()  # (numpy only: scipy.stats takes seconds to import)
    return float((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


def data_copying_ct(
    gen_nn_dist: np.ndarray,
    test_nn_dist: np.ndarray,
    gen_cells: np.ndarray | None = None,
    test_cells: np.ndarray | None = None,
    min_gen_per_cell: int = 20,
) -> float:
    """Meehan et al.'s C_T: test-share-weighted mean of per-cell Z_U over cells with enough generated samples.

    Without cells it is the global Z_U. Cells are integer labels of a partition of the space
    (the paper uses k-means on the training set); cells with fewer than ``min_gen_per_cell``
    generated samples or no test samples are skipped.
    """
    if gen_cells is None or test_cells is None:
        return mann_whitney_z(gen_nn_dist, test_nn_dist)
    total, weight = 0.0, 0.0
    for cell in np.unique(test_cells):
        g, t = gen_nn_dist[gen_cells == cell], test_nn_dist[test_cells == cell]
        if len(g) < min_gen_per_cell or len(t) == 0:
            continue
        share = len(t) / len(test_nn_dist)  # P_n(pi)
        total += share * mann_whitney_z(g, t)
        weight += share
    if weight == 0.0:
        raise ValueError(f"no cell holds >= {min_gen_per_cell} generated samples; use fewer cells or more samples.")
    return total / weight


def memorization_audit(
    train: ArrayLike | torch.Tensor,
    test: ArrayLike | torch.Tensor,
    gen: ArrayLike | torch.Tensor,
    quantile: float = 0.01,
    threshold: float | None = None,
    flag_fraction: float = 0.05,
    n_pairs: int = 16,
) -> MemorizationAudit:
    """Audit generated samples against the training set, with held-out test samples as the baseline.

    train [N_train, ...], test [N_test, ...], gen [N_gen, ...] in one space (features or pixels).
    """
    gen_nn_dist, gen_nn_index = nearest_neighbours(gen, train)
    test_nn_dist, _ = nearest_neighbours(test, train)
    if threshold is None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), e.g. 0.01; got {quantile}.")
        threshold, rule = float(np.quantile(test_nn_dist, quantile)), f"test-quantile({quantile:g})"
    else:
        rule = "absolute"
    near_copy = gen_nn_dist <= threshold  # <=: a threshold of 0 (duplicates across splits) still catches copies
    order = np.argsort(gen_nn_dist, kind="stable")[:n_pairs]
    median_test = float(np.median(test_nn_dist))
    near_copy_fraction = float(near_copy.mean())
    return MemorizationAudit(
        gen_nn_dist=gen_nn_dist,
        gen_nn_index=gen_nn_index,
        test_nn_dist=test_nn_dist,
        median_ratio=float(np.median(gen_nn_dist)) / median_test if median_test > 0 else float("nan"),
        threshold=float(threshold),
        threshold_rule=rule,
        near_copy_fraction=near_copy_fraction,
        test_near_copy_fraction=float((test_nn_dist <= threshold).mean()),
        flagged=near_copy_fraction > flag_fraction,
        closest_pairs=np.stack([order, gen_nn_index[order]], axis=1).astype(np.int64),
        closest_dist=gen_nn_dist[order],
        data_copying_zu=mann_whitney_z(gen_nn_dist, test_nn_dist),
    )
