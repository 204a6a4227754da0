"""``brain-labels``: the brain phantom's tissue label map (A) and the same slice in one contrast (B), paired.

The mask-to-image setting of SPADE (Park et al. 2019): a segmentation map in, an image out. The phantom renders
anatomy and contrast apart (``data/brain_phantom.py``), so a label map is the phantom rendered in "indicator
contrasts": one tissue at intensity 1, all others 0. Each such rendering is that tissue's (soft, slightly noisy)
occupancy map; the label of a pixel is the tissue whose map is largest (background: 1 minus their sum), and
tumour wherever the phantom's tumour mask is set.

Domain A is the label map one-hot, ``[N, K, H, W]`` with K = ``len(BRAIN_LABELS)`` in {-1, +1} (the [-1, 1]
convention of every ganforge image); B is the slice in ``data.domains[1]`` (flair, t1, t2 or ct; default flair).
Label-map files (``ganforge generate RUN --masks DIR``) store the class index per pixel, see ``one_hot``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.config import DataConfig
from ganforge.data.base import DATASETS, Dataset, Split
from ganforge.data.brain_phantom import FLAIR, PHANTOM_NAMES, Contrast, brain_phantom_contrasts
from ganforge.data.two_domain import CONTRASTS
from ganforge.errors import DataError

BRAIN_LABELS = ("background", "scalp", "csf", "gray matter", "white matter", "tumour")
_OFF = dict(scalp=0.0, csf=0.0, gm=0.0, wm=0.0, tumour=0.0, edema=0.0, bone=0.0)
# one indicator contrast per tissue of BRAIN_LABELS[1:5] (bone belongs to the scalp; tumour comes from the mask)
_INDICATORS = tuple(Contrast(**{**_OFF, t: 1.0}) for t in ("scalp", "csf", "gm", "wm"))
TARGETS = {"flair": FLAIR, **{k: v for k, v in CONTRASTS.items() if k != "flair"}}


def label_maps(occupancy: np.ndarray, tumour: np.ndarray) -> np.ndarray:
    """Tissue occupancy [T, N, H, W] (T tissues, in [0, 1]) + tumour mask bool [N, H, W] -> int64 labels [N, H, W].

    The most occupied of background (1 - the tissues' total) and the T tissues: 0 background, 1 + t tissue t;
    T + 1 (tumour) where masked. Background as a competitor, not a threshold, leaves no holes on the thin
    boundaries between two tissues, where each holds about half of the pixel.
    """
    background = np.clip(1 - occupancy.sum(0), 0, 1)[None]  # [1, N, H, W]
    labels = np.concatenate([background, occupancy]).argmax(0)
    labels[tumour] = occupancy.shape[0] + 1
    return labels.astype(np.int64)


def one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Class indices [N, H, W] in [0, k) -> one-hot [N, k, H, W] in {-1, +1} (float32)."""
    return F.one_hot(labels.long(), k).permute(0, 3, 1, 2).float().mul_(2).sub_(1).contiguous()


def resize_labels(labels: torch.Tensor, side: int) -> torch.Tensor:
    """Nearest-neighbour resize of class indices [N, H, W]: a label map must not blend classes."""
    if labels.shape[-1] == side:
        return labels
    return F.interpolate(labels[:, None].float(), size=(side, side), mode="nearest")[:, 0].long()


@DATASETS.register(
    "brain-labels",
    help="brain phantom tissue label map (6 classes, one-hot, A) -> the slice in one contrast "
    "(B, data.domains=[labels,flair|t1|t2|ct]), paired, 64x64, 2400/600; offline (SPADE)",
)
def load_brain_labels(cfg: DataConfig, split: Split) -> Dataset:
    target = "flair"
    if cfg.domains is not None:
        if len(cfg.domains) != 2 or cfg.domains[0] != "labels" or cfg.domains[1] not in TARGETS:
            raise DataError(
                f"dataset brain-labels takes data.domains=[labels,B] with B one of {', '.join(TARGETS)}; "
                f"got {list(cfg.domains)}, e.g. --set data.domains=[labels,t1]"
            )
        target = cfg.domains[1]
    images, tumour, y = brain_phantom_contrasts(cfg.seed, split, (TARGETS[target], *_INDICATORS))
    labels = torch.from_numpy(label_maps(images[1:], tumour))  # [N, 64, 64]
    side = cfg.resolution or labels.shape[-1]
    if side < 16 or side > 256:
        raise DataError(f"dataset brain-labels renders 16..256 px; got data.resolution={side}, e.g. 32 or 64")
    img = torch.from_numpy(images[0])[:, None].mul_(2).sub_(1)  # [N, 1, 64, 64] in [-1, 1]
    if side != img.shape[-1]:
        img = F.interpolate(img, size=(side, side), mode="bilinear", antialias=True).clamp_(-1, 1)
    return Dataset(
        "brain-labels",
        one_hot(resize_labels(labels, side), len(BRAIN_LABELS)),
        torch.from_numpy(y),
        num_classes=2,
        class_names=PHANTOM_NAMES,
        source=f"procedural (ganforge.data.brain_phantom, seed {cfg.seed}, label map and {target})",
        x_b=img.contiguous(),
        y_b=torch.from_numpy(y),
        paired=True,
        domains=("labels", target),
        meta={"generator": "procedural brain phantom v1", "seed": cfg.seed, "label_names": list(BRAIN_LABELS)},
    )
