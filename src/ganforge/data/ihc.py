"""RGB tissue patches from scikit-image's bundled 512x512 immunohistochemistry image (``ihc.png``).

Offline stand-ins for PathMNIST-like data: ``data.n_points`` patches of 3 x R x R, R = ``data.resolution``
(default 28), each a 2R x 2R crop averaged down 2x2 (like MedMNIST's downsampled tissue tiles). Train and test
crops never share pixels; both splits are deterministic in ``data.seed``.

- ``ihc-patches``: random crops, unlabelled. Train crops come from the left three quarters of the image, test
  crops from the right quarter.
- ``ihc-tissue``: labelled like PathMNIST's tissue classes, from the stain. The image is colon-cancer tissue with
  the epithelium stained brown by DAB and the nuclei blue by haematoxylin. Colour deconvolution (Ruifrok &
  Johnston 2001, ``skimage.color.rgb2hed``) gives each pixel's DAB optical density; a crop's class is the share of
  its pixels above ``DAB_POSITIVE``: stroma (under 15%), border (15-60%), epithelium (60% and more). The classes
  are drawn balanced: ``n_points // 3`` tiles each for training, a quarter of that for the test split. It has
  PathMNIST's shape (3 x 28 x 28 RGB tiles, integer tissue labels) but is not PathMNIST: 3 classes from one
  slide, no patient variation. The test split is 4 of the slide's 4 x 4 blocks, one in each row and column (the
  right quarter holds little epithelium), and no crop crosses a block's edge. Crops sit on a lattice of
  ``2R // 14`` px and each comes in one of its 8 rotations and mirror images, drawn without replacement:
  repeated or one-pixel-shifted tiles would shrink the nearest-neighbour radii of precision and recall to nothing.
"""

from __future__ import annotations

import numpy as np
import torch
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


def tiles(image: np.ndarray, tops: np.ndarray, lefts: np.ndarray, crop: int) -> torch.Tensor:
    """[N, 3, crop / 2, crop / 2] in [-1, 1]: the crop x crop squares at (tops, lefts) of ``image`` [H, W, 3], each
    averaged down 2x2 (a box filter, like MedMNIST's downsampled tiles)."""
    rows = tops[:, None] + np.arange(crop)  # [N, crop]
    cols = lefts[:, None] + np.arange(crop)  # [N, crop]
    return F.avg_pool2d(to_unit_range(image[rows[:, :, None], cols[:, None, :]]), kernel_size=2)


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
    x = tiles(image, tops, lefts, crop)  # [N, 3, res, res]
    return Dataset(
        "ihc-patches", x.contiguous(), kind="image", source="skimage.data.immunohistochemistry (ihc.png)",
        meta={"crop": crop, "split_columns": [lo, hi + crop], "seed": cfg.seed},
    )


DAB_POSITIVE = 0.06  # DAB optical density above which a pixel counts as stained (the image's median is 0.054)
TISSUE_CLASSES = ("stroma", "border", "epithelium")
TISSUE_BOUNDS = (0.15, 0.60)  # DAB-positive share of a crop: below the first stroma, from the second epithelium
TISSUE_GRID = 4  # the slide as 4 x 4 blocks; every crop lies inside one block
TISSUE_TEST_BLOCKS = (1, 7, 8, 14)  # row * 4 + column: one held-out block per row and column, spread over the slide
DIHEDRAL = 8  # each crop in its 4 rotations, each also mirrored: tissue has no up or left


def dab_positive(image: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels whose DAB optical density (colour deconvolution) exceeds DAB_POSITIVE."""
    from skimage.color import rgb2hed

    return rgb2hed(image)[..., 2] > DAB_POSITIVE


def crop_shares(mask: np.ndarray, crop: int) -> np.ndarray:
    """float [H - crop + 1, W - crop + 1]: the share of True pixels in the crop whose top-left corner is (i, j)."""
    s = np.pad(mask.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table [H+1, W+1]
    return (s[crop:, crop:] - s[:-crop, crop:] - s[crop:, :-crop] + s[:-crop, :-crop]) / crop**2


@DATASETS.register("ihc-tissue", help="IHC patches labelled stroma / border / epithelium by their DAB stain (3x28x28, "
                   "PathMNIST's shape); offline")
def load_ihc_tissue(cfg: DataConfig, split: Split) -> Dataset:
    res = cfg.resolution or DEFAULT_RESOLUTION
    crop = 2 * res
    image = immunohistochemistry()  # [H, W, 3]
    h, w = image.shape[:2]
    block = min(h, w) // TISSUE_GRID
    per_class = (cfg.n_points if split == "train" else cfg.n_points // 4) // len(TISSUE_CLASSES)
    if crop > block:
        raise DataError(f"data.resolution={res} needs {crop}-px crops, larger than ihc-tissue's {block}-px blocks "
                        f"of the {w}x{h} image; use data.resolution <= {block // 2}")
    if cfg.n_points < 4 * len(TISSUE_CLASSES):
        raise DataError(f"data.n_points must be >= {4 * len(TISSUE_CLASSES)} (a test split of a quarter of it, "
                        f"one tile per class), got {cfg.n_points}")
    share = crop_shares(dab_positive(image), crop)  # [tops, lefts]: DAB-positive share of every crop
    t, left = np.indices(share.shape)
    stride = max(1, crop // 14)  # crops on a lattice: neighbours shifted by a pixel would be near-copies
    inside = (t // block == (t + crop - 1) // block) & (left // block == (left + crop - 1) // block)  # one block
    held_out = np.isin((t // block) * TISSUE_GRID + left // block, TISSUE_TEST_BLOCKS)
    usable = inside & (held_out if split == "test" else ~held_out) & (t % stride == 0) & (left % stride == 0)
    label = np.digitize(share, TISSUE_BOUNDS)  # 0 stroma, 1 border, 2 epithelium
    rng = np.random.default_rng([cfg.seed, {"train": 0, "test": 1}[split]])
    tops, lefts, turns, labels = [], [], [], []
    for k, name in enumerate(TISSUE_CLASSES):
        top_k, left_k = np.nonzero(usable & (label == k))
        if len(top_k) * DIHEDRAL < per_class:
            raise DataError(f"ihc-tissue's {split} blocks hold {len(top_k) * DIHEDRAL} distinct {name} tiles of "
                            f"{res} px, fewer than the {per_class} per class asked for; lower data.n_points")
        pick = rng.choice(len(top_k) * DIHEDRAL, size=per_class, replace=False)  # distinct (crop, transform)
        tops.append(top_k[pick // DIHEDRAL])
        lefts.append(left_k[pick // DIHEDRAL])
        turns.append(pick % DIHEDRAL)
        labels.append(np.full(per_class, k))
    x = tiles(image, np.concatenate(tops), np.concatenate(lefts), crop)  # [N, 3, res, res]
    turn = torch.from_numpy(np.concatenate(turns))
    for r in range(4):  # transform d: rotate by d % 4 quarter turns, then mirror when d >= 4
        x[turn % 4 == r] = torch.rot90(x[turn % 4 == r], r, dims=(2, 3))
    x[turn >= 4] = x[turn >= 4].flip(3)
    return Dataset(
        "ihc-tissue", x.contiguous(), torch.from_numpy(np.concatenate(labels)), num_classes=len(TISSUE_CLASSES),
        class_names=TISSUE_CLASSES, source="skimage.data.immunohistochemistry (ihc.png), labels by DAB stain",
        meta={"crop": crop, "block": block, "test_blocks": list(TISSUE_TEST_BLOCKS), "stride": stride, "seed": cfg.seed,
              "dab_positive": DAB_POSITIVE, "class_bounds": list(TISSUE_BOUNDS)},
    )
