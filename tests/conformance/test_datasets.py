"""Every registered dataset honours the Dataset contract (looped over DATASETS, so a new loader is covered).

Datasets that read a file get a tiny one built in tmp_path by ``FIXTURES``; a new file-backed loader must add
its fixture here, or the test says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import DATASETS, Dataset, load_dataset
from ganforge.errors import DataError


def _npz(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    path = tmp_path / "pathmnist.npz"
    arrays = {}
    for split, n in (("train", 40), ("val", 10), ("test", 20)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 9, size=(n, 1)).astype(np.uint8)
    np.savez(path, **arrays)
    return {"path": str(path)}


def _folder(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        folder = tmp_path / "imgs" / cls
        folder.mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return {"path": str(tmp_path / "imgs")}


def _seg_npz(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    path = tmp_path / "seg.npz"
    arrays = {}
    for split, n in (("train", 30), ("test", 12)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 16, 16), dtype=np.uint8)
        masks = np.zeros((n, 16, 16), np.uint8)
        masks[::2, 4:9, 5:11] = 255  # every other image has a lesion
        arrays[f"{split}_masks"] = masks
    np.savez(path, **arrays)
    return {"path": str(path)}


def _seg_folder(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    for patient in ("TCGA_A", "TCGA_B"):  # the LGG kaggle_3m layout: <patient>/<patient>_<k>(_mask).tif
        folder = tmp_path / "kaggle_3m" / patient
        folder.mkdir(parents=True)
        for k in range(1, 9):  # 8 slices each: the post-processing check keeps 7 train pairs
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{patient}_{k}.tif")
            mask = np.zeros((12, 12), np.uint8)
            mask[3:8, 2:6] = 255 * (k % 2)
            Image.fromarray(mask).save(folder / f"{patient}_{k}_mask.tif")
    return {"path": str(tmp_path / "kaggle_3m")}


def _two_domain_folder(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    for sub, n, mode in (("trainA", 9, "L"), ("trainB", 7, "RGB"), ("testA", 4, "L"), ("testB", 3, "RGB")):
        folder = tmp_path / "horse2zebra" / sub
        folder.mkdir(parents=True)
        shape = (12, 12) if mode == "L" else (12, 12, 3)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{sub}_{i}.png")
    return {"path": str(tmp_path / "horse2zebra")}


# name -> builder of the files it needs (returns DataConfig fields); datasets absent here need no file
FIXTURES: dict[str, Callable[[Path], dict]] = {
    "medmnist": _npz, "pathmnist": _npz, "folder": _folder, "seg-npz": _seg_npz, "seg-folder": _seg_folder,
    "two-domain-folder": _two_domain_folder,
}
OPTIONAL = {"mnist"}  # needs torchvision and downloaded files: checked when available, else skipped


def _config(name: str, tmp_path: Path) -> DataConfig:
    fields = FIXTURES[name](tmp_path) if name in FIXTURES else {}
    return DataConfig(name=name, n_points=256, **fields)


def _load(name: str, cfg: DataConfig, split: str) -> Dataset:
    try:
        return load_dataset(cfg, split)
    except DataError as e:
        if name in OPTIONAL:
            pytest.skip(f"{name} unavailable here: {e}")
        raise AssertionError(f"{name} failed with its default/fixture config ({e}); add a fixture in FIXTURES") from e


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_contract(name, tmp_path):
    cfg = _config(name, tmp_path)
    train = _load(name, cfg, "train")
    test = _load(name, cfg, "test")
    for data in (train, test):
        assert isinstance(data, Dataset) and len(data) > 0
        assert data.x.dtype == torch.float32 and torch.isfinite(data.x).all()
        if data.meta.get("label_names"):  # domain A is a one-hot label map (SPADE): +1 on one class per pixel
            assert data.x.shape[1] == len(data.meta["label_names"]) and ((data.x == -1) | (data.x == 1)).all()
            assert ((data.x > 0).sum(1) == 1).all()
        elif data.kind == "image":
            assert data.x.ndim == 4 and data.x.shape[1] - data.mask_channels in (1, 3), data.x.shape
            assert data.x.min() >= -1 and data.x.max() <= 1
            if data.mask_channels:  # paired segmentation masks: exactly -1 (background) or +1 (foreground)
                masks = data.x[:, -data.mask_channels :]
                assert ((masks == -1) | (masks == 1)).all()
        else:
            assert data.kind == "points" and data.x.ndim == 2 and data.x.shape[1] == 2
            assert data.mask_channels == 0
        if data.y is not None:
            assert data.y.dtype == torch.int64 and data.y.shape == (len(data),)
            assert data.num_classes > 0 and len(data.class_names) == data.num_classes
            assert 0 <= int(data.y.min()) and int(data.y.max()) < data.num_classes
        else:
            assert data.num_classes == 0
        assert data.source
        if data.x_b is not None:  # two-domain data: domain B obeys the same contract; pairs line up
            assert data.kind == "image" and data.x_b.dtype == torch.float32 and data.x_b.ndim == 4
            assert data.x_b.shape[1] in (1, 3) and data.x_b.shape[2:] == data.x.shape[2:]
            assert data.x_b.min() >= -1 and data.x_b.max() <= 1 and torch.isfinite(data.x_b).all()
            assert not data.paired or len(data.x_b) == len(data)
            assert data.y_b is None or data.y_b.shape == (len(data.x_b),)
    assert train.two_domain == test.two_domain and train.paired == test.paired and train.domains == test.domains
    if train.two_domain:
        assert train.shape_b == test.shape_b
    assert train.shape == test.shape and train.kind == test.kind and train.num_classes == test.num_classes
    assert train.class_names == test.class_names and train.mask_channels == test.mask_channels
    # deterministic: a second load gives the same bytes
    assert load_dataset(cfg, "train").fingerprint() == train.fingerprint()
    assert load_dataset(cfg, "test").fingerprint() == test.fingerprint()
    # disjoint: no example of the test split also sits in the train split
    assert not (_rows(train.x) & _rows(test.x))


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_post_processing(name, tmp_path):
    plain = _config(name, tmp_path)
    cfg = dataclasses.replace(plain, limit=7, resolution=16, channels=3)
    data = _load(name, cfg, "train")
    assert len(data) == 7
    if data.meta.get("label_names"):  # a one-hot label map keeps its classes, at the new size, still one-hot
        assert data.shape == (len(data.meta["label_names"]), 16, 16) and ((data.x > 0).sum(1) == 1).all()
    elif data.kind == "image":
        assert data.shape == (3 + data.mask_channels, 16, 16) and data.image_channels == 3
        assert data.x.min() >= -1 and data.x.max() <= 1 and data.x.is_contiguous()
    if data.two_domain:  # both domains post-processed alike
        assert data.shape_b == (3, 16, 16) and len(data.x_b) <= 7 and data.x_b.is_contiguous()
    assert len(_load(name, cfg, "test")) == len(_load(name, plain, "test"))  # the limit applies to train only
