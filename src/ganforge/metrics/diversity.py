"""Sample diversity as the mean (MS-)SSIM between random pairs of samples.

Odena et al. 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs"
(https://arxiv.org/abs/1610.09585), section 4.2: mean MS-SSIM over random pairs of samples (of one
class); *lower is more diverse*, and a value above the real data's own value signals mode collapse.
Always report the same number computed on real images next to it.

SSIM: Wang et al. 2004; MS-SSIM: Wang et al. 2003, both via ``pytorch_msssim``. The small images
of the studies (8x8 to 64x64) cannot use the standard 11-pixel window or MS-SSIM's 5 scales
(``pytorch_msssim.ms_ssim`` needs a smaller side > (win_size - 1) * 16, i.e. > 160 for win 11), so:

- ``win_size=None`` picks the largest odd window <= min(11, side // 4), at least 3
  (8x8 -> 3, 28x28 -> 7, 32x32 -> 7, 64x64 -> 11);
- ``kind="auto"`` uses MS-SSIM when the images are large enough for 5 scales with that window,
  otherwise single-scale SSIM. The result's ``kind`` and ``win_size`` say which was computed.

Convention: the field's. Inputs are float images in [-1, 1], [N, C, H, W]; they are mapped to [0, 1]
and compared with ``data_range=1``, as skimage's ``structural_similarity`` and ``pytorch_msssim`` are
used in papers (equivalently uint8 with 255). SSIM's luminance term (2 mu_a mu_b + C1) / (mu_a^2 +
mu_b^2 + C1) is not shift-invariant, so computing it on [-1, 1] with ``data_range=2`` gives another
number (one image against 0.7x itself: 0.232 instead of 0.892). ``INPUT_CONVENTION`` is recorded in
the metric's protocol. Pairs (i, j), i != j, are drawn uniformly with replacement from an explicit
seed/Generator, so the estimate is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pytorch_msssim import ms_ssim, ssim

INPUT_CONVENTION = "[0,1], data_range=1"  # recorded in the protocol: what the SSIM number is computed on


@dataclass(frozen=True)
class Diversity:
    mean: float  # mean pairwise (MS-)SSIM: 1 = all samples identical, ~0 = unrelated samples
    std: float  # std over pairs
    n_pairs: int
    kind: Literal["ssim", "ms_ssim"]
    win_size: int


def default_win_size(height: int, width: int) -> int:
    """Largest odd window <= min(11, smaller side // 4), at least 3."""
    side = min(height, width)
    if side < 3:
        raise ValueError(f"images of {height}x{width} are too small for SSIM (need at least 3x3).")
    w = min(11, side // 4)
    w = w if w % 2 == 1 else w - 1
    return max(w, 3)


def ssim_diversity(
    images: torch.Tensor,
    n_pairs: int = 1000,
    rng: np.random.Generator | int | None = 0,
    kind: Literal["auto", "ssim", "ms_ssim"] = "auto",
    win_size: int | None = None,
    batch_size: int = 256,
) -> Diversity:
    """Mean (MS-)SSIM over ``n_pairs`` random pairs of distinct samples from images [N, C, H, W] in [-1, 1]."""
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"ssim_diversity needs images [N >= 2, C, H, W], got {tuple(images.shape)}.")
    n, _, h, w = images.shape
    win = win_size or default_win_size(h, w)
    ms_possible = min(h, w) > (win - 1) * 2**4
    if kind == "auto":
        kind = "ms_ssim" if ms_possible else "ssim"
    if kind == "ms_ssim" and not ms_possible:
        raise ValueError(
            f"MS-SSIM needs a smaller side > {(win - 1) * 16} with win_size={win}; images are {h}x{w}. "
            "Use kind='ssim' or 'auto'."
        )
    if min(h, w) < win:
        raise ValueError(f"win_size={win} is larger than the {h}x{w} images; use a smaller odd win_size.")
    rng = np.random.default_rng(rng)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n  # uniform over the other n - 1 samples: never i
    fn = ms_ssim if kind == "ms_ssim" else ssim
    x = (images.detach().float() + 1) / 2  # [-1, 1] -> [0, 1]: the usual SSIM convention, data_range 1
    values = []
    with torch.no_grad():
        for start in range(0, n_pairs, batch_size):
            a = torch.from_numpy(i[start : start + batch_size]).to(x.device)
            b = torch.from_numpy(j[start : start + batch_size]).to(x.device)
            # size_average=False -> one value per pair (mean over channels)
            values.append(fn(x[a], x[b], data_range=1.0, size_average=False, win_size=win).double().cpu())
    v = torch.cat(values)
    return Diversity(v.mean().item(), v.std().item() if n_pairs > 1 else 0.0, n_pairs, kind, win)
