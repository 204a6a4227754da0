"""Images from a folder at ``data.path``, read with Pillow.

Layouts:

- class folders (torchvision ImageFolder): ``root/<class>/**/*.png`` -> labels 0..K-1 in sorted folder-name order,
  class names = folder names;
- flat: ``root/*.png`` -> unlabelled;
- either of these inside ``root/train/`` and ``root/test/``, which then are the splits. Otherwise the test split
  is a deterministic per-class ``data.test_fraction`` share (fixed seed, so it does not move with ``data.seed``).

All images must share one size unless ``data.resolution`` is set; then each image is fitted (``data.resize``) and
resized with Lanczos while loading, so memory holds only the small copies. Channels are gray ("L") when every
image in the folder is grayscale, else RGB; ``data.channels`` forces either.

A folder whose decoded images pass ``data.max_memory_mb`` is not loaded: it streams from disk, each batch read and
fitted the same way (``data/stream.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, stratified_split, to_unit_range
from ganforge.data.stream import StreamedImages
from ganforge.errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
SPLIT_SEED = 20242  # fixed, independent of data.seed: the held-out images never change between runs


@dataclass(frozen=True)
class ImageList:
    """The image files of one folder (or split folder) and their labels (None when flat)."""

    files: tuple[Path, ...]
    labels: tuple[int, ...] | None
    class_names: tuple[str, ...]


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in EXTENSIONS and _visible(p.name)


def images_under(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (recursive, hidden entries skipped), in sorted path order."""
    found = [p for p in folder.rglob("*") if _is_image(p) and all(map(_visible, p.relative_to(folder).parts))]
    return sorted(found)


def scan(folder: Path) -> ImageList:
    """Class-folder or flat layout of ``folder``; DataError when it holds no images or mixes the two."""
    top = sorted(p for p in folder.iterdir() if _is_image(p))
    class_dirs = [(d, images_under(d)) for d in sorted(folder.iterdir()) if d.is_dir() and _visible(d.name)]
    class_dirs = [(d, files) for d, files in class_dirs if files]
    if class_dirs and top:
        raise DataError(
            f"{folder} mixes images at its top level ({top[0].name}, ...) with class subfolders "
            f"({class_dirs[0][0].name}/, ...). Move the loose images into a class folder, or the class folders out."
        )
    if class_dirs:
        files = tuple(f for _, fs in class_dirs for f in fs)
        labels = tuple(k for k, (_, fs) in enumerate(class_dirs) for _ in fs)
        return ImageList(files, labels, tuple(d.name for d, _ in class_dirs))
    if top:
        return ImageList(tuple(top), None, ())
    raise DataError(
        f"no images found in {folder} (looked for {', '.join(EXTENSIONS)}, in class subfolders or at the top level)"
    )


def _relabel(images: ImageList, names: tuple[str, ...]) -> ImageList:
    """Labels of ``images`` re-indexed into the sorted union of class names ``names``."""
    if images.labels is None:
        return images
    index = {n: k for k, n in enumerate(names)}
    return ImageList(images.files, tuple(index[images.class_names[k]] for k in images.labels), names)


def split_files(root: Path, split: Split, test_fraction: float) -> tuple[ImageList, tuple[Path, ...]]:
    """(the split's images, every image in the dataset) — the latter decides the native size and channels."""
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        parts = {"train": scan(train_dir), "test": scan(test_dir)}
        if (parts["train"].labels is None) != (parts["test"].labels is None):
            raise DataError(
                f"{root}: one of train/ and test/ has class subfolders and the other does not; use the same layout"
            )
        names = tuple(sorted(set(parts["train"].class_names) | set(parts["test"].class_names)))
        chosen = _relabel(parts[split], names)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(chosen.files))  # shuffled, so data.limit mixes
        labels = None if chosen.labels is None else tuple(chosen.labels[i] for i in order)
        every_file = parts["train"].files + parts["test"].files
        return ImageList(tuple(chosen.files[i] for i in order), labels, names), every_file
    if not 0 <= test_fraction < 1:
        raise DataError(f"data.test_fraction must be in [0, 1) for dataset folder, got {test_fraction}")
    images = scan(root)
    strata = np.asarray(images.labels if images.labels is not None else [0] * len(images.files))
    train_idx, test_idx = stratified_split(strata, test_fraction, SPLIT_SEED)
    idx = train_idx if split == "train" else test_idx
    if len(idx) == 0:
        raise DataError(
            f"the {split} split of {root} is empty ({len(images.files)} images, data.test_fraction={test_fraction}); "
            "raise data.test_fraction, add images, or provide train/ and test/ subfolders"
        )
    labels = None if images.labels is None else tuple(images.labels[i] for i in idx)
    return ImageList(tuple(images.files[i] for i in idx), labels, images.class_names), images.files


def image_header(path: Path) -> tuple[tuple[int, int], str]:
    """(size (W, H), mode) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}. Remove or replace the file.") from None


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if im.mode.startswith("I;16"):  # 16-bit gray: keep the top 8 bits (PIL's convert would clip at 255)
        im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8), "L")
    return im if im.mode == mode else im.convert(mode)


def fit_image(im: Image.Image, resolution: int, resize: str) -> Image.Image:
    """Centre-crop to a square ("center-crop") or not ("resize" squashes), then Lanczos to resolution^2."""
    w, h = im.size
    if resize == "center-crop" and w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return im


def read_images(files: tuple[Path, ...], mode: str, size: tuple[int, int], cfg: DataConfig) -> np.ndarray:
    """uint8 [N, H, W] ("L") or [N, H, W, 3] ("RGB"), each image converted and fitted while loading."""
    w, h = size
    out = np.empty((len(files), h, w) + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as im:
                im.load()
                im = _to_mode(im, mode)
                if cfg.resolution is not None:
                    im = fit_image(im, cfg.resolution, cfg.resize)
                out[i] = np.asarray(im)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot read image {path}: {e}. Remove or replace the file.") from None
    return out


def read_tensor(files: tuple[Path, ...], mode: str, size: tuple[int, int], cfg: DataConfig) -> torch.Tensor:
    """float32 [N, C, H, W] in [-1, 1]: ``files`` read, converted and fitted (in memory, or per streamed batch)."""
    return to_unit_range(read_images(files, mode, size, cfg))


@DATASETS.register("folder", help="images in data.path: class subfolders (labelled) or flat; optional train/ test/")
def load_folder(cfg: DataConfig, split: Split) -> Dataset:
    if not cfg.path:
        raise DataError(
            "dataset folder needs data.path: --set data.path=/path/to/images (class subfolders like "
            "images/cat/*.png, or a flat folder of images)"
        )
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"data.path {str(root)!r} {what}; point it at a folder of images")
    if cfg.channels is not None and cfg.channels not in (1, 3):
        raise DataError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {cfg.channels}")
    chosen, every_file = split_files(root, split, cfg.test_fraction)
    headers = {p: image_header(p) for p in every_file}  # size and mode of every image, train and test alike
    if cfg.channels is None:
        mode = "L" if all(m in GRAY_MODES for _, m in headers.values()) else "RGB"
    else:
        mode = "L" if cfg.channels == 1 else "RGB"
    if cfg.resolution is not None:
        size = (cfg.resolution, cfg.resolution)
    else:
        sizes = {s for s, _ in headers.values()}
        if len(sizes) > 1:
            examples = {}
            for p, (s, _) in headers.items():
                examples.setdefault(s, p)
            shown = "; ".join(f"{p} is {s[0]}x{s[1]}" for s, p in list(examples.items())[:3])
            raise DataError(
                f"the images in {root} have {len(sizes)} different sizes ({shown}). Set a common size with "
                "--set data.resolution=64 (and data.resize=center-crop to crop instead of squashing)."
            )
        size = sizes.pop()
    read = functools.partial(read_tensor, mode=mode, size=size, cfg=cfg)
    channels = 3 if mode == "RGB" else 1
    if len(chosen.files) * channels * size[0] * size[1] * 4 > cfg.max_memory_mb * 2**20:
        # Too large for memory: the images stay on disk and are read per batch, exactly as below (data/stream.py).
        x: torch.Tensor | StreamedImages = StreamedImages(
            chosen.files, (channels, size[1], size[0]), read, threads=cfg.loader_threads,
            identity=f"{mode} {size} {cfg.resolution} {cfg.resize}",
        )
    else:
        x = read(chosen.files)
    y = None if chosen.labels is None else torch.tensor(chosen.labels, dtype=torch.int64)
    return Dataset(
        "folder", x, y, num_classes=len(chosen.class_names) if y is not None else 0,
        class_names=chosen.class_names, source=str(root), meta={"files": len(every_file), "mode": mode},
    )
