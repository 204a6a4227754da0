"""The dataset contract every data plugin returns.

A loader is a function ``(cfg: DataConfig, split) -> Dataset`` registered in ``DATASETS``. It
returns everything in memory: the studies' datasets are small, and holding them as one tensor lets
the trainer keep them on the GPU and sample without a DataLoader. The one exception is an image folder larger than
``data.max_memory_mb``: its images stay on disk (``data/stream.py``) and are read per batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ganforge.config import DataConfig
from ganforge.data.stream import StreamedImages
from ganforge.registry import Registry

Split = Literal["train", "test"]
Loader = Callable[[DataConfig, Split], "Dataset"]

DATASETS: Registry[Loader] = Registry("dataset")


@dataclass
class Dataset:
    name: str
    # [N, C, H, W] float32 in [-1, 1] for images; [N, D] float32 for points. A large image folder's stays on disk
    # (StreamedImages: indexing it reads the rows asked for, as a tensor).
    x: torch.Tensor | StreamedImages
    y: torch.Tensor | None = None  # [N] int64 labels in [0, num_classes), or None
    num_classes: int = 0  # 0 when unlabelled
    class_names: tuple[str, ...] = ()
    kind: Literal["image", "points"] = "image"
    source: str = ""  # where the data came from (file path, package), for provenance
    meta: dict[str, Any] = field(default_factory=dict)  # plugin facts, e.g. toy curve or mixture modes
    # Paired segmentation data: the last ``mask_channels`` channels of x are masks (-1 background, +1 foreground),
    # so G learns image and mask together and every model, objective and loop handles pairs unchanged.
    mask_channels: int = 0
    # Two-domain data (image-to-image translation): x is domain A, x_b domain B [M, C_B, H, W] in [-1, 1] with its
    # labels y_b. paired: x_b[i] is the ground truth translation of x[i] (the same anatomy or digit), so M == N.
    x_b: torch.Tensor | None = None
    y_b: torch.Tensor | None = None
    paired: bool = False
    domains: tuple[str, str] = ("A", "B")  # the names of domain A and B, e.g. ("flair", "ct")

    def __post_init__(self) -> None:
        assert self.x.dtype == torch.float32, self.x.dtype
        assert self.mask_channels == 0 or (self.kind == "image" and 0 < self.mask_channels < self.x.shape[1]), (
            self.mask_channels, self.x.shape)
        if self.y is not None:
            assert self.y.dtype == torch.int64 and self.y.shape == (len(self.x),), (self.y.dtype, self.y.shape)
        if self.x_b is not None:
            assert self.kind == "image" and self.x_b.dtype == torch.float32, self.x_b.dtype
            assert self.x_b.shape[2:] == self.x.shape[2:], (self.x_b.shape, self.x.shape)
            assert not self.paired or len(self.x_b) == len(self.x), (len(self.x_b), len(self.x))
            assert self.y_b is None or self.y_b.shape == (len(self.x_b),), self.y_b
        assert not (self.paired and self.x_b is None)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example: (C, H, W) or (D,)."""
        return tuple(self.x.shape[1:])

    @property
    def image_channels(self) -> int:
        """Channels of the image part (all of them unless the data carries masks)."""
        return self.x.shape[1] - self.mask_channels if self.kind == "image" else 0

    @property
    def two_domain(self) -> bool:
        return self.x_b is not None

    @property
    def shape_b(self) -> tuple[int, ...]:
        """Shape of one domain-B example (C_B, H, W); two-domain data only."""
        assert self.x_b is not None, f"dataset {self.name!r} has one domain"
        return tuple(self.x_b.shape[1:])

    @property
    def labelled(self) -> bool:
        return self.y is not None and self.num_classes > 0

    def fingerprint(self) -> str:
        """SHA-256 of the pixels and labels: keys feature caches, recorded in metric protocols."""
        h = hashlib.sha256()
        h.update(str(tuple(self.x.shape)).encode())
        if isinstance(self.x, StreamedImages):  # files on disk: their paths, sizes and times, not their pixels
            h.update(self.x.identity().encode())
        else:
            h.update(np.ascontiguousarray(self.x.numpy()).tobytes())
        if self.y is not None:
            h.update(np.ascontiguousarray(self.y.numpy()).tobytes())
        if self.x_b is not None:  # two-domain data: domain B and whether its rows pair with A's
            h.update(f"{tuple(self.x_b.shape)} paired={self.paired}".encode())
            h.update(np.ascontiguousarray(self.x_b.numpy()).tobytes())
        return h.hexdigest()


def to_unit_range(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W] or [N, H, W, C] -> float32 [N, C, H, W] in [-1, 1]."""
    arr = np.asarray(images_uint8)
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim == 4:
        arr = arr.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"expected [N,H,W] or [N,H,W,C] images, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr)).float().div_(127.5).sub_(1.0)


def with_mask(images: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
    """images [N, C, H, W] in [-1, 1] + bool masks [N, H, W] -> [N, C + 1, H, W], the mask as -1 / +1."""
    m = torch.from_numpy(np.ascontiguousarray(masks)).to(torch.float32).mul_(2).sub_(1)  # [N, H, W]
    return torch.cat([images, m[:, None]], dim=1)


def rebinarize_masks(soft: torch.Tensor, had_lesion: torch.Tensor) -> torch.Tensor:
    """Resized masks [N, M, H, W] -> -1/+1: foreground where the interpolated value is > 0 (more than half covered).

    A lesion too small to survive that keeps its most-covered pixel, so a non-empty mask stays non-empty (and a
    label derived from it stays true); one that cropping removed entirely stays gone.
    ``had_lesion`` [N, M] bool: the mask had foreground before resizing.
    """
    hard = (soft > 0).flatten(2)  # [N, M, H*W]
    covered = soft.flatten(2).amax(2) > -1  # [N, M]: some of the lesion is left (center-crop may cut it all off)
    lost = had_lesion & ~hard.any(2) & covered  # [N, M]
    if lost.any():
        peak = soft.flatten(2).argmax(2, keepdim=True)  # [N, M, 1]
        hard = hard | (torch.zeros_like(hard).scatter_(2, peak, True) & lost.unsqueeze(2))
    return torch.where(hard, 1.0, -1.0).view_as(soft)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C] (rounded, clipped)."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split -> (train_idx, test_idx), each shuffled.

    Every class gives ``round(test_fraction * n_k)`` items to the test side, with largest-remainder rounding so
    the test side holds exactly ``round(test_fraction * N)`` items. Both index arrays come back in a seeded
    random order, so taking the first ``limit`` items of a label-sorted source still mixes the classes.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = test_fraction * counts  # [K] ideal test items per class
    n_test = np.floor(quota).astype(np.int64)
    short = int(round(test_fraction * len(labels))) - int(n_test.sum())
    if short > 0:  # hand the remaining items to the classes with the largest remainders (ties: lowest label)
        order = np.argsort(-(quota - n_test), kind="stable")
        n_test[order[:short]] += 1
    train_parts, test_parts = [], []
    for k, n_k in zip(classes, n_test):
        idx = rng.permutation(np.flatnonzero(labels == k))
        test_parts.append(idx[:n_k])
        train_parts.append(idx[n_k:])
    train_idx = np.concatenate(train_parts) if train_parts else np.zeros(0, np.int64)
    test_idx = np.concatenate(test_parts) if test_parts else np.zeros(0, np.int64)
    return rng.permutation(train_idx), rng.permutation(test_idx)
