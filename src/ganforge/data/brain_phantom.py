"""``brain-phantom``: procedural FLAIR-like axial brain MRI slices (1 x 64 x 64) with tumour masks.

Offline and deterministic in ``data.seed``: 2,400 train and 600 test slices, exactly half with a tumour (label 1,
"tumour"; the rest "no tumour" with an empty mask). Head, skull ring, CSF, gray/white matter with sulci, the
ventricles and a bright irregular tumour with a faint rim, each slice with its own pose and anatomy. The
default-argument stand-in for the Kaggle "LGG MRI segmentation" set (Buda et al. 2019, Computers in Biology and
Medicine), which the ``seg-folder`` dataset reads. Returned as x = [N, 2, 64, 64]: the image and its mask (-1 / +1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split, with_mask

PHANTOM_NAMES = ("no tumour", "tumour")

SIZE = 64  # native side in pixels
PX = 2.0 / SIZE  # one pixel in the normalised coordinates (the image spans [-1, 1])
PHANTOM_SLICES = {"train": 2400, "test": 600}
STREAM = {"train": 0, "test": 1}  # rng stream per split, so the splits never share a slice
CHUNK = 50  # slices rendered at once: [CHUNK, 64, 64] float32 temporaries (0.8 MB) stay in cache
# FLAIR-like intensities in [0, 1]: CSF dark, gray matter a little brighter than white matter, tumour hyperintense
SCALP, CSF, GM, WM, TUMOUR, EDEMA = 0.78, 0.1, 0.56, 0.43, 0.86, 0.1


@dataclass(frozen=True)
class Contrast:
    """Tissue intensities in [0, 1] of one imaging contrast; the anatomy does not depend on it.

    ``bone``: the cortical-bone line under the scalp, added to it (dark in MRI, bright in CT).
    """

    scalp: float = SCALP
    csf: float = CSF
    gm: float = GM
    wm: float = WM
    tumour: float = TUMOUR
    edema: float = EDEMA
    bone: float = -0.45


FLAIR = Contrast()


def _ramp(d: np.ndarray, width: float = PX) -> np.ndarray:
    """Anti-aliased step: 0 for d < -width/2, 1 for d > width/2, linear between (d is a signed distance)."""
    return np.clip(d / np.float32(width) + np.float32(0.5), 0.0, 1.0)


def _tent(d: np.ndarray, width: float) -> np.ndarray:
    """Thin line profile: 1 at d = 0 falling linearly to 0 at |d| = width (a cheap stand-in for a Gaussian)."""
    return np.maximum(np.float32(0), 1 - np.abs(d) / np.float32(width))


def _smooth_noise(rng: np.random.Generator, n: int, cells: int, width: float, size: int = SIZE) -> np.ndarray:
    """[n, SIZE, SIZE] float32 smooth random field with zero mean and unit variance at every pixel.

    White noise on a cells x cells lattice spread by a Gaussian of ``width`` pixels: F = G W G^T with
    G [SIZE, cells] row-normalised, so each pixel is a unit-norm combination of i.i.d. N(0, 1) values. Two small
    batched matmuls, several times cheaper than Gaussian-filtering 64 x 64 white noise.
    """
    centres = (np.arange(cells) + 0.5) * SIZE / cells  # lattice points, in pixels of the 64 px slice
    pixels = (np.arange(size) + 0.5) * SIZE / size  # rendered at ``size``: the same field, sampled finer
    g = np.exp(-0.5 * ((pixels[:, None] - centres[None, :]) / width) ** 2)  # [SIZE, cells]
    g = (g / np.sqrt((g**2).sum(1, keepdims=True))).astype(np.float32)
    w = rng.standard_normal((n, cells, cells), dtype=np.float32)
    return g @ w @ g.T  # [n, SIZE, SIZE]


def _ellipse_depth(x: np.ndarray, y: np.ndarray, cx, cy, a, b, angle) -> np.ndarray:
    """Approximate signed distance into an ellipse (> 0 inside): (1 - normalised radius) * shorter semi-axis."""
    angle = np.asarray(angle, dtype=np.float32)  # a float64 angle would promote every pixel to float64
    c, s = np.cos(angle), np.sin(angle)
    u, v = x - cx, y - cy
    radius = np.sqrt(((c * u + s * v) / a) ** 2 + ((c * v - s * u) / b) ** 2)
    return (1 - radius) * np.minimum(a, b)


def _tumour_depth(
    rng: np.random.Generator, X: np.ndarray, Y: np.ndarray, ax: np.ndarray, ay: np.ndarray, brain_edge: np.ndarray,
    res: int = SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Tumour of m slices -> (signed depth [m, S, S], > 0 inside; rim width [m, 1, 1]), both in normalised units.

    A union of 2-3 ellipses (a main one and 1-2 satellites touching it) with a noisy outline, about 3-15% of the
    brain area, placed so that it stays inside the brain. X, Y: [m, S, S] head frame; ax, ay, brain_edge: [m, 1, 1].
    """
    m = len(X)

    def uniform(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, (m, 1, 1)).astype(np.float32)

    brain_area = np.pi * ax * ay * brain_edge**2
    aspect = uniform(0.55, 1.0)
    a1 = np.sqrt(uniform(0.03, 0.15) * brain_area * 0.8 / (np.pi * aspect))  # main ellipse; satellites add ~25%
    reach = np.maximum(0.05, 0.8 - 1.3 * a1 / (np.minimum(ax, ay) * brain_edge))  # of the brain radius
    rho, phi = reach * np.sqrt(uniform(0, 1)), uniform(0, 2 * np.pi)  # uniform over the allowed disc
    cx, cy = rho * np.cos(phi) * ax * brain_edge, rho * np.sin(phi) * ay * brain_edge
    depth = _ellipse_depth(X, Y, cx, cy, a1, aspect * a1, uniform(0, np.pi))
    for k in range(2):
        off, ang, size = a1 * uniform(0.5, 1.0), uniform(0, 2 * np.pi), a1 * uniform(0.35, 0.65)
        sat = _ellipse_depth(X, Y, cx + off * np.cos(ang), cy + off * np.sin(ang), size, size * uniform(0.6, 1.0), ang)
        if k == 1:  # the second satellite in half of the tumours
            sat = np.where(uniform(0, 1) < 0.5, sat, -np.inf)
        depth = np.maximum(depth, sat)
    depth = depth + 0.22 * a1 * _smooth_noise(rng, m, 16, 2.5, res)  # irregular border; still distance-like
    return depth, 0.4 * a1 + 2 * PX


def _phantom_chunk(
    rng: np.random.Generator, has_tumour: np.ndarray, contrast: Contrast = FLAIR, size: int = SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Render len(has_tumour) slices -> (image float32 [n, 64, 64] in [0, 1], tumour mask bool [n, 64, 64]).

    The same generator state renders the same anatomy, pose and noise in any ``contrast``.

    Coordinates are normalised to [-1, 1], x to the right and y down (anterior at the top, radiological view).
    Every per-slice random number has shape [n, 1, 1] so it broadcasts over the pixels.
    """
    n = len(has_tumour)

    def uniform(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32)

    aa = 2.0 / size  # anti-aliasing width: one rendered pixel (widths in PX are anatomy, the same at any size)
    grid = ((np.arange(size) + 0.5) * aa - 1).astype(np.float32)
    gx, gy = grid[None, None, :], grid[None, :, None]  # [1, 1, S], [1, S, 1]

    # pose: rotation, scale and shift; X, Y are the head's own frame
    theta, scale = uniform(-0.26, 0.26), uniform(0.88, 1.0)
    dx, dy = uniform(-0.06, 0.06), uniform(-0.06, 0.06)
    cos, sin = np.cos(theta), np.sin(theta)
    X = cos * (gx - dx) + sin * (gy - dy)  # [n, S, S]
    Y = cos * (gy - dy) - sin * (gx - dx)
    ax, ay = scale * uniform(0.72, 0.80), scale * uniform(0.86, 0.92)  # head semi-axes (longer front to back)
    yn = Y / ay
    r = np.sqrt((X / ax) ** 2 + yn**2) / (1 + uniform(0.0, 0.08) * yn)  # 1 at the scalp; the back a little wider

    # anatomy: smooth fields for the cortical folding, tissue texture and tumour outline
    folds = _smooth_noise(rng, n, 32, 1.6, size)  # ~3 px features: gyri and sulci
    texture = _smooth_noise(rng, n, 16, 4.5, size)  # ~10 px: tissue inhomogeneity
    brain_edge = 0.86 + uniform(-0.02, 0.02)  # in r: the CSF gap below the skull is 0.90 - brain_edge thick
    head = _ramp((1 - r) * ay, aa)  # [n, S, S] in [0, 1]
    inside_skull = _ramp((0.90 - r) * ay, aa)
    brain = _ramp((brain_edge + 0.012 * folds - r) * ay, aa)
    rb = r / brain_edge  # 1 at the brain surface
    scalp = contrast.scalp * (1 + 0.08 * texture) + contrast.bone * _tent((r - 0.935) * ay, PX)  # + bone line

    # gray matter outside, white matter inside with gyral fingers; sulci are thin CSF lines through the cortex
    wm = _ramp((uniform(0.76, 0.82) + 0.06 * folds - rb) * ay, 2 * PX)
    tissue = contrast.gm + (contrast.wm - contrast.gm) * wm
    sulci = _tent(folds, 0.4) * _ramp((rb - 0.8) * ay, 4 * PX)  # near the zero level set of the folding field
    tissue = tissue - (tissue - contrast.csf) * 0.6 * sulci
    fissure = _tent(X, 1.2 * PX) * _ramp((np.abs(yn) - uniform(0.5, 0.65)) * ay, 4 * PX)
    tissue = tissue - (tissue - contrast.csf) * 0.8 * fissure  # interhemispheric fissure, front and back
    # the two lateral ventricles; their size varies with the slice level
    vsize, vy = uniform(0.6, 1.3), uniform(-0.14, 0.0)
    ventricles = np.zeros_like(X)
    for side in (-1.0, 1.0):
        depth = _ellipse_depth(  # frontal horns diverge: each ventricle leans outwards at the top
            X, Y, side * uniform(0.1, 0.15) * ax, vy * ay, vsize * 0.06, vsize * 0.27 * ay, -side * uniform(0.15, 0.4)
        )
        ventricles = np.maximum(ventricles, _ramp(depth, aa))
    tissue = tissue * (1 + 0.05 * texture)
    tissue = tissue + (contrast.csf - tissue) * ventricles

    # tumour, rendered only for the slices that have one (about half); elsewhere depth = -inf, an empty mask
    depth = np.full_like(X, -np.inf)
    rim = np.ones_like(ax)  # [n, 1, 1] width of the oedema rim
    t = np.flatnonzero(has_tumour)
    if len(t):
        depth[t], rim[t] = _tumour_depth(rng, X[t], Y[t], ax[t], ay[t], brain_edge[t], size)
    mask = (depth > 0) & (brain > 0.5)  # [n, S, S]: exactly where the tumour dominates the pixel (weight > 1/2)
    tumour = _ramp(depth, 2 * PX) * (brain > 0.5)  # a soft 2-pixel border, like partial-volume blur
    edema = np.clip(1 + depth / rim, 0, 1) * (1 - tumour)  # faint hyperintense rim around it
    tissue = tissue + contrast.edema * edema
    tissue = tissue + (contrast.tumour * (1 + 0.07 * texture + 0.05 * folds) - tissue) * tumour  # heterogeneous

    # compose, then scanner effects: global gain, a linear bias field and Rician-like noise |s + n|
    img = scalp * (head - inside_skull) + contrast.csf * (inside_skull - brain) + tissue * brain
    img = img * uniform(0.9, 1.05) * (1 + uniform(-0.08, 0.08) * gx + uniform(-0.08, 0.08) * gy)
    img = np.abs(img + uniform(0.012, 0.028) * rng.standard_normal(img.shape, dtype=np.float32))
    return np.clip(img, 0, 1), mask


def brain_phantom(seed: int, split: Split, size: int = SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image float32 [N, S, S] in [0, 1], mask bool [N, S, S], label int64 [N]) for one split, S = ``size``.

    Exactly half of the slices carry a tumour (label 1), in a seeded random order; the rest have an empty mask.
    """
    n = PHANTOM_SLICES[split]
    rng = np.random.default_rng([seed, STREAM[split]])
    labels = (rng.permutation(n) < n // 2).astype(np.int64)  # [N], n // 2 ones
    parts = [_phantom_chunk(rng, labels[i : i + CHUNK].astype(bool), size=size) for i in range(0, n, CHUNK)]
    images = np.concatenate([p[0] for p in parts])
    masks = np.concatenate([p[1] for p in parts])
    return images, masks, labels



def brain_phantom_contrasts(
    seed: int, split: Split, contrasts: tuple[Contrast, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The slices of ``brain_phantom(seed, split)`` in several contrasts: (images [K, N, 64, 64], masks, labels).

    Each chunk is rendered once per contrast from the same generator state: the same anatomy, pose, tumour and
    noise, so every contrast is the paired ground truth of every other.
    """
    n = PHANTOM_SLICES[split]
    rng = np.random.default_rng([seed, STREAM[split]])
    labels = (rng.permutation(n) < n // 2).astype(np.int64)
    images, masks = [], []
    for i in range(0, n, CHUNK):
        state = rng.bit_generator.state
        chunk = []
        for contrast in contrasts:
            rng.bit_generator.state = state  # replay the same draws
            img, mask = _phantom_chunk(rng, labels[i : i + CHUNK].astype(bool), contrast)
            chunk.append(img)
        images.append(np.stack(chunk))
        masks.append(mask)
    return np.concatenate(images, axis=1), np.concatenate(masks), labels


@DATASETS.register(
    "brain-phantom", help="procedural FLAIR-like brain MRI slices + tumour masks (1+1 x 64x64, 2400/600); offline"
)
def load_brain_phantom(cfg: DataConfig, split: Split) -> Dataset:
    # Above 64 px (128, 256 for the high-resolution studies) the slices are rendered at data.resolution itself,
    # finer rather than upsampled; at 64 px and below they are the 64 px slices (resized by load_dataset).
    size = cfg.resolution if cfg.resolution is not None and cfg.resolution > SIZE else SIZE
    images, masks, labels = brain_phantom(cfg.seed, split, size)
    x = with_mask(torch.from_numpy(images)[:, None].mul_(2).sub_(1), masks)  # [N, 2, S, S]
    return Dataset(
        "brain-phantom", x, torch.from_numpy(labels), num_classes=2, class_names=PHANTOM_NAMES, kind="image",
        source=f"procedural (ganforge.data.brain_phantom, seed {cfg.seed})", mask_channels=1,
        meta={"generator": "procedural brain phantom v1", "native_size": [size, size], "seed": cfg.seed},
    )
