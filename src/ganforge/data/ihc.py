"""Random RGB tissue patches from scikit-image's bundled 512x512 immunohistochemistry image (``ihc.png``).

An offline stand-in for PathMNIST-like data: ``data.n_points`` patches of 3 x R x R, R = ``data.resolution``
(default 28), each a random 2R x 2R crop averaged down 2x2 (like MedMNIST's downsampled tissue tiles).
Unlabelled. Train crops come from the left three quarters of the image and test crops from the right quarter,
so the two splits never share pixels; both are deterministic in ``data.seed``.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, to_unit_range
from ganforge.errors import DataError

DEFAULT_RESOLUTION = 28
TEST_SHARE = 0.25  # of the image width, held out for the test split


def immunohistochemistry() -> np.ndarray:
    """uint8 [512, 512, 3] from scikit-image (imported lazily: it is slow to import)."""
    try:
        from skimage import data as skdata
    except ImportError:
        raise DataError("dataset ihc-patches needs scikit-image: pip install scikit-image") from None
    try:
        return np.asarray(skdata.immunohistochemistry(), dtype=np.uint8)
    except Exception as e:  # a broken or stripped installation
        raise DataError(f"scikit-image could not load ihc.png ({e}); reinstall it: pip install scikit-image") from None


@DATASETS.register("ihc-patches", help="random RGB tissue patches (3x28x28) from scikit-image's IHC image; offline")
def load_ihc_patches(cfg: DataConfig, split: Split) -> Dataset:
    res = cfg.resolution or DEFAULT_RESOLUTION
    crop = 2 * res
    image = immunohistochemistry()  # [H, W, 3]
    h, w = image.shape[:2]
    boundary = w - max(crop, int(w * TEST_SHARE))  # columns [0, boundary) train, [boundary, w) test
    if boundary < crop or h < crop:
        raise DataError(
            f"data.resolution={res} needs {crop}x{crop} crops, too large for the {w}x{h} IHC image split into "
            f"train and test parts; use data.resolution <= {min(h, w) // 4}"
        )
    if cfg.n_points < 1:
        raise DataError(f"data.n_points (the number of patches) must be >= 1, got {cfg.n_points}")
    lo, hi = (0, boundary - crop) if split == "train" else (boundary, w - crop)
    rng = np.random.default_rng([cfg.seed, {"train": 0, "test": 1}[split]])
    tops = rng.integers(0, h - crop + 1, size=cfg.n_points)
    lefts = rng.integers(lo, hi + 1, size=cfg.n_points)
    rows = tops[:, None] + np.arange(crop)  # [N, crop]
    cols = lefts[:, None] + np.arange(crop)  # [N, crop]
    patches = image[rows[:, :, None], cols[:, None, :]]  # [N, crop, crop, 3]
    x = F.avg_pool2d(to_unit_range(patches), kernel_size=2)  # [N, 3, res, res], 2x2 box average
    return Dataset(
        "ihc-patches", x.contiguous(), kind="image", source="skimage.data.immunohistochemistry (ihc.png)",
        meta={"crop": crop, "split_columns": [lo, hi + crop], "seed": cfg.seed},
    )
