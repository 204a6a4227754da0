"""Usefulness of synthetic image + mask pairs for a downstream segmenter ("train on synthetic, test on real").

The segmentation analogue of ``usefulness`` (CAS, Ravuri & Vinyals 2019), for datasets whose last
``mask_channels`` channels are segmentation masks (-1 background, +1 foreground; ``Dataset.mask_channels``):

- ``seg_dice``: mean Dice (Dice 1945) on the real test split of a fresh U-Net (Ronneberger et al. 2015,
  "U-Net: Convolutional Networks for Biomedical Image Segmentation", https://arxiv.org/abs/1505.04597)
  trained on N *synthetic* pairs. Shown beside the same U-Net (architecture, recipe, seed) trained on N
  *real* training pairs (the ``floor`` field: what real data reaches under this protocol).
- ``seg_aug_gain``: mean test Dice of that U-Net trained on the N real + N synthetic pairs minus trained
  on the N real alone; its interval is a paired bootstrap over test images.

Synthetic pairs are drawn with the real subset's labels when the generator is conditional (same class
balance); their mask channels are binarised at 0, as the real ones are. Every U-Net is tested on ALL
real test images, predicted mask = logits > 0. Dice convention (``dice_per_image``): 1 when the true and
predicted masks are both empty, 0 when exactly one is. Intervals cover the test-set sampling error for
one segmenter seed, not seed-to-seed variation.

Budget: a fixed number of optimiser steps (``SegRecipe.steps``), not epochs, so the cost of one U-Net
does not grow with N (nor with the doubled real + synthetic set). Measured on a 2-core CPU (one intra-op
thread, as the domain extractor trains), 2,000 pairs: 10 s per U-Net at 1x32x32 and 35 s at 1x64x64 when idle,
15-19 s and 35-49 s while another training job shared the cores (plus ~1.5 s of one-off torch warm-up in a
fresh process). An evaluation trains two U-Nets, three when the real-data one is not cached yet.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.metrics.bootstrap import bootstrap_ci
from ganforge.metrics.extractors import Log, _quiet
from ganforge.metrics.features import sha256_json
from ganforge.metrics.protocol import EvalContext, Outcome, from_ci, register_metric
from ganforge.metrics.threads import single_thread_on_cpu

IMAGE = ("image",)
SEG_BOOT = 1000  # bootstrap replicates of a mean over test images (cheap: one mean each)
DICE_CONVENTION = "per image; both empty -> 1, exactly one empty -> 0; mean over mask channels, then images"


# ----------------------------------------------------------------------------------------------
# the network


class ConvBlock(nn.Sequential):
    """(conv3x3 -> BN -> ReLU) x 2, size-preserving: U-Net's unit (padded, unlike the paper's valid convs)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        )


class SegUNet(nn.Module):
    """A small U-Net: ``depth`` max-pool stages down, transposed-conv stages up, skip concatenation.

    Widths base * 2**level (16, 32, 64 for depth 2). Any H, W: an odd size is floored by the pool and the
    upsampled map is padded back to its skip's size (28 -> 14 -> 7 needs no padding at depth 2).
    forward: x [N, in_channels, H, W] -> mask logits [N, out_channels, H, W].
    """

    def __init__(self, in_channels: int, out_channels: int = 1, base: int = 16, depth: int = 2) -> None:
        super().__init__()
        if depth < 1 or base < 1:
            raise ValueError(f"SegUNet needs depth >= 1 and base >= 1, got depth={depth}, base={base}")
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([ConvBlock(in_channels, widths[0])])
        self.down.extend(ConvBlock(widths[i], widths[i + 1]) for i in range(depth))  # last one: the bottleneck
        levels = list(reversed(range(depth)))  # decoder: deepest level first
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in levels)
        self.merge = nn.ModuleList(ConvBlock(2 * widths[i], widths[i]) for i in levels)
        self.head = nn.Conv2d(widths[0], out_channels, 1)  # 1x1 conv -> logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)  # [N, base * 2**i, H / 2**i, W / 2**i]
        skips.pop()  # the bottleneck is x itself
        for up, merge in zip(self.up, self.merge):
            skip = skips.pop()
            x = up(x)
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            if dh or dw:  # odd input size at this level: pad the upsampled map (left/top first) to the skip's size
                x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
            x = merge(torch.cat([skip, x], dim=1))  # the skip connection: concatenate, then convolve
        return self.head(x)


# ----------------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class SegRecipe:
    """How a segmenter is trained; hashed into the metric protocol."""

    # Optimiser steps, whatever N is: a fixed cost per U-Net. 240 x 16 = 3,840 pairs shown (~2 epochs of 2,000).
    # Small batches, more steps: on noisy discs with distractors at 32x32, for the same 3,840 pairs shown, 240 x 16
    # reached test Dice 0.95-0.97 (peak lr 3e-3 to 1e-2) where 120 x 32 reached 0.89-0.96.
    steps: int = 240
    batch_size: int = 16
    lr: float = 5e-3  # peak of a one-cycle schedule
    weight_decay: float = 1e-4  # decoupled (AdamW)
    seed: int = 0
    loss: Literal["bce+dice", "bce", "dice"] = "bce+dice"
    base: int = 16  # U-Net width of the first level
    depth: int = 2  # U-Net pooling stages

    def __post_init__(self) -> None:
        if self.loss not in ("bce+dice", "bce", "dice"):
            raise ValueError(f"unknown segmentation loss {self.loss!r}; choose bce+dice, bce or dice")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - mean over (image, channel) of (2 sum(p t) + s) / (sum p + sum t + s), p = sigmoid(logits).

    logits, target [N, C, H, W]; target in {0, 1}. The smoothing s keeps an empty mask predicted empty at
    loss ~0 (the hard Dice convention's "both empty -> 1") and the gradient finite.
    """
    p = torch.sigmoid(logits).flatten(2)
    t = target.flatten(2)
    dice = (2 * (p * t).sum(-1) + smooth) / (p.sum(-1) + t.sum(-1) + smooth)  # [N, C]
    return 1 - dice.mean()


def seg_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    loss = logits.new_zeros(())
    if "bce" in kind:
        loss = loss + F.binary_cross_entropy_with_logits(logits, target)  # sigmoid inside: logits in
    if "dice" in kind:
        loss = loss + soft_dice_loss(logits, target)
    return loss


def mask_targets(masks: torch.Tensor) -> torch.Tensor:
    """Mask channels in [-1, 1] (real: -1 / +1; generated: anything) -> float {0, 1} targets, threshold 0."""
    return (masks > 0).float()




def train_segmenter(
    images: torch.Tensor, masks: torch.Tensor, recipe: SegRecipe, device: torch.device | str = "cpu",
    log: Log = _quiet,
) -> SegUNet:
    """Train a SegUNet on images [N, C_img, H, W] in [-1, 1] and masks [N, C_mask, H, W] (> 0: foreground).

    Deterministic in ``recipe.seed`` on a given device: initial weights come from a forked RNG seeded with
    it, batches from an explicit generator, and a CPU trains on one intra-op thread (so the weights do not
    depend on the core count). Returns the net in eval mode, without gradients.
    """
    n = len(images)
    if n < 2 or len(masks) != n:
        raise GanforgeError(f"a segmenter needs at least 2 image + mask pairs, got {n} images and {len(masks)} "
                            "masks; evaluate with more samples (--n).")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = SegUNet(images.shape[1], masks.shape[1], recipe.base, recipe.depth)
    net.to(device, memory_format=torch.channels_last).train()  # channels_last: faster convs on a CPU
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps, pct_start=0.2)
    gen = torch.Generator().manual_seed(recipe.seed)
    x_dev = images.to(device, torch.float32)
    t_dev = mask_targets(masks).to(device)
    # BatchNorm needs 2+ samples per batch; never a batch larger than the data.
    batch = max(2, min(recipe.batch_size, n))
    t0 = time.perf_counter()
    with single_thread_on_cpu(device):
        order, pos = torch.randperm(n, generator=gen), 0
        for _ in range(recipe.steps):
            if pos + batch > n:  # a new epoch: reshuffle (the last partial batch is dropped)
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos : pos + batch].to(device)
            pos += batch
            logits = net(x_dev[idx].contiguous(memory_format=torch.channels_last))  # [B, C_mask, H, W]
            loss = seg_loss(logits, t_dev[idx], recipe.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    log(f"segmenter: trained a U-Net on {n} pairs ({recipe.steps} steps, last loss {loss.item():.3f}) "
        f"in {time.perf_counter() - t0:.1f} s")
    return net.eval().requires_grad_(False)


@torch.no_grad()
def predict_masks(net: SegUNet, images: torch.Tensor, device: torch.device | str, batch: int = 500) -> torch.Tensor:
    """Predicted masks (logits > 0) as bool [N, C_mask, H, W] on CPU; eval mode, in batches."""
    device = torch.device(device)
    net.to(device, memory_format=torch.channels_last).eval()
    out = [net(images[i : i + batch].to(device, torch.float32).contiguous(memory_format=torch.channels_last)) > 0
           for i in range(0, len(images), batch)]
    return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.bool)


# ----------------------------------------------------------------------------------------------
# the pure math


def dice_per_image(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> np.ndarray:
    """Dice = 2 |P & T| / (|P| + |T|) of each image: bool [N, H, W] (or [N, ...], flattened) -> float64 [N].

    Convention: 1 when both masks are empty (nothing to find, nothing found), 0 when exactly one is empty
    (the formula gives 0 there already; the both-empty 0/0 is the only special case).
    """
    p = np.asarray(pred, dtype=bool).reshape(len(pred), -1)
    t = np.asarray(true, dtype=bool).reshape(len(true), -1)
    if p.shape != t.shape:
        raise ValueError(f"predicted and true masks differ in shape: {p.shape} vs {t.shape}")
    inter = (p & t).sum(1).astype(np.float64)
    total = (p.sum(1) + t.sum(1)).astype(np.float64)
    return np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))


@dataclass(frozen=True)
class SegScores:
    """One segmenter on the real test split, per test image."""

    dice: np.ndarray  # [N_test] float64: Dice, averaged over mask channels
    lesion: np.ndarray  # [N_test] bool: the true mask (any channel) has foreground
    false_positive: np.ndarray  # [N_test] bool: predicted foreground (any channel) where the true mask is empty

    def summary(self) -> dict[str, float | None]:
        """Mean Dice; mean Dice over test images with foreground; the share of empty images given foreground."""
        empty = ~self.lesion
        return {"dice": float(self.dice.mean()),
                "dice_on_lesion_slices": float(self.dice[self.lesion].mean()) if self.lesion.any() else None,
                "empty_slice_false_positive_rate": float(self.false_positive[empty].mean()) if empty.any() else None}


def score_masks(pred: torch.Tensor, true: torch.Tensor) -> SegScores:
    """pred, true bool [N, C_mask, H, W] -> per-image Dice (mean over channels) and empty/lesion facts."""
    n, c = true.shape[:2]
    dice = dice_per_image(pred.reshape(n * c, -1), true.reshape(n * c, -1)).reshape(n, c).mean(1)
    lesion = true.reshape(n, -1).any(1).numpy()
    return SegScores(dice, lesion, pred.reshape(n, -1).any(1).numpy() & ~lesion)


# ----------------------------------------------------------------------------------------------
# the metrics


@dataclass(frozen=True)
class SegUsefulness:
    n_per_set: int
    real: SegScores  # U-Net trained on N real pairs
    synthetic: SegScores  # trained on N synthetic pairs
    mixed: SegScores  # trained on N real + N synthetic pairs
    recipe_hash: str


def _seg_usefulness(ctx: EvalContext) -> SegUsefulness:
    def compute() -> SegUsefulness:
        train, test = ctx.train, ctx.test
        c_img = train.image_channels
        if len(test) == 0:
            raise GanforgeError(f"seg_dice needs real test pairs, and {test.name!r} has an empty test split.")
        n = min(ctx.n, len(train))
        x_real = train.x[:n]  # [N, C_img + C_mask, H, W]; loaders shuffle with a fixed seed: a class-mixed subset
        labels = train.y[:n].clone() if ctx.conditional and train.y is not None else None  # same class balance
        x_syn, _ = ctx.sample(n, ctx.seed + 1, labels)
        x_syn = x_syn.detach().float().cpu()  # [N, C_img + C_mask, H, W]: image and mask channels, generated together
        if x_syn.shape != x_real.shape:
            raise GanforgeError(f"seg_dice needs generated image + mask pairs shaped like the data "
                                f"{tuple(x_real.shape)}, got {tuple(x_syn.shape)}; evaluate a generator trained on "
                                "this paired dataset.")
        recipe = SegRecipe(seed=ctx.seed)
        true_test = test.x[:, c_img:] > 0  # [N_test, C_mask, H, W] bool

        def fit_and_test(x: torch.Tensor) -> SegScores:
            net = train_segmenter(x[:, :c_img], x[:, c_img:], recipe, ctx.device)
            return score_masks(predict_masks(net, test.x[:, :c_img], ctx.device), true_test)

        ctx.log(f"segmentation usefulness: training 3 U-Nets (real, synthetic, real+synthetic; {n} pairs each set, "
                f"{recipe.steps} steps each)")
        real = ctx.real_memo(f"seg:real:{n}:{ctx.seed}", lambda: fit_and_test(x_real))
        syn = fit_and_test(x_syn)
        mixed = fit_and_test(torch.cat([x_real, x_syn]))
        net_spec = {"arch": "unet", "in_channels": c_img, "out_channels": train.mask_channels}
        return SegUsefulness(n, real, syn, mixed, sha256_json({"net": net_spec, "recipe": asdict(recipe)})[:12])

    return ctx.memo("seg_usefulness", compute)


def _params(ctx: EvalContext, u: SegUsefulness) -> dict:
    return {"segmenter": "unet", "segmenter_recipe": u.recipe_hash, "n_train_per_set": u.n_per_set,
            "eval_split": "test", "n_eval": len(ctx.test), "dice": DICE_CONVENTION}


def _with_prefix(prefix: str, scores: SegScores) -> dict[str, float | None]:
    s = scores.summary()
    return {f"{prefix}_dice": s["dice"], f"{prefix}_dice_on_lesion_slices": s["dice_on_lesion_slices"],
            f"{prefix}_empty_slice_false_positive_rate": s["empty_slice_false_positive_rate"]}


@register_metric("seg_dice", kinds=IMAGE, requires=("masks",), higher_is_better=True,
                 help="mean Dice on real test pairs of a U-Net trained on N synthetic image+mask pairs; beside N real")
def seg_dice_metric(ctx: EvalContext) -> Outcome:
    u = _seg_usefulness(ctx)
    d_syn, d_real = float(u.synthetic.dice.mean()), float(u.real.dice.mean())
    ci = None
    if ctx.n_boot >= 2:  # as the other bootstrap intervals: none when the caller asks for none (training-time evals)
        ci = from_ci(bootstrap_ci(np.mean, u.synthetic.dice, n_boot=SEG_BOOT, rng=ctx.seed),
                     label=f"bootstrap-percentile(n={SEG_BOOT}, test images; one segmenter seed)")
    details = {**_with_prefix("real", u.real), **_with_prefix("synthetic", u.synthetic),
               **_with_prefix("real_plus_synthetic", u.mixed),
               "synthetic_over_real": d_syn / d_real if d_real > 0 else None}
    return Outcome(d_syn, ci, d_real, params=_params(ctx, u), details=details, n_generated=u.n_per_set,
                   n_reference=u.n_per_set)


@register_metric("seg_aug_gain", kinds=IMAGE, requires=("masks",), higher_is_better=True,
                 help="test Dice gain of a U-Net from adding N synthetic to N real image+mask pairs")
def seg_aug_gain_metric(ctx: EvalContext) -> Outcome:
    u = _seg_usefulness(ctx)
    diff = u.mixed.dice - u.real.dice  # [N_test] paired: the same test image under both segmenters
    ci = None
    if ctx.n_boot >= 2:
        ci = from_ci(bootstrap_ci(np.mean, diff, n_boot=SEG_BOOT, rng=ctx.seed),
                     label=f"paired-bootstrap(n={SEG_BOOT}, test images; one segmenter seed)")
    details = {"real_dice": float(u.real.dice.mean()), "real_plus_synthetic_dice": float(u.mixed.dice.mean())}
    return Outcome(float(diff.mean()), ci, None, params=_params(ctx, u), details=details, n_generated=u.n_per_set,
                   n_reference=u.n_per_set)
