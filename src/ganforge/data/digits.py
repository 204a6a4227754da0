"""scikit-learn's 1,797 handwritten 8x8 digits (the UCI optical digits test set): 1x8x8, 10 classes.

Pixel values 0..16 map linearly to [-1, 1]. The train/test split is stratified, ``data.test_fraction`` held
out, with a fixed seed so that every run sees the same split whatever ``data.seed`` is.
"""

from __future__ import annotations

import numpy as np
import torch

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, stratified_split
from ganforge.errors import DataError

DIGITS = tuple(str(i) for i in range(10))
SPLIT_SEED = 20241  # fixed, independent of data.seed


@DATASETS.register("digits", help="scikit-learn's 1,797 8x8 digits, 1x8x8, stratified data.test_fraction split")
def load_digits(cfg: DataConfig, split: Split) -> Dataset:
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits  # lazy: sklearn is slow to import
    except ImportError:
        raise DataError("dataset digits needs scikit-learn: pip install scikit-learn") from None
    if not 0 < cfg.test_fraction < 1:
        raise DataError(f"data.test_fraction must be in (0, 1) for dataset digits, got {cfg.test_fraction}")
    bunch = sklearn_load_digits()
    images = bunch.images.astype(np.float32)  # [1797, 8, 8] in 0..16
    labels = bunch.target.astype(np.int64)  # [1797]
    train_idx, test_idx = stratified_split(labels, cfg.test_fraction, SPLIT_SEED)
    idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy(images[idx, None] / 8.0 - 1.0)  # [N, 1, 8, 8], 0..16 -> -1..1
    return Dataset("digits", x, torch.from_numpy(labels[idx]), num_classes=10, class_names=DIGITS,
                   source="sklearn.datasets.load_digits", meta={"split_seed": SPLIT_SEED})
