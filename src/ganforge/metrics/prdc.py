"""Precision, recall, density and coverage from k-NN balls in feature space.

- Precision / recall: Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models" (https://arxiv.org/abs/1904.06991). Precision = fraction of generated samples
  inside the union of real k-NN balls; recall = fraction of real samples inside the union of
  generated k-NN balls. Usually k = 3.
- Density / coverage: Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
  Models" (https://arxiv.org/abs/2002.09797), reference code ``clovaai/generative-evaluation-prdc``.
  Density = (1 / k) * mean over generated samples of the number of real balls containing it (about 1
  when the distributions match; unbounded above). Coverage = fraction of real samples whose ball
  contains at least one generated sample; for identical distributions it tends to 1 - 2^-k (k = 5:
  0.969). Usually k = 5.

The ball around sample i has radius = distance to its k-th nearest neighbour in its own set, self
excluded; "inside" is strict (<), as in the reference code. ``prdc`` computes all radii once, with
separate ``k_pr`` (precision/recall) and ``k_dc`` (density/coverage).

Distances are exact Euclidean distances from ``torch.cdist`` (float32, matmul form) over row chunks,
so 10,000 x 10,000 never materialises a full matrix and runs in a few seconds on a CPU. The helpers
``kth_neighbour_distances`` and ``nearest_neighbours`` are reused by the memorisation audit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

_CHUNK_ELEMENTS = 2**24  # distance entries per chunk: 64 MiB of float32


def _as_tensor(x: ArrayLike | torch.Tensor) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    t = t.to(torch.float32)
    return t.flatten(1) if t.dim() > 2 else t


def _row_chunks(n_rows: int, n_cols: int, max_elements: int) -> Iterator[slice]:
    step = max(1, max_elements // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


@dataclass(frozen=True)
class PRDC:
    precision: float  # fraction of generated samples inside some real k_pr-ball  (fidelity)
    recall: float  # fraction of real samples inside some generated k_pr-ball     (diversity)
    density: float  # mean count of real k_dc-balls containing a generated sample / k_dc  (fidelity, ~1)
    coverage: float  # fraction of real k_dc-balls containing >= 1 generated sample     (diversity)
    k_pr: int
    k_dc: int
    n_real: int
    n_gen: int


def kth_neighbour_distances(
    feats: ArrayLike | torch.Tensor, ks: Sequence[int], max_elements: int = _CHUNK_ELEMENTS
) -> dict[int, np.ndarray]:
    """For each k in ``ks``: distance [N] from every row of feats [N, D] to its k-th nearest other row."""
    x = _as_tensor(feats)
    n, k_max = x.shape[0], max(ks)
    if min(ks) < 1 or k_max >= n:
        raise ValueError(f"k must be in [1, N - 1] = [1, {n - 1}], got {list(ks)}; use more samples or a smaller k.")
    kth = torch.empty(n, k_max + 1, device=x.device)
    with torch.no_grad():
        for rows in _row_chunks(n, n, max_elements):
            d = torch.cdist(x[rows], x, compute_mode="use_mm_for_euclid_dist")  # [c, N]
            # Self is the nearest (distance ~0), so the k-th neighbour is the (k+1)-th smallest.
            kth[rows] = d.topk(k_max + 1, dim=1, largest=False).values
    return {k: kth[:, k].double().cpu().numpy() for k in ks}


def nearest_neighbours(
    query: ArrayLike | torch.Tensor, ref: ArrayLike | torch.Tensor, max_elements: int = _CHUNK_ELEMENTS
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest row of ref [M, D] for each row of query [N, D] -> (distance [N] float64, index [N] int64).

    The search uses the fast matmul form; the returned distance is then recomputed directly from
    the difference in float64, so an exact copy has distance exactly 0.
    """
    q, r = _as_tensor(query), _as_tensor(ref)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query and ref must have the same dimension, got {tuple(q.shape)} and {tuple(r.shape)}.")
    r = r.to(q.device)
    index = torch.empty(q.shape[0], dtype=torch.int64, device=q.device)
    with torch.no_grad():
        for rows in _row_chunks(q.shape[0], r.shape[0], max_elements):
            index[rows] = torch.cdist(q[rows], r, compute_mode="use_mm_for_euclid_dist").argmin(dim=1)
        dist = (q.double() - r[index].double()).norm(dim=1)
    return dist.cpu().numpy(), index.cpu().numpy()


def prdc(
    feats_real: ArrayLike | torch.Tensor,
    feats_gen: ArrayLike | torch.Tensor,
    k_pr: int = 3,
    k_dc: int = 5,
    max_elements: int = _CHUNK_ELEMENTS,
) -> PRDC:
    """Precision and recall (k_pr) and density and coverage (k_dc) of features [N_real, D] vs [N_gen, D]."""
    real, gen = _as_tensor(feats_real), _as_tensor(feats_gen)
    gen = gen.to(real.device)  # computed on real's device: pass CUDA tensors to use a GPU
    if real.shape[1] != gen.shape[1]:
        raise ValueError(f"real and generated features differ in dimension: {tuple(real.shape)} vs {tuple(gen.shape)}.")
    real_radii = kth_neighbour_distances(real, sorted({k_pr, k_dc}), max_elements)
    dev = real.device
    gen_radius_pr = torch.from_numpy(kth_neighbour_distances(gen, [k_pr], max_elements)[k_pr]).float().to(dev)
    real_radius_pr = torch.from_numpy(real_radii[k_pr]).float().to(dev)
    real_radius_dc = torch.from_numpy(real_radii[k_dc]).float().to(dev)

    n_real, n_gen = real.shape[0], gen.shape[0]
    gen_in_real_ball = torch.zeros(n_gen, dtype=torch.bool, device=dev)  # precision
    real_in_gen_ball = torch.zeros(n_real, dtype=torch.bool, device=dev)  # recall
    real_balls_per_gen = torch.zeros(n_gen, dtype=torch.int64, device=dev)  # density
    real_ball_covered = torch.zeros(n_real, dtype=torch.bool, device=dev)  # coverage
    with torch.no_grad():
        for rows in _row_chunks(n_real, n_gen, max_elements):
            d = torch.cdist(real[rows], gen, compute_mode="use_mm_for_euclid_dist")  # [c, N_gen]
            gen_in_real_ball |= (d < real_radius_pr[rows, None]).any(dim=0)
            real_in_gen_ball[rows] = (d < gen_radius_pr[None, :]).any(dim=1)
            real_balls_per_gen += (d < real_radius_dc[rows, None]).sum(dim=0)
            real_ball_covered[rows] = d.min(dim=1).values < real_radius_dc[rows]

    return PRDC(
        precision=gen_in_real_ball.double().mean().item(),
        recall=real_in_gen_ball.double().mean().item(),
        density=real_balls_per_gen.double().mean().item() / k_dc,
        coverage=real_ball_covered.double().mean().item(),
        k_pr=k_pr,
        k_dc=k_dc,
        n_real=n_real,
        n_gen=n_gen,
    )
