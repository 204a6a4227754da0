"""MedMNIST 2D sets from their ``.npz`` files (Yang et al. 2023, "MedMNIST v2", Scientific Data).

A MedMNIST ``.npz`` holds ``{train,val,test}_images`` (uint8 [N, H, W] gray or [N, H, W, 3] RGB) and
``{train,val,test}_labels`` ([N, 1] or [N]). ``medmnist`` reads any such file at ``data.path``; ``pathmnist``
is the same loader under the name the PathMNIST presets use. The "train" split is ``train_*``, "test" is
``test_*`` (``val_*`` is only consulted for the number of classes). Class names come from the file name
(``pathmnist.npz``, ``bloodmnist_64.npz``, ...) when it names a known set, else "0".."K-1".

The files are loaded with ``allow_pickle=False``; multi-label sets (ChestMNIST) and 3D sets are refused.
"""

from __future__ import annotations

import contextlib
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, to_unit_range
from ganforge.errors import DataError

_ORGAN = (
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
    "lung-right", "pancreas", "spleen",
)  # fmt: skip
CLASS_NAMES: dict[str, tuple[str, ...]] = {  # MedMNIST v2 INFO[...]["label"], in label order
    "pathmnist": (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium",
    ),
    "bloodmnist": (
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
        "neutrophil", "platelet",
    ),
    "dermamnist": (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
        "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions",
    ),
    "octmnist": ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
    "pneumoniamnist": ("normal", "pneumonia"),
    "breastmnist": ("malignant", "normal, benign"),
    "tissuemnist": (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
        "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
        "Thick Ascending Limb",
    ),
    "organamnist": _ORGAN,
    "organcmnist": _ORGAN,
    "organsmnist": _ORGAN,
}  # fmt: skip
REQUIRED_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
NUM_CLASSES_KEYS = ("num_classes", "n_classes")  # optional scalar some hand-made files carry


def download_hint(set_name: str = "pathmnist") -> str:
    cls = {"pathmnist": "PathMNIST", "bloodmnist": "BloodMNIST", "dermamnist": "DermaMNIST"}.get(set_name, "PathMNIST")
    file = f"{cls.lower()}.npz"
    hint = (
        f"Point data.path at a MedMNIST .npz file: --set data.path=/path/to/{file}. To get it, on a machine with a "
        f"network run: pip install medmnist && python -c \"import medmnist; medmnist.{cls}(split='train', "
        f"download=True)\" (it saves ~/.medmnist/{file}; copy that file here if this machine is offline)."
    )
    cached = Path("~/.medmnist").expanduser() / file
    if cached.is_file():
        hint += f" A copy exists at {cached}: --set data.path={cached}"
    return hint


def medmnist_set_name(path: Path) -> str | None:
    """``pathmnist_64.npz`` -> "pathmnist" when the stem names a known MedMNIST set, else None."""
    stem = re.sub(r"_\d+$", "", path.stem.lower())
    return stem if stem in CLASS_NAMES else None


def resolve_npz(cfg: DataConfig, default_set: str = "pathmnist") -> Path:
    if not cfg.path:
        raise DataError(f"dataset {cfg.name!r} needs data.path (a MedMNIST .npz file). {download_hint(default_set)}")
    path = Path(cfg.path).expanduser()
    if path.is_dir():
        raise DataError(f"data.path {str(path)!r} is a folder; point it at the .npz file. {download_hint(default_set)}")
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r} does not exist. {download_hint(default_set)}")
    return path


def parse_labels(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    """[N] or [N, 1] integer labels -> int64 [N]; DataError for multi-label [N, K] and anything else."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2:
        raise DataError(
            f"{path}: {key} has shape {arr.shape}, a multi-label set ({arr.shape[1]} binary labels per image, like "
            "ChestMNIST). Multi-label sets are not supported yet; use a multi-class set such as pathmnist."
        )
    if arr.ndim != 1:
        raise DataError(f"{path}: {key} has shape {arr.shape}; expected [N] or [N, 1] class labels")
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataError(f"{path}: {key} must hold integer class labels, got dtype {arr.dtype}")
    labels = arr.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DataError(f"{path}: {key} has negative labels (min {labels.min()}); labels must be 0..K-1")
    return labels


def _images(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    """uint8 [N, H, W] or [N, H, W, 3] (a trailing channel of 1 is dropped); DataError otherwise."""
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3)):
        raise DataError(
            f"{path}: {key} has shape {arr.shape}; expected uint8 [N, H, W] (gray) or [N, H, W, 3] (RGB). "
            "3D MedMNIST sets (organmnist3d, ...) are not supported."
        )
    if arr.dtype != np.uint8:
        raise DataError(f"{path}: {key} has dtype {arr.dtype}; expected uint8 pixels 0..255 as MedMNIST ships them")
    return arr


@contextlib.contextmanager
def open_npz(path: Path, required: tuple[str, ...], layout: str) -> Iterator[np.lib.npyio.NpzFile]:
    """The ``.npz`` at ``path`` (``allow_pickle=False``), checked to hold the ``required`` keys. A single ``.npy``,
    missing keys and unreadable files (also while the caller reads arrays inside the ``with``) raise DataError,
    ending with ``layout``: what such a file should hold."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds a single .npy array, not an .npz of named arrays. {layout}")
        with loaded as npz:
            keys = set(npz.files)
            missing = [k for k in required if k not in keys]
            if missing:
                raise DataError(
                    f"{path} is missing the key(s) {', '.join(missing)}; it has {', '.join(sorted(keys)) or 'none'}. "
                    + layout
                )
            yield npz
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable .npz file ({type(e).__name__}: {e}). {layout}") from None


def read_npz_split(path: Path, split: Split) -> tuple[np.ndarray, np.ndarray, int]:
    """(uint8 images [N, H, W(, 3)], int64 labels [N], num_classes) of one split of a MedMNIST-style file."""
    layout = f"A MedMNIST .npz holds {', '.join(REQUIRED_KEYS)} (and val_*); re-download it."
    with open_npz(path, REQUIRED_KEYS, layout) as npz:
        keys = set(npz.files)
        images = _images(npz[f"{split}_images"], path, f"{split}_images")
        labels = parse_labels(npz[f"{split}_labels"], path, f"{split}_labels")
        if len(images) != len(labels):
            raise DataError(f"{path}: {split}_images has {len(images)} images but {split}_labels {len(labels)}")
        num_classes = 0
        for key in ("train_labels", "val_labels", "test_labels"):
            if key in keys:
                other = labels if key == f"{split}_labels" else parse_labels(npz[key], path, key)
                num_classes = max(num_classes, int(other.max()) + 1 if other.size else 0)
        for key in NUM_CLASSES_KEYS:
            if key in keys:
                num_classes = max(num_classes, int(npz[key]))
    return images, labels, num_classes


def load_medmnist_file(cfg: DataConfig, split: Split, default_set: str = "pathmnist") -> Dataset:
    path = resolve_npz(cfg, default_set)
    images, labels, num_classes = read_npz_split(path, split)  # [N, H, W(, 3)], [N]
    if len(images) == 0:
        raise DataError(f"{path}: {split}_images is empty")
    set_name = medmnist_set_name(path) or (default_set if cfg.name == default_set else None)
    names = CLASS_NAMES.get(set_name or "", ())
    if len(names) >= num_classes:
        num_classes = len(names)
    else:  # an unknown file, or labels beyond the known set: plain numbers
        names = tuple(str(k) for k in range(num_classes))
    return Dataset(
        cfg.name, to_unit_range(images), torch.from_numpy(labels), num_classes=num_classes, class_names=names,
        source=str(path), meta={"medmnist_set": set_name, "native_size": list(images.shape[1:3])},
    )


@DATASETS.register("medmnist", help="any 2D multi-class MedMNIST .npz at data.path (train_* / test_* arrays)")
def load_medmnist(cfg: DataConfig, split: Split) -> Dataset:
    return load_medmnist_file(cfg, split)


@DATASETS.register("pathmnist", help="PathMNIST (9 colon tissue classes, 3x28x28) from the .npz at data.path")
def load_pathmnist(cfg: DataConfig, split: Split) -> Dataset:
    return load_medmnist_file(cfg, split, default_set="pathmnist")
