"""Paired image + segmentation-mask datasets: x = [N, C_img + 1, H, W], the last channel a mask (-1 / +1).

A GAN trained on these learns an image and its mask as one multi-channel image, so synthetic pairs can train a
segmentation network (the "train a U-Net on synthetic pairs" check). Every loader returns ``mask_channels=1`` and
binary labels "mask empty / mask non-empty" unless the data carries its own labels:

- ``brain-phantom`` (its own module, ``brain_phantom.py``): procedural brain MRI slices with tumour masks, offline.
- ``seg-npz``: a MedMNIST-like ``.npz`` with uint8 ``{train,test}_images`` and ``{train,test}_masks`` (nonzero =
  foreground), optional ``{train,test}_labels`` and ``class_names``; loaded with ``allow_pickle=False``.
- ``seg-folder``: every ``<name>_mask.<tif|tiff|png|jpg|jpeg>`` below ``data.path`` with its ``<name>.<ext>``, e.g.
  LGG's ``kaggle_3m/<patient>/<patient>_<k>.tif`` + ``<patient>_<k>_mask.tif``. Images without a mask are ignored; a
  mask without an image is an error. Masks are gray values > 127 (0/255 masks), or > 0 when no mask in the folder
  goes above 127 (0/1 label maps). Sizes and channels follow ``folder``: one size unless ``data.resolution`` is set
  (then images and masks are fitted while loading), gray if every image is, else RGB. Split: with 2+ parent folders
  whole folders (patients) go to one side, about ``data.test_fraction`` of the pairs in test, both classes on both
  sides where possible, chosen by ``data.seed``, so no patient's slices leak across; one folder falls back to the
  per-class ``stratified_split``.

Labels derived from masks are named ("no tumour", "tumour") for the phantom and the generic ("no lesion", "lesion")
for files, whose masks may outline any finding; a ``.npz`` can ship its own labels and ``class_names``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, rebinarize_masks, stratified_split, to_unit_range, with_mask
from ganforge.data.folder import EXTENSIONS, GRAY_MODES, fit_image, image_header, images_under, read_images
from ganforge.data.medmnist import open_npz, parse_labels
from ganforge.errors import DataError

FILE_NAMES = ("no lesion", "lesion")  # labels derived from masks of files: the mask may outline any finding

# ---------------------------------------------------------------------------------------------------------------
# seg-npz

NPZ_KEYS = ("train_images", "train_masks", "test_images", "test_masks")
NPZ_HINT = (
    "A segmentation .npz holds uint8 train_images and test_images ([N, H, W] gray or [N, H, W, 3] RGB) and "
    "train_masks and test_masks ([N, H, W] uint8 or bool, nonzero = foreground), optionally train_labels, "
    "test_labels and class_names: np.savez('seg.npz', train_images=..., train_masks=..., test_images=..., "
    "test_masks=...)."
)


def _npz_images(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    """uint8 [N, H, W] or [N, H, W, 3] (a trailing channel of 1 is dropped); DataError otherwise."""
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3)):
        raise DataError(f"{path}: {key} has shape {arr.shape}; expected [N, H, W] (gray) or [N, H, W, 3] (RGB) images")
    if arr.dtype != np.uint8:
        raise DataError(
            f"{path}: {key} has dtype {arr.dtype}; expected uint8 pixels 0..255. Convert before saving, e.g. "
            "(images * 255).round().astype(np.uint8) for images in [0, 1]."
        )
    return arr


def _npz_masks(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    """bool [N, H, W] foreground from uint8 / bool / integer masks [N, H, W] or [N, H, W, 1]; DataError otherwise."""
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise DataError(f"{path}: {key} has shape {arr.shape}; expected one binary mask per image, [N, H, W]")
    if arr.dtype.kind not in "biu":
        raise DataError(
            f"{path}: {key} has dtype {arr.dtype}; masks must be uint8 or bool with nonzero = foreground. "
            "Convert before saving, e.g. (masks > 0.5).astype(np.uint8)."
        )
    return arr != 0


def _npz_class_names(npz: np.lib.npyio.NpzFile, path: Path) -> tuple[str, ...] | None:
    if "class_names" not in npz.files:
        return None
    try:
        names = npz["class_names"]
    except ValueError:  # an object array, refused by allow_pickle=False
        names = None
    if names is None or names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(
            f"{path}: class_names must be a 1-D array of strings, e.g. np.array(['no lesion', 'lesion']) "
            "(object arrays cannot be loaded safely)."
        )
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist())


def read_seg_npz(path: Path, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, tuple[str, ...]]:
    """(uint8 images [N, H, W(, 3)], bool masks [N, H, W], int64 labels [N] or None, num_classes, file class names).

    num_classes counts the labels of both splits (0 without labels), so train and test agree.
    """
    with open_npz(path, NPZ_KEYS, NPZ_HINT) as npz:
        keys = set(npz.files)
        images = _npz_images(npz[f"{split}_images"], path, f"{split}_images")
        masks = _npz_masks(npz[f"{split}_masks"], path, f"{split}_masks")
        if len(images) != len(masks):
            raise DataError(
                f"{path}: {split}_images has {len(images)} images but {split}_masks has {len(masks)} masks; "
                "save exactly one mask per image, in the same order."
            )
        if images.shape[1:3] != masks.shape[1:3]:
            (h, w), (mh, mw) = images.shape[1:3], masks.shape[1:3]
            raise DataError(
                f"{path}: {split}_images are {h}x{w} but {split}_masks are {mh}x{mw}; each mask must cover its "
                "image pixel for pixel (resize the masks with nearest-neighbour before saving)."
            )
        label_keys = [k for k in ("train_labels", "test_labels") if k in keys]
        labels, num_classes = None, 0
        if len(label_keys) == 1:
            other = "test_labels" if label_keys[0] == "train_labels" else "train_labels"
            raise DataError(f"{path} has {label_keys[0]} but no {other}; save labels for both splits or neither")
        if label_keys:
            labels = parse_labels(npz[f"{split}_labels"], path, f"{split}_labels")
            if len(labels) != len(images):
                raise DataError(
                    f"{path}: {split}_images has {len(images)} images but {split}_labels has {len(labels)} "
                    "labels; save one label per image."
                )
            for key in label_keys:
                other = labels if key == f"{split}_labels" else parse_labels(npz[key], path, key)
                num_classes = max(num_classes, int(other.max()) + 1 if other.size else 0)
        names = _npz_class_names(npz, path)
    return images, masks, labels, num_classes, names or ()


def _resolve_npz(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise DataError(f"dataset {cfg.name!r} needs data.path: --set data.path=/path/to/seg.npz. {NPZ_HINT}")
    path = Path(cfg.path).expanduser()
    if path.is_dir():
        raise DataError(
            f"data.path {str(path)!r} is a folder; point it at the .npz file, or use --set data.name=seg-folder for "
            "a folder of <name>.tif + <name>_mask.tif pairs."
        )
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r} does not exist; point it at a segmentation .npz. {NPZ_HINT}")
    return path


@DATASETS.register("seg-npz", help="images + masks (+ labels) from a .npz at data.path: {train,test}_{images,masks}")
def load_seg_npz(cfg: DataConfig, split: Split) -> Dataset:
    path = _resolve_npz(cfg)
    images, masks, labels, num_classes, names = read_seg_npz(path, split)  # [N, H, W(, 3)], [N, H, W], [N] | None
    if len(images) == 0:
        raise DataError(f"{path}: {split}_images is empty; the {split} split needs at least one image and mask")
    if labels is None:  # derived: 1 where the mask has any foreground
        labels, num_classes = masks.reshape(len(masks), -1).any(1).astype(np.int64), 2
        if names and len(names) != 2:
            raise DataError(
                f"{path}: class_names has {len(names)} names, but without train_labels/test_labels the labels come "
                "from the masks (0 = empty mask, 1 = some foreground); save 2 class names, or save the labels."
            )
        names = names or FILE_NAMES
        origin = "mask non-empty"
    else:
        if names and len(names) < num_classes:
            raise DataError(
                f"{path}: the labels go up to {num_classes - 1} but class_names has only {len(names)} names; "
                "save one name per class."
            )
        num_classes = max(num_classes, len(names))
        names = names or tuple(str(k) for k in range(num_classes))
        origin = "file"
    return Dataset(
        cfg.name, with_mask(to_unit_range(images), masks), torch.from_numpy(labels), num_classes=num_classes,
        class_names=names, kind="image", source=str(path), mask_channels=1,
        meta={"native_size": list(images.shape[1:3]), "labels": origin, "foreground": float(masks.mean())},
    )


# ---------------------------------------------------------------------------------------------------------------
# seg-folder

MASK_SUFFIX = "_mask"
MASK_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
SPLIT_TRIES = 64  # seeded shuffles tried by the grouped split; the best one is kept


def find_pairs(root: Path) -> tuple[list[Path], list[Path]]:
    """(images, masks) below ``root``: every ``<name>_mask.<ext>`` and its ``<name>.<ext>``, in sorted mask order.

    The image may have another extension than its mask (the mask's own is preferred). Images without a mask are
    ignored; a mask without an image is a DataError.
    """
    files = images_under(root)  # sorted, recursive, hidden entries skipped
    masks = [p for p in files if p.suffix.lower() in MASK_EXTENSIONS and p.stem.endswith(MASK_SUFFIX)]
    if not masks:
        found = f"{len(files)} images, none named <name>{MASK_SUFFIX}.<ext>" if files else "no images"
        raise DataError(
            f"no masks found in {root} ({found}). seg-folder reads pairs like <patient>/<slice>.tif + "
            f"<patient>/<slice>{MASK_SUFFIX}.tif (the Kaggle LGG kaggle_3m layout; extensions "
            f"{', '.join(MASK_EXTENSIONS)}). For images without masks use --set data.name=folder."
        )
    plain = {(p.parent, p.stem): p for p in reversed(files) if not p.stem.endswith(MASK_SUFFIX)}  # first ext wins
    images = []
    for mask in masks:
        stem = mask.stem[: -len(MASK_SUFFIX)]
        same_ext = mask.with_name(stem + mask.suffix)
        image = same_ext if same_ext.is_file() else plain.get((mask.parent, stem))
        if image is None:
            raise DataError(
                f"mask {mask} has no image: expected {same_ext} next to it (or the same name with another of "
                f"{', '.join(EXTENSIONS)}). Add the image, or remove the mask."
            )
        images.append(image)
    return images, masks


def read_mask(path: Path) -> np.ndarray:
    """Gray values of a mask file: uint8 [H, W] after convert("L"), raw values for 16/32-bit gray masks."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I", "F") or im.mode.startswith("I;16"):  # keep 0/1 label maps distinguishable from 0
                return np.asarray(im)
            return np.asarray(im.convert("L"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read mask {path}: {e}. Remove or replace the file (and its image).") from None


def grouped_split(
    groups: list[str], labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split that keeps every group (patient) on one side -> (train_idx, test_idx), each shuffled.

    Tries SPLIT_TRIES seeded group orders; each fills the test side greedily with the groups that bring its item
    count closer to ``round(test_fraction * N)``, never emptying the train side. The kept split has, in order of
    priority: every class on both sides where possible, then the test count closest to the target.
    """
    names, gid = np.unique(np.asarray(groups), return_inverse=True)  # gid [N]: group index per item
    size = np.bincount(gid, minlength=len(names))  # [G] items per group
    has = np.zeros((len(names), int(labels.max()) + 1), dtype=bool)  # [G, K] group holds class k
    has[gid, labels] = True
    n, target = len(labels), round(test_fraction * len(labels))
    rng = np.random.default_rng(seed)
    best, best_score = None, None
    for _ in range(SPLIT_TRIES):
        test, count = np.zeros(len(names), dtype=bool), 0
        for g in rng.permutation(len(names)):
            if count + size[g] < n and abs(count + size[g] - target) < abs(count - target):
                test[g], count = True, count + size[g]
        if target > 0 and not test.any():  # a test side was asked for: at least the smallest group
            test[np.argmin(size)], count = True, int(size.min())
        present = has.any(0)
        missing = int((present & ~has[test].any(0)).sum() + (present & ~has[~test].any(0)).sum())
        score = (missing, abs(count - target))
        if best_score is None or score < best_score:
            best, best_score = test, score
    in_test = best[gid]  # [N] bool
    return rng.permutation(np.flatnonzero(~in_test)), rng.permutation(np.flatnonzero(in_test))


def _mask_pixels(mask: np.ndarray, threshold: int, cfg: DataConfig) -> np.ndarray:
    """bool [H, W] foreground, fitted to data.resolution like the images (resize, then majority at 1/2).

    A lesion too small to win any output pixel keeps its most covered one, so label 1 <=> non-empty mask survives
    downsampling (the labels come from the native masks: the split must not move with data.resolution).
    """
    fg = mask > threshold
    if cfg.resolution is None:
        return fg
    soft = np.array(fit_image(Image.fromarray(fg.astype(np.uint8) * 255), cfg.resolution, cfg.resize))  # [R, R] uint8
    soft_unit = torch.from_numpy(soft).float().div_(127.5).sub_(1.0)[None, None]  # [1, 1, R, R] in [-1, 1]
    return (rebinarize_masks(soft_unit, torch.tensor([[bool(fg.any())]]))[0, 0] > 0).numpy()  # load_dataset's rule


@DATASETS.register("seg-folder", help="<name>.tif + <name>_mask.tif pairs below data.path (LGG kaggle_3m layout)")
def load_seg_folder(cfg: DataConfig, split: Split) -> Dataset:
    if not cfg.path:
        raise DataError(
            "dataset seg-folder needs data.path: --set data.path=/path/to/kaggle_3m (a folder of <patient>/ "
            f"subfolders holding <slice>.tif and <slice>{MASK_SUFFIX}.tif pairs)"
        )
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"data.path {str(root)!r} {what}; point it at a folder of image / <name>{MASK_SUFFIX} pairs")
    if cfg.channels is not None and cfg.channels not in (1, 3):
        raise DataError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {cfg.channels}")
    if not 0 <= cfg.test_fraction < 1:
        raise DataError(f"data.test_fraction must be in [0, 1) for dataset seg-folder, got {cfg.test_fraction}")
    images, masks = find_pairs(root)
    headers = [image_header(p) for p in images]  # (size (W, H), mode) of every image, train and test alike
    if cfg.channels is None:
        mode = "L" if all(m in GRAY_MODES for _, m in headers) else "RGB"
    else:
        mode = "L" if cfg.channels == 1 else "RGB"
    if cfg.resolution is not None:
        size = (cfg.resolution, cfg.resolution)
    else:
        sizes = Counter(s for s, _ in headers)
        size = sizes.most_common(1)[0][0]
        if len(sizes) > 1:
            odd, (w, h) = next((p, s) for p, (s, _) in zip(images, headers) if s != size)
            raise DataError(
                f"the images in {root} have {len(sizes)} different sizes ({odd} is {w}x{h}, most are "
                f"{size[0]}x{size[1]}). Set a common size with --set data.resolution=256 (and data.resize=center-crop "
                "to crop instead of squashing)."
            )

    # every mask is read once to label the pairs (the split needs the labels of both sides), then dropped
    values = []
    for image, mask, (image_size, _) in zip(images, masks, headers):
        pixels = read_mask(mask)
        if pixels.shape[::-1] != image_size:
            raise DataError(
                f"mask {mask} is {pixels.shape[1]}x{pixels.shape[0]} but its image {image.name} is "
                f"{image_size[0]}x{image_size[1]}; a mask must cover its image pixel for pixel."
            )
        values.append(int(pixels.max()))
    # 0/255 masks (LGG) are foreground above 127; when no mask goes above 127, they are 0/1 label maps: above 0
    threshold = 127 if max(values) > 127 else 0
    labels = (np.asarray(values) > threshold).astype(np.int64)  # [N] 1 = the mask has foreground
    groups = [str(p.parent.relative_to(root)) for p in masks]  # the patient: the pair's folder
    if len(set(groups)) >= 2:
        train_idx, test_idx = grouped_split(groups, labels, cfg.test_fraction, cfg.seed)
        rule = "grouped by folder"
    else:
        train_idx, test_idx = stratified_split(labels, cfg.test_fraction, cfg.seed)
        rule = "stratified"
    idx = train_idx if split == "train" else test_idx
    if len(idx) == 0:
        raise DataError(
            f"the {split} split of {root} is empty ({len(masks)} pairs in {len(set(groups))} folder(s), "
            f"data.test_fraction={cfg.test_fraction}); {'raise' if split == 'test' else 'lower'} data.test_fraction, "
            "or add pairs in more folders"
        )
    pixels = read_images(tuple(images[i] for i in idx), mode, size, cfg)  # [n, H, W(, 3)] uint8
    fg = np.stack([_mask_pixels(read_mask(masks[i]), threshold, cfg) for i in idx])  # [n, H, W] bool
    return Dataset(
        "seg-folder", with_mask(to_unit_range(pixels), fg), torch.from_numpy(labels[idx]), num_classes=2,
        class_names=FILE_NAMES, kind="image", source=str(root), mask_channels=1,
        meta={
            "pairs": len(masks), "folders": len(set(groups)), "split": rule, "mode": mode, "mask_threshold": threshold,
            "test_folders": sorted({groups[i] for i in test_idx}) if rule == "grouped by folder" else [],
        },
    )
