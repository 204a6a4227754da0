"""Metrics of an image-to-image run (pix2pix, CycleGAN): the real test split of the source domain is translated and
the result compared with the target domain.

For each direction the translator has (A->B; B->A too for CycleGAN; names of B->A metrics end in ``_BtoA``):

- ``fid`` / ``kid``: translated test images against the target domain's training images, in the features of the
  ``domain`` extractor trained on the *target* domain (its classifier when the data is labelled); the floor is
  the target's real test split against the same reference;
- ``ssim``, ``psnr``, ``mae``: against the paired ground truth (the same anatomy or digit in the target domain),
  when the data has one. On [0, 1] intensities: SSIM with a Gaussian window of 7 (pytorch-msssim), PSNR in dB with
  peak 1, MAE the mean absolute difference. Floor: none (a perfect translation scores 1, inf, 0);
- ``cycle_error``: mean |BtoA(AtoB(a)) - a| on [0, 1] (two-way translators);
- ``label_accuracy``: the target-domain classifier (the extractor's class head) on translated images against the
  source labels: is the digit (or the tumour / no-tumour label) kept? (Taigman et al. 2017's DTN measure).
  Floor: the classifier on the target's real test images;
- ``dice``: a U-Net segmenter (``metrics.segmentation``) trained on the target domain's training images and the
  anatomy's masks, applied to translated images, scored against the *source* masks: is the anatomy kept?
  Floor: the same U-Net on the target's real test images.

``evaluate RUN --baseline identity`` (the source image itself, channels matched) and ``--baseline
histogram-matching`` (each image's intensities mapped onto the target training set's pooled histogram, per channel)
score the simplest translations under the same protocol. ``eval/translations.png`` shows source | translated |
ground truth (or the cycle back) rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ganforge
from ganforge.config import Config
from ganforge.data import load_dataset
from ganforge.data.base import Dataset
from ganforge.errors import GanforgeError
from ganforge.metrics.baselines import TRANSLATION_ONLY
from ganforge.metrics.extractors import build_extractor, pick_device
from ganforge.metrics.features import extract, split_features
from ganforge.metrics.fid import fid_from_features
from ganforge.metrics.kid import kid, standardise
from ganforge.metrics.protocol import PROTOCOL_VERSION, Interval, MetricValue, normal_mean, protocol_id, wilson
from ganforge.metrics.segmentation import SegRecipe, predict_masks, score_masks, train_segmenter

Translate = Callable[[torch.Tensor, str], torch.Tensor]  # (x [N, C_src, H, W] in [-1, 1], direction) -> [N, C_dst, ...]

HISTORY_LABEL = "translation"


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, channels, H, W]: gray repeated to RGB, RGB to ITU-R BT.601 luma."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def histogram_match(x: torch.Tensor, reference: torch.Tensor, levels: int = 1024) -> torch.Tensor:
    """Each image of x [N, C, H, W] mapped, channel by channel, onto the pooled intensity distribution of
    ``reference`` [M, C, H, W]: a pixel of rank r among its image's pixels gets the reference's r-th quantile."""
    ref = reference.transpose(0, 1).flatten(1)  # [C, M*H*W]
    q = torch.linspace(0, 1, levels)
    ref_q = torch.quantile(ref[:, :: max(1, ref.shape[1] // 2_000_000)], q.to(ref.dtype), dim=1).T  # [C, levels]
    out = torch.empty_like(x)
    n_pix = x.shape[2] * x.shape[3]
    for c in range(x.shape[1]):
        flat = x[:, c].flatten(1)  # [N, H*W]
        ranks = flat.argsort(1).argsort(1).to(torch.float64) / max(n_pix - 1, 1)  # [N, H*W] in [0, 1]
        mapped = np.interp(ranks.numpy(), q.numpy(), ref_q[c].numpy())
        out[:, c] = torch.from_numpy(mapped).to(x.dtype).view_as(x[:, c])
    return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def ssim_per_image(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """SSIM of each pair of images in [-1, 1] (compared on [0, 1]; Gaussian window 7, sigma 1.5)."""
    from pytorch_msssim import ssim  # lazy: a small dependency, only needed here

    return ssim(_unit(x), _unit(y), data_range=1.0, size_average=False, win_size=7).double().numpy()


def psnr_per_image(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    mse = (_unit(x) - _unit(y)).pow(2).flatten(1).mean(1).double()  # [N]
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-12))).numpy()  # dB, peak 1 on [0, 1]


def mae_per_image(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return (_unit(x) - _unit(y)).abs().flatten(1).mean(1).double().numpy()


@dataclasses.dataclass
class Domains:
    """The two domains of a run's data as one-domain datasets (images only; labels where the data has them)."""

    train: dict[str, Dataset]
    test: dict[str, Dataset]
    names: dict[str, str]
    masks: dict[str, torch.Tensor | None]  # split -> the anatomy's masks [N, M, H, W] (> 0: foreground), or None
    paired: bool

    @classmethod
    def of(cls, cfg: Config) -> Domains:
        parts: dict[str, Any] = {"train": {}, "test": {}, "masks": {}}
        paired = True
        for split in ("train", "test"):
            data = load_dataset(cfg.data, split)
            if not data.two_domain:
                raise GanforgeError(f"dataset {data.name!r} has one domain; a translation run needs two-domain data")
            c = data.image_channels
            a, b = data.domains
            parts[split]["A"] = Dataset(
                f"{data.name}:{a}",
                data.x[:, :c].contiguous(),
                data.y,
                data.num_classes,
                data.class_names,
                source=data.source,
            )
            parts[split]["B"] = Dataset(
                f"{data.name}:{b}", data.x_b, data.y_b, data.num_classes, data.class_names, source=data.source
            )
            parts["masks"][split] = data.x[:, c:] if data.mask_channels and data.paired else None
            paired = paired and data.paired
            names = {"A": a, "B": b}
        return cls(parts["train"], parts["test"], names, parts["masks"], paired)


@dataclasses.dataclass
class TwoDomainEval:
    """What a two-domain run's evaluation measured: translations (this module) or CoGAN pairs (``cogan.py``)."""

    values: dict[str, MetricValue]
    skipped: dict[str, str]
    extractor: dict[str, Any]
    n: int  # images translated per direction, or pairs generated
    seconds: float
    device: str
    domains: list[str]


def _interval(values: np.ndarray, label: str = "normal-mean") -> Interval:
    return normal_mean(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values), label)


def evaluate_translation(
    run_dir: Path,
    gen: Any,
    *,
    n: int,
    seed: int = 0,
    extractor: str = "domain",
    device: str | None = None,
    baseline: str | None = None,
    log: Callable[[str], None] = print,
) -> TwoDomainEval:
    """Every translation metric that applies to this run (see the module docstring)."""
    t0 = time.perf_counter()
    dev = pick_device(device)
    cfg: Config = gen.config
    dom = Domains.of(cfg)
    directions = tuple(gen.G.directions)
    translate = _translator(gen, baseline, dom)
    values: dict[str, MetricValue] = {}
    skipped: dict[str, str] = {}
    extractors: dict[str, Any] = {}
    pictures = []
    for direction in directions:
        src, dst = ("A", "B") if direction == "AtoB" else ("B", "A")
        suffix = "" if direction == "AtoB" else "_BtoA"
        source = dom.test[src]
        count = min(n, len(source))
        x_src = source.x[:count]
        with torch.no_grad():
            x_out = translate(x_src, direction).float().cpu().clamp(-1, 1)  # [count, C_dst, H, W]
        target_train, target_test = dom.train[dst], dom.test[dst]
        base = {
            "protocol_version": PROTOCOL_VERSION,
            "direction": direction,
            "source_domain": dom.names[src],
            "target_domain": dom.names[dst],
            "dataset": cfg.data.name,
            "eval_split": "test",
            "n_translated": count,
            "source_fingerprint": source.fingerprint()[:16],
            "seed": seed,
            "ganforge_version": ganforge.__version__,
        }

        def record(
            name: str,
            value: float,
            ci: Interval | None,
            floor: float | None,
            higher: bool | None,
            params: dict[str, Any],
            details: dict[str, Any] | None = None,
            scale: float = 1.0,
            base: dict[str, Any] = base,
            suffix: str = suffix,
        ) -> None:
            protocol = {**base, "metric": name, **params}
            full = f"{name}{suffix}"
            values[full] = MetricValue(
                full, float(value), ci, floor, protocol, protocol_id(protocol), higher, None, details or {}, scale
            )
            log(f"  {full}: {value:.6g}")

        # ---- distribution: FID / KID in the target domain's features
        ex = extractors.get(dst)
        if ex is None:
            ex = extractors[dst] = build_extractor(extractor, target_train, target_test, device=dev, log=log)
        ref = split_features(ex, target_train)
        fake = extract(ex, x_out)
        floor_feats = split_features(ex, target_test)
        ex_params = {
            "extractor": ex.name,
            "extractor_hash": ex.short_hash,
            "preprocessing": ex.preprocessing,
            "reference_split": "train",
            "n_reference": len(target_train),
            "reference_fingerprint": target_train.fingerprint()[:16],
        }
        record(
            "fid",
            fid_from_features(ref.feats, fake.feats),
            None,
            fid_from_features(ref.feats, floor_feats.feats),
            False,
            ex_params,
        )
        subset = min(1000, count, len(target_test))
        zscore = not ex.name.startswith("inception")  # as metrics.image_metrics: the cubic kernel's scale
        k_ref, k_fake, k_real = (
            standardise(ref.feats, fake.feats, floor_feats.feats)
            if zscore
            else (ref.feats, fake.feats, floor_feats.feats)
        )
        k_gen = kid(k_ref, k_fake, subsets=100, subset_size=subset, rng=seed)
        k_floor = kid(k_ref, k_real, subsets=100, subset_size=subset, rng=seed)
        lo, hi = np.percentile(k_gen.per_subset, [2.5, 97.5])
        record(
            "kid",
            k_gen.mean,
            Interval(float(lo), float(hi), f"subset-percentile(m={subset}, subsets=100)"),
            k_floor.mean,
            False,
            {
                **ex_params,
                "kid_subset_size": subset,
                "kid_subsets": 100,
                "kernel": "(x.y/d+1)^3",
                "features": "standardised by the real reference set's mean and std"
                if zscore
                else "as extracted (Inception convention)",
            },
            scale=1000.0,
        )

        # ---- against the paired ground truth
        if dom.paired:
            truth = target_test.x[:count]
            for name, fn, higher in (
                ("ssim", ssim_per_image, True),
                ("psnr", psnr_per_image, True),
                ("mae", mae_per_image, False),
            ):
                per = fn(x_out, truth)
                record(
                    name,
                    per.mean(),
                    _interval(per),
                    None,
                    higher,
                    {"scale": "[0, 1] intensities", "ground_truth": "paired target test images"},
                )
        else:
            skipped[f"ssim{suffix}"] = "the data has no paired ground truth (unpaired folders)"

        # ---- cycle consistency
        if len(directions) == 2:
            back = translate(x_out, "BtoA" if direction == "AtoB" else "AtoB").float().cpu()
            per = (_unit(back) - _unit(x_src)).abs().flatten(1).mean(1).double().numpy()
            record("cycle_error", per.mean(), _interval(per), None, False, {"scale": "[0, 1] intensities"})

        # ---- task preservation: labels (DTN) and anatomy (Dice)
        if ex.has_logits and source.y is not None and target_test.y is not None:
            pred = fake.logits.argmax(1) if fake.logits is not None else None
            ok = float((pred == source.y[:count]).sum())
            floor_acc = float((floor_feats.logits.argmax(1) == target_test.y).float().mean())
            record(
                "label_accuracy",
                ok / count,
                wilson(ok, count),
                floor_acc,
                True,
                {**ex_params, "classifier": "the extractor's class head, trained on the target domain"},
            )
        if dom.masks["train"] is not None and dom.masks["test"] is not None:
            recipe = SegRecipe(seed=seed)
            net = train_segmenter(target_train.x, dom.masks["train"], recipe, dev)
            true = dom.masks["test"][:count] > 0
            dice = score_masks(predict_masks(net, x_out, dev), true)
            dice_floor = score_masks(predict_masks(net, target_test.x[:count], dev), true)
            record(
                "dice",
                float(dice.dice.mean()),
                _interval(dice.dice),
                float(dice_floor.dice.mean()),
                True,
                {"segmenter": "unet", "segmenter_steps": recipe.steps, "trained_on": "target-domain train images"},
                dice.summary(),
            )
        truth = target_test.x[:count] if dom.paired else None
        back = translate if len(directions) == 2 else None  # a one-way unpaired family (DTN) has no cycle to show
        pictures.append((direction, _rows(x_src, x_out, truth, direction, back)))
    if run_dir is not None and pictures:
        _save_rows(run_dir / ("eval" if baseline is None else f"baseline-{baseline}/eval"), pictures)
    ex0 = next(iter(extractors.values()))
    return TwoDomainEval(
        values,
        skipped,
        {
            "name": ex0.name,
            "hash": ex0.short_hash,
            "identity": ex0.identity,
            "preprocessing": ex0.preprocessing,
            "per_target_domain": True,
        },
        n=min(n, len(dom.test["A"])),
        seconds=time.perf_counter() - t0,
        device=str(dev),
        domains=[dom.names["A"], dom.names["B"]],
    )


def _translator(gen: Any, baseline: str | None, dom: Domains) -> Translate:
    if baseline is None:
        G = gen.G.eval()

        @torch.no_grad()
        def run(x: torch.Tensor, direction: str) -> torch.Tensor:
            return torch.cat([G(x[i : i + 256], direction) for i in range(0, len(x), 256)])

        return run
    if baseline not in TRANSLATION_ONLY:
        raise GanforgeError(
            f"baseline {baseline!r} is not for translation runs; choose one of: {', '.join(TRANSLATION_ONLY)}."
        )
    if baseline == "identity":
        return lambda x, d: match_channels(x, dom.train["B" if d == "AtoB" else "A"].x.shape[1])
    pools = {d: dom.train[d].x for d in "AB"}
    return lambda x, d: histogram_match(
        match_channels(x, pools["B" if d == "AtoB" else "A"].shape[1]), pools["B" if d == "AtoB" else "A"]
    )


def _rows(
    x_src: torch.Tensor,
    x_out: torch.Tensor,
    truth: torch.Tensor | None,
    direction: str,
    translate: Translate | None,
    k: int = 8,
) -> torch.Tensor:
    """k rows of source | translated | ground truth (or the cycle back, when ``translate`` goes both ways):
    [k, cells, C, H, W]."""
    src = x_src[:k]
    if src.shape[1] not in (1, 3):  # a one-hot label map (SPADE): its class index as gray
        src = src.argmax(1, keepdim=True).float() * (2 / (src.shape[1] - 1)) - 1
    cells = [src, x_out[:k]]
    if truth is not None:
        cells.append(truth[:k])
    elif translate is not None:
        with torch.no_grad():
            cells.append(translate(x_out[:k], "BtoA" if direction == "AtoB" else "AtoB").float())
    channels = max(c.shape[1] for c in cells)
    cells = [match_channels(c.float(), channels) for c in cells]
    return torch.stack(cells, 1)  # [k, cells, C, H, W]: one row per source image


def _save_rows(folder: Path, pictures: list[tuple[str, torch.Tensor]]) -> None:
    """eval/translations.png (A->B) and eval/translations_BtoA.png: one row per source image."""
    from ganforge.training.grids import save_image_grid

    folder.mkdir(parents=True, exist_ok=True)
    for direction, rows in pictures:
        name = "translations.png" if direction == "AtoB" else f"translations_{direction}.png"
        save_image_grid(rows.flatten(0, 1), folder / name, nrow=rows.shape[1])


__all__ = ["evaluate_translation", "histogram_match", "match_channels"]
