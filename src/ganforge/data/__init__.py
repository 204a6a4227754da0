"""Datasets. Each loader module registers itself in ``DATASETS``; ``load_dataset`` runs the loader and then the
post-processing every dataset shares:

1. ``data.classes``: keep only these labels (label values and ``num_classes`` stay as they are);
2. ``data.limit``: keep the first N examples of the train split (loaders return a shuffled order);
3. ``data.channels`` (images): gray -> RGB repeats the channel, RGB -> gray is ITU-R 601 luma (the image part
   only: segmentation mask channels stay one channel each);
4. ``data.resolution`` (images): fit to a square (``data.resize``: "resize" squashes, "center-crop" crops the
   largest centred square first), then resize with antialiased bilinear interpolation and clamp to [-1, 1].
   (A large image folder streamed from disk, ``data/stream.py``, gets 1-2 as a choice of rows; its loader applies
   3-4 to each image as it reads it.)
   With ``resolution`` unset, square images keep their size and non-square ones are fitted to a square of
   their longer side ("resize") or shorter side ("center-crop"). Resized masks are re-binarised at 0 (-1 or +1),
   keeping at least one pixel of a lesion that would otherwise vanish.
5. ``data.clusters`` (images): the labels become k-means clusters of the training split's images
   (``data/clusters.py``), for a conditional variant trained without annotations.

``channels`` and ``resolution`` do not apply to 2D point sets. Two-domain data (``x_b``, ``data/two_domain.py``)
gets 2-4 in each domain alike; ``limit`` keeps the first N rows of each, so pairs stay pairs.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, rebinarize_masks
from ganforge.data.clusters import with_clusters
from ganforge.data.stream import StreamedImages
from ganforge.errors import DataError
from ganforge.plugins import import_submodules

import_submodules(__name__, __path__)  # every loader module registers itself in DATASETS

RESIZE_CHUNK = 4096  # images resized per interpolate call, to bound the temporary memory


def load_dataset(cfg: DataConfig, split: Split, loaded: Dataset | None = None) -> Dataset:
    """The registered loader ``cfg.name`` for ``split`` ("train" or "test"), post-processed as described above.

    ``loaded``: post-process this dataset instead of loading one (each domain of two-domain data).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data = _load(cfg, split, loaded)
    if cfg.clusters and loaded is None:
        train = data if split == "train" else _load(cfg, "train", None)
        data = with_clusters(data, cfg, train.x)  # type: ignore[arg-type]  # streamed data is refused there
    return data


def _load(cfg: DataConfig, split: Split, loaded: Dataset | None) -> Dataset:
    """Steps 1-4 of the module docstring."""
    data = loaded if loaded is not None else DATASETS.get(cfg.name)(cfg, split)
    if data.two_domain:  # both domains get the same post-processing
        return _post_process_two_domain(data, cfg, split)
    if isinstance(data.x, StreamedImages):
        return _post_process_streamed(data, cfg, split)
    x, y = data.x, data.y
    if cfg.classes is not None:
        x, y = select_classes(data, cfg.classes)
    if cfg.limit is not None and split == "train":
        if cfg.limit < 1:
            raise DataError(f"data.limit must be >= 1 (or null for all), got {cfg.limit}")
        x = x[: cfg.limit]
        y = y[: cfg.limit] if y is not None else None
    if data.kind == "image":
        if cfg.channels is not None and cfg.channels not in (1, 3):
            raise DataError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {cfg.channels}")
        if cfg.resolution is not None and cfg.resolution < 1:
            raise DataError(f"data.resolution must be >= 1 (or null for the native size), got {cfg.resolution}")
        m = data.mask_channels  # paired masks: channel conversion applies to the image part only
        if cfg.channels == 1:  # before resizing: less to resize
            x = convert_channels(x, 1, m)
        had_lesion = (x[:, -m:] > 0).flatten(2).any(2) if m else None  # [N, M] before resizing
        x = fit_square(x, cfg.resolution, cfg.resize)
        if m and x.shape[-1] != data.x.shape[-1]:
            x = torch.cat([x[:, :-m], rebinarize_masks(x[:, -m:], had_lesion)], 1)
        if cfg.channels == 3:  # after resizing, for the same reason
            x = convert_channels(x, 3, m)
    if x is data.x and y is data.y:
        return data
    return dataclasses.replace(data, x=x.contiguous(), y=y)


def _post_process_streamed(data: Dataset, cfg: DataConfig, split: Split) -> Dataset:
    """classes and limit for images that stay on disk: rows are picked, nothing is read. Channels and resolution
    were applied by the loader as it reads each image. Loaded whole when what is left fits ``data.max_memory_mb``."""
    assert isinstance(data.x, StreamedImages)
    x, y = data.x, data.y
    if cfg.classes is not None:
        select_classes(data, cfg.classes)  # its checks; the rows are picked below
        keep = torch.isin(data.y, torch.tensor(cfg.classes, dtype=torch.int64))  # type: ignore[arg-type]
        x, y = x.rows(keep), data.y[keep]  # type: ignore[index]
    if cfg.limit is not None and split == "train":
        x, y = x.rows(range(min(cfg.limit, len(x)))), y[: cfg.limit] if y is not None else None
    if x.shape[-1] != x.shape[-2]:
        raise DataError(f"streamed images from {data.source} are {x.shape[-1]}x{x.shape[-2]}, not square; "
                        "set data.resolution=256 (or the size to train at)")
    if x.nbytes <= cfg.max_memory_mb * 2**20:  # the rows left fit: read them once
        return dataclasses.replace(data, x=x.load(), y=y)
    return dataclasses.replace(data, x=x, y=y)


def _post_process_two_domain(data: Dataset, cfg: DataConfig, split: Split) -> Dataset:
    """limit, channels and resolution applied to domain A (``x``, with its masks) and domain B (``x_b``) alike.

    ``limit`` keeps the first N rows of each domain, so paired rows stay pairs.
    """
    if cfg.classes is not None:
        raise DataError(f"data.classes does not apply to the two-domain dataset {data.name!r}; remove data.classes.")
    one = DataConfig(limit=cfg.limit, resolution=cfg.resolution, channels=cfg.channels, resize=cfg.resize)
    fields = {}
    # A one-hot label map in A (meta "label_names", e.g. brain-labels for SPADE) has no colour to convert; its
    # loader renders it at data.resolution itself (nearest: classes must not blend), so resizing is a no-op here.
    one_a = dataclasses.replace(one, channels=None) if data.meta.get("label_names") else one
    for key, labels, masks in (("x", "y", data.mask_channels), ("x_b", "y_b", 0)):
        part = Dataset(data.name, getattr(data, key), getattr(data, labels), data.num_classes, data.class_names,
                       mask_channels=masks)
        done = load_dataset(one_a if key == "x" else one, split, loaded=part)
        fields[key], fields[labels] = done.x, done.y
    return dataclasses.replace(data, **fields)


def select_classes(data: Dataset, classes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``data`` whose label is in ``classes``: x [M, ...], y [M]."""
    if data.y is None or not data.labelled:
        raise DataError(f"data.classes is set but dataset {data.name!r} has no labels; remove data.classes.")
    bad = [c for c in classes if not 0 <= c < data.num_classes]
    if bad:
        names = ", ".join(f"{i}={n}" for i, n in enumerate(data.class_names)) or f"0..{data.num_classes - 1}"
        raise DataError(f"data.classes has labels {bad} that dataset {data.name!r} does not have; valid: {names}")
    keep = torch.isin(data.y, torch.tensor(classes, dtype=torch.int64))  # [N] bool
    if not keep.any():
        raise DataError(f"dataset {data.name!r} has no examples of data.classes={list(classes)} in this split")
    return data.x[keep], data.y[keep]


def convert_channels(x: torch.Tensor, channels: int, mask_channels: int = 0) -> torch.Tensor:
    """[N, C, H, W] -> [N, channels, H, W] for C, channels in {1, 3}; trailing mask channels are kept as they are."""
    if mask_channels:
        return torch.cat([convert_channels(x[:, :-mask_channels], channels), x[:, -mask_channels:]], 1)
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)  # gray -> RGB: the same value in every channel
    if c == 3 and channels == 1:
        # ITU-R BT.601 luma, Y = 0.299 R + 0.587 G + 0.114 B; affine in the value, so exact in [-1, 1] too
        return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    raise DataError(f"cannot convert {c}-channel images to data.channels={channels}; use 1 or 3")


def fit_square(x: torch.Tensor, resolution: int | None, mode: str) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, R, R]: centre-crop to a square if mode is "center-crop", then resize to R.

    R is ``resolution``, or the side of the (cropped) image, or its longer side for a squash; no-op when the
    images are already R x R.
    """
    h, w = x.shape[-2:]
    if mode == "center-crop" and h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top : top + s, left : left + s]
        h = w = s
    size = resolution if resolution is not None else max(h, w)
    if (h, w) == (size, size):
        return x
    out = [
        F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        for chunk in x.split(RESIZE_CHUNK)
    ]
    return torch.cat(out).clamp_(-1.0, 1.0)  # bilinear stays in range, but antialiasing can overshoot slightly


__all__ = [
    "DATASETS", "Dataset", "Split", "load_dataset", "select_classes", "convert_channels", "fit_square",
    "rebinarize_masks",
]
