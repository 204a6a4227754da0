"""2D toy data: the studies' curves and the classic mode-collapse mixtures. All of kind "points", x float32 [N, 2].

- ``sine``: (x, sin x), x ~ U(0, 2pi), no noise.
- ``parametric-curve``: (x, sin 2x + 0.3 cos 5x + eps), x ~ U(0, 2pi), eps ~ N(0, data.noise).
- ``ring8``: 8 Gaussians (std 0.02) on a circle of radius 2; ``grid25``: 25 Gaussians (std 0.05) on
  {-4, -2, 0, 2, 4}^2 (Metz et al. 2017, "Unrolled GANs"; Srivastava et al. 2017, "VEEGAN"). Labels are the
  mode index, so conditional variants can use them.

Each set has ``data.n_points`` points, deterministic in ``data.seed``; the test split is an independent fresh
sample of the same size (a different derived seed). ``meta`` carries what the toy metrics need: the curve name
and x range (with ``curve_y`` for the noiseless curve), or the mixture modes and their std.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split
from ganforge.errors import DataError

CURVE_NAMES = ("sine", "parametric-curve")
X_RANGE = (0.0, 2 * math.pi)


def curve_y(name: str, x: np.ndarray) -> np.ndarray:
    """The noiseless curve y = f(x) of a curve dataset, vectorised over x (for distance-to-curve metrics)."""
    x = np.asarray(x, dtype=np.float64)
    if name == "sine":
        return np.sin(x)
    if name == "parametric-curve":
        return np.sin(2 * x) + 0.3 * np.cos(5 * x)
    raise ValueError(f"unknown curve {name!r}; curves: {', '.join(CURVE_NAMES)}")


def _rng(cfg: DataConfig, split: Split) -> np.random.Generator:
    """Independent streams for train and test, both fixed by data.seed."""
    return np.random.default_rng([cfg.seed, {"train": 0, "test": 1}[split]])


def _check(cfg: DataConfig) -> None:
    if cfg.n_points < 1:
        raise DataError(f"data.n_points must be >= 1 for dataset {cfg.name!r}, got {cfg.n_points}")
    if cfg.noise < 0:
        raise DataError(f"data.noise must be >= 0 for dataset {cfg.name!r}, got {cfg.noise}")


def _curve(name: str, noise: float, cfg: DataConfig, split: Split) -> Dataset:
    _check(cfg)
    rng = _rng(cfg, split)
    x = rng.uniform(*X_RANGE, size=cfg.n_points)  # [N]
    y = curve_y(name, x)  # [N]
    if noise > 0:
        y = y + rng.normal(0.0, noise, size=cfg.n_points)
    pts = torch.from_numpy(np.stack([x, y], axis=1).astype(np.float32))  # [N, 2]
    meta = {"curve": name, "x_range": list(X_RANGE), "noise": noise}
    return Dataset(name, pts, kind="points", source=f"generated ({name}, seed {cfg.seed}, {split})", meta=meta)


@DATASETS.register("sine", help="(x, sin x), x ~ U(0, 2pi); data.n_points points, no noise (the sine study)")
def load_sine(cfg: DataConfig, split: Split) -> Dataset:
    return _curve("sine", 0.0, cfg, split)


@DATASETS.register("parametric-curve", help="(x, sin 2x + 0.3 cos 5x + N(0, data.noise)), x ~ U(0, 2pi)")
def load_parametric_curve(cfg: DataConfig, split: Split) -> Dataset:
    return _curve("parametric-curve", cfg.noise, cfg, split)


def _mixture(name: str, modes: np.ndarray, std: float, cfg: DataConfig, split: Split) -> Dataset:
    """N points from an equal-weight mixture of isotropic Gaussians centred on modes [K, 2]."""
    _check(cfg)
    rng = _rng(cfg, split)
    labels = rng.integers(0, len(modes), size=cfg.n_points)  # [N] mode index
    pts = modes[labels] + rng.normal(0.0, std, size=(cfg.n_points, 2))  # [N, 2]
    return Dataset(
        name, torch.from_numpy(pts.astype(np.float32)), torch.from_numpy(labels.astype(np.int64)),
        num_classes=len(modes), class_names=tuple(str(i) for i in range(len(modes))), kind="points",
        source=f"generated ({name}, seed {cfg.seed}, {split})", meta={"modes": modes.tolist(), "mode_std": std},
    )


def ring8_modes() -> np.ndarray:
    """[8, 2] points at angles 2pi k / 8 on the circle of radius 2."""
    angles = np.arange(8) * 2 * math.pi / 8
    return 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid25_modes() -> np.ndarray:
    """[25, 2] points of {-4, -2, 0, 2, 4}^2, row-major in (x, y)."""
    g = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    return np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)


@DATASETS.register("ring8", help="8 Gaussians (std 0.02) on a circle of radius 2; label = mode (mode-collapse test)")
def load_ring8(cfg: DataConfig, split: Split) -> Dataset:
    return _mixture("ring8", ring8_modes(), 0.02, cfg, split)


@DATASETS.register("grid25", help="25 Gaussians (std 0.05) on a 5x5 grid at {-4..4}^2; label = mode")
def load_grid25(cfg: DataConfig, split: Split) -> Dataset:
    return _mixture("grid25", grid25_modes(), 0.05, cfg, split)
