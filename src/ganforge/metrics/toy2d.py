"""Metrics for low-dimensional point sets (the 2-D toy studies): no feature extractor needed.

- ``energy_distance(x, y)``: Székely & Rizzo 2013, "Energy statistics: A class of statistics based
  on distances": 2 E|X - Y| - E|X - X'| - E|Y - Y'| (the square of the energy distance; within-set
  means exclude i = j, so it is ~0, possibly slightly negative, for two samples of one distribution).
- ``mmd2(x, y)``: Gretton et al. 2012, "A Kernel Two-Sample Test": unbiased MMD^2 with a Gaussian
  kernel exp(-|x - y|^2 / (2 bandwidth^2)); bandwidth by the median heuristic (median pairwise
  distance of the pooled sample, on at most ``max_points`` points drawn with ``rng``).
  Compare generated points with *fresh* real points, not the training points.
- Curves y = f(x): ``curve_points`` samples the curve densely; ``distance_to_curve`` gives each
  point's distance to the nearest curve sample (a KD-tree query); ``curve_distance`` composes the
  two. The discretisation error is at most half the longest gap between consecutive curve samples,
  reported as ``resolution``. Noisy real data has a nonzero floor (about 0.8 * noise std for
  Gaussian noise in y on a flat stretch): report the real data's value next to the generator's.
- Gaussian mixtures: ``mode_coverage`` with the protocol of Metz et al. 2017 (Unrolled GAN),
  Srivastava et al. 2017 (VEEGAN) and Lin et al. 2018 (PacGAN): a sample is *high quality* when it lies
  within ``n_std`` (3) standard deviations of its nearest mode centre; a mode is *covered* when at
  least ``min_fraction`` of all samples are high-quality samples of that mode. The default 0.008
  is those papers' "20 of 2,500 samples", scaled to any N.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

_CHUNK_ELEMENTS = 2**22  # pairwise entries per chunk: 32 MiB of float64


def _as_float64(x: ArrayLike | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected points [N, D], got shape {x.shape}.")
    return x


def _mean_pairwise(
    x: np.ndarray, y: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor], exclude_diagonal: bool
) -> float:
    """Mean of fn(|x_i - y_j|) over all pairs (over i != j when x is y), in row chunks."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    step = max(1, _CHUNK_ELEMENTS // max(len(y), 1))
    total = 0.0
    for start in range(0, len(x), step):
        d = torch.cdist(xt[start : start + step], yt, compute_mode="donot_use_mm_for_euclid_dist")  # exact
        total += fn(d).sum().item()
    if exclude_diagonal:
        n = len(x)
        total -= n * fn(torch.zeros(1, dtype=torch.float64)).item()  # fn(0) on each diagonal entry
        return total / (n * (n - 1))
    return total / (len(x) * len(y))


def energy_distance(x: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor) -> float:
    """2 E|X - Y| - E|X - X'| - E|Y - Y'| between points x [N, D] and y [M, D] (N, M >= 2)."""
    x, y = _as_float64(x), _as_float64(y)
    ident = lambda d: d  # noqa: E731
    return (
        2 * _mean_pairwise(x, y, ident, False) - _mean_pairwise(x, x, ident, True) - _mean_pairwise(y, y, ident, True)
    )


@dataclass(frozen=True)
class MMD:
    mmd2: float  # unbiased MMD^2 (can be slightly negative when the distributions match)
    bandwidth: float  # Gaussian kernel sigma used


def median_heuristic(
    x: ArrayLike | torch.Tensor,
    y: ArrayLike | torch.Tensor,
    max_points: int = 1000,
    rng: np.random.Generator | int | None = 0,
) -> float:
    """Median pairwise distance (i != j) of the pooled points, on at most ``max_points`` random points."""
    pooled = np.concatenate([_as_float64(x), _as_float64(y)])
    if len(pooled) > max_points:
        pooled = pooled[np.random.default_rng(rng).choice(len(pooled), max_points, replace=False)]
    from scipy.spatial.distance import pdist  # lazy: image runs never need it

    return float(np.median(pdist(pooled)))


def mmd2(
    x: ArrayLike | torch.Tensor,
    y: ArrayLike | torch.Tensor,
    bandwidth: float | None = None,
    rng: np.random.Generator | int | None = 0,
) -> MMD:
    """Unbiased Gaussian-kernel MMD^2 between x [N, D] and y [M, D]; bandwidth None -> median heuristic."""
    x, y = _as_float64(x), _as_float64(y)
    sigma = median_heuristic(x, y, rng=rng) if bandwidth is None else float(bandwidth)
    if sigma <= 0:
        raise ValueError(f"bandwidth must be > 0, got {sigma} (are all points identical?).")
    k = lambda d: torch.exp(-(d**2) / (2 * sigma**2))  # noqa: E731
    value = _mean_pairwise(x, x, k, True) + _mean_pairwise(y, y, k, True) - 2 * _mean_pairwise(x, y, k, False)
    return MMD(value, sigma)


def curve_points(f: Callable[[np.ndarray], np.ndarray], x_range: tuple[float, float], n: int = 20_001) -> np.ndarray:
    """Dense samples [n, 2] of the curve y = f(x), x in x_range; f is vectorised over numpy arrays."""
    xs = np.linspace(x_range[0], x_range[1], n)
    return np.stack([xs, np.asarray(f(xs), dtype=np.float64)], axis=1)


@dataclass(frozen=True)
class CurveDistance:
    mean: float  # mean distance from a point to the curve
    median: float
    per_point: np.ndarray  # [N]
    resolution: float  # max discretisation error: half the longest gap between curve samples


def distance_to_curve(points: ArrayLike | torch.Tensor, curve: np.ndarray) -> CurveDistance:
    """Distance from each point [N, 2] to the nearest sample of a dense curve [M, 2] (e.g. from ``curve_points``)."""
    p, c = _as_float64(points), _as_float64(curve)
    from scipy.spatial import cKDTree  # lazy: image runs never need it

    d, _ = cKDTree(c).query(p)
    gap = float(np.linalg.norm(np.diff(c, axis=0), axis=1).max()) if len(c) > 1 else 0.0
    return CurveDistance(float(d.mean()), float(np.median(d)), d, gap / 2)


def curve_distance(
    points: ArrayLike | torch.Tensor,
    f: Callable[[np.ndarray], np.ndarray],
    x_range: tuple[float, float],
    n_grid: int = 20_001,
) -> CurveDistance:
    """distance_to_curve(points, curve_points(f, x_range, n_grid))."""
    return distance_to_curve(points, curve_points(f, x_range, n_grid))


@dataclass(frozen=True)
class ModeCoverage:
    modes_covered: int
    n_modes: int
    high_quality_fraction: float  # fraction of samples within n_std std of their nearest mode
    counts: np.ndarray  # [K] high-quality samples per mode
    covered: np.ndarray  # [K] bool
    min_count: float  # samples a mode needed to count as covered (min_fraction * N)


def mode_coverage(
    points: ArrayLike | torch.Tensor,
    centres: ArrayLike,
    std: float | ArrayLike,
    n_std: float = 3.0,
    min_fraction: float = 20 / 2500,
) -> ModeCoverage:
    """Modes covered and high-quality fraction of points [N, D] for a mixture with centres [K, D], std scalar or [K]."""
    p, c = _as_float64(points), _as_float64(centres)
    s = np.broadcast_to(np.asarray(std, dtype=np.float64), (len(c),))
    z = np.linalg.norm(p[:, None, :] - c[None, :, :], axis=2) / s[None, :]  # [N, K] distance in units of std
    nearest = z.argmin(axis=1)
    high_quality = z[np.arange(len(p)), nearest] <= n_std
    counts = np.bincount(nearest[high_quality], minlength=len(c))
    min_count = min_fraction * len(p)
    covered = counts >= min_count
    return ModeCoverage(int(covered.sum()), len(c), float(high_quality.mean()), counts, covered, min_count)
