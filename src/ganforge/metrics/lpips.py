"""LPIPS through NVIDIA's TorchScript VGG16: diversity of generated pairs, and distance to ground truth.

Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"
(https://arxiv.org/abs/1801.03924). The network is the one stylegan2-ada-pytorch's perceptual path
length uses (``vgg16.pt``, ``ganforge weights fetch vgg16``), loaded with ``torch.jit.load``::

    e = net(img, resize_images=False, return_lpips=True)   # img float [N, 3, H, W] in [0, 255] -> [N, D]
    LPIPS(a, b) = ||e_a - e_b||^2                           # unit-normalised, channel-weighted VGG features

Input convention (recorded in the protocol as ``lpips_input``): images in [-1, 1] -> [0, 255], grey
repeated to RGB, mask channels of paired segmentation data dropped; a side above 256 is reduced to
256 with area averaging (as stylegan2-ada's PPL does); a side below 64 is enlarged to 64 with bilinear
interpolation, because VGG16's four pooling stages leave nothing of an 8x8 image (LPIPS was trained
on 64x64 patches). Values therefore compare only under the same protocol, like every other metric.

- ``lpips_diversity``: mean LPIPS over random pairs of distinct samples (higher: more diverse; the
  same number on real pairs is the floor to compare with). Registered as the ``lpips`` metric.
- ``lpips_paired``: mean LPIPS between generated[i] and ground_truth[i], for paired data (image
  translation, reconstruction); ``lpips_folders`` / ``ganforge lpips GENERATED_DIR TRUTH_DIR`` pairs two
  folders' image files by relative path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.errors import GanforgeError
from ganforge.metrics.protocol import EvalContext, Outcome, normal_mean, register_metric

MIN_SIDE, MAX_SIDE = 64, 256
INPUT_CONVENTION = "[0,255] RGB, side<64 -> 64 bilinear, side>256 -> 256 area, masks dropped"
LPIPS_PAIRS = 1000


@dataclass
class VGG16LPIPS:
    """The TorchScript VGG16 LPIPS network and the input convention above."""

    net: Any
    file_sha256: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """[N, C, H, W] in [-1, 1] (C = 1 or 3) -> LPIPS embeddings [N, D] float32 on the CPU."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise GanforgeError(f"lpips needs images with 1 or 3 channels, got {tuple(x.shape)}.")
        self.net.to(self.device)
        out = []
        for i in range(0, len(x), batch):
            img = (x[i : i + batch].detach().float().clamp(-1, 1) + 1) * 127.5  # [-1, 1] -> [0, 255]
            img = img.repeat(1, 3, 1, 1) if img.shape[1] == 1 else img
            h, w = img.shape[-2:]
            if max(h, w) > MAX_SIDE:
                img = F.interpolate(img, size=(min(h, MAX_SIDE), min(w, MAX_SIDE)), mode="area")
            elif min(h, w) < MIN_SIDE:
                img = F.interpolate(
                    img, size=(max(h, MIN_SIDE), max(w, MIN_SIDE)), mode="bilinear", align_corners=False
                )
            e = self.net(img.to(self.device), resize_images=False, return_lpips=True)
            out.append(e.reshape(len(img), -1).float().cpu())
        return torch.cat(out) if out else torch.empty(0, 0)


def load_lpips(path: str | Path | None = None, device: str | torch.device = "cpu") -> VGG16LPIPS:
    """The VGG16 LPIPS network from ``path``, ``$GANFORGE_VGG16_WEIGHTS`` or the cache (one line if missing)."""
    from ganforge.metrics.torchscript_extractor import load_torchscript
    from ganforge.metrics.weights import check_weights, resolve_weights

    p = resolve_weights("vgg16", path)
    digest = check_weights("vgg16", p)
    return VGG16LPIPS(load_torchscript(p, "lpips (vgg16)"), digest, torch.device(device))


@dataclass(frozen=True)
class LPIPSResult:
    mean: float
    std: float  # over pairs
    n_pairs: int


def _summary(d: torch.Tensor) -> LPIPSResult:
    d = d.double()
    return LPIPSResult(d.mean().item(), d.std().item() if len(d) > 1 else 0.0, len(d))


def lpips_diversity(
    net: VGG16LPIPS, images: torch.Tensor, n_pairs: int = LPIPS_PAIRS, rng: np.random.Generator | int | None = 0
) -> LPIPSResult:
    """Mean LPIPS over ``n_pairs`` random pairs (i != j) of images [N >= 2, C, H, W] in [-1, 1]."""
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"lpips_diversity needs images [N >= 2, C, H, W], got {tuple(images.shape)}.")
    n = images.shape[0]
    rng = np.random.default_rng(rng)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n  # uniform over the other n - 1 samples: never i
    used = np.unique(np.concatenate([i, j]))  # embed each image once
    emb = net.embed(images[torch.from_numpy(used)])
    e = torch.zeros(n, emb.shape[1])
    e[torch.from_numpy(used)] = emb
    return _summary((e[torch.from_numpy(i)] - e[torch.from_numpy(j)]).square().sum(1))


def lpips_paired(net: VGG16LPIPS, generated: torch.Tensor, ground_truth: torch.Tensor) -> LPIPSResult:
    """Mean LPIPS between generated[k] and ground_truth[k] (same shapes, [N, C, H, W] in [-1, 1])."""
    if generated.shape != ground_truth.shape or generated.dim() != 4 or len(generated) == 0:
        raise GanforgeError(
            f"lpips compares pairs of images of one shape; got {tuple(generated.shape)} and "
            f"{tuple(ground_truth.shape)}. Give as many images of one size, in the same order."
        )
    return _summary((net.embed(generated) - net.embed(ground_truth)).square().sum(1))


def lpips_folders(
    generated: str | Path, ground_truth: str | Path, weights: str | Path | None = None, device: str = "cpu"
) -> tuple[LPIPSResult, dict[str, float]]:
    """LPIPS between same-named images of two folders -> (summary, {relative path: distance})."""
    from PIL import Image

    from ganforge.data.folder import images_under

    gen_dir, truth_dir = Path(generated).expanduser(), Path(ground_truth).expanduser()
    for d in (gen_dir, truth_dir):
        if not d.is_dir():
            raise GanforgeError(f"{d} is not a folder; give two folders of images whose file names pair them up.")
    names = [p.relative_to(gen_dir) for p in images_under(gen_dir)]
    if not names:
        raise GanforgeError(f"{gen_dir} holds no images (png, jpg, ...).")
    missing = [n for n in names if not (truth_dir / n).is_file()]
    if missing:
        raise GanforgeError(
            f"{len(missing)} of {len(names)} generated images have no ground truth of the same name in "
            f"{truth_dir} (first: {missing[0]}); pair the files by name."
        )
    net = load_lpips(weights, device)

    def load(path: Path) -> torch.Tensor:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1  # [3, H, W] in [-1, 1]

    by_size: dict[tuple[int, ...], list[tuple[str, torch.Tensor, torch.Tensor]]] = {}
    for n in names:
        a, b = load(gen_dir / n), load(truth_dir / n)
        if a.shape != b.shape:
            raise GanforgeError(
                f"{n}: generated {tuple(a.shape[1:])} vs ground truth {tuple(b.shape[1:])} pixels; "
                "a pair must have one size."
            )
        by_size.setdefault(tuple(a.shape), []).append((str(n), a, b))
    per_file: dict[str, float] = {}
    for group in by_size.values():  # one batch per image size
        ea = net.embed(torch.stack([a for _, a, _ in group]))
        eb = net.embed(torch.stack([b for _, _, b in group]))
        for (n, _, _), d in zip(group, (ea - eb).square().sum(1).tolist()):
            per_file[n] = d
    return _summary(torch.tensor([per_file[str(n)] for n in names])), per_file


# ----------------------------------------------------------------------------------------------
# the metric


def _image_channels(ctx: EvalContext, x: torch.Tensor) -> torch.Tensor:
    return x[:, : x.shape[1] - ctx.train.mask_channels] if ctx.train.mask_channels else x


@register_metric(
    "lpips",
    kinds=("image",),
    requires=("vgg16",),
    higher_is_better=None,
    help="mean LPIPS (VGG16, NVIDIA TorchScript) between random pairs of generated images; beside real "
    "pairs (higher: more diverse). Needs `ganforge weights fetch vgg16`",
)
def lpips_metric(ctx: EvalContext) -> Outcome:
    net = ctx.shared.get("lpips:net")
    if net is None:
        net = ctx.shared["lpips:net"] = load_lpips(ctx.weights.get("vgg16"), ctx.device)
    x_gen, _ = ctx.fake()
    g = lpips_diversity(net, _image_channels(ctx, x_gen), n_pairs=LPIPS_PAIRS, rng=ctx.seed)
    real = _image_channels(ctx, ctx.floor_data.x)
    r = ctx.real_memo(
        f"lpips:floor:{net.file_sha256}:{ctx.seed}",
        lambda: lpips_diversity(net, real, n_pairs=LPIPS_PAIRS, rng=ctx.seed),
    )
    ci = normal_mean(g.mean, g.std, g.n_pairs, f"normal(pairs={g.n_pairs})")
    params = {
        "lpips_net": "vgg16 (NVIDIA TorchScript)",
        "lpips_net_sha256": net.file_sha256,
        "lpips_input": INPUT_CONVENTION,
        "lpips_pairs": LPIPS_PAIRS,
    }
    return Outcome(g.mean, ci, r.mean, params=params, details={"std_over_pairs": g.std, "real_split": ctx.floor_split})
