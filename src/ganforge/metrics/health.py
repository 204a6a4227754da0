"""Is the generator collapsing? A cheap check every few ticks of training, and the numbers keep-best ranks by.

``health.every_ticks=N`` measures, every N ticks, ``health.n`` samples of the network ``generate`` would sample
from (the EMA copy when kept) against as many real training samples, in the domain extractor's features (raw
coordinates for 2D points), a few hundred milliseconds on a CPU:

- precision / recall / coverage (k = 5, ``prdc``) and FID, each beside its real-vs-real value at the same counts
  (real test samples against the same training samples);
- diversity: the mean pairwise feature distance of the samples divided by that of real samples, per class for
  conditional runs (the lowest class is reported); a generator that draws one image per class scores near 0,
  real data 1 (Odena et al. 2017 measure the same within-class spread with MS-SSIM);
- conditional runs: the domain classifier's accuracy on samples of each requested class.

Collapse is flagged, in the log, in ``metrics.jsonl`` (``{"type": "health", ...}``) and in the report, when
the diversity of the samples (or of one class) falls below ``DIVERSITY_WARN`` of real data's while they look
real (precision at least ``PRECISION_GATE``: an untrained G draws alike blobs too), or when recall
falls below ``RECALL_DROP`` of the best recall the run had already reached (a run that worked and then
collapsed), or when, past ``LOW_RECALL_AFTER`` of the run, recall is still under ``RECALL_LOW`` of the real
data's own (partial collapse that never recovered: G draws some of the data's modes well and drops the others),
or when FID rises above ``FID_RISE`` times the best FID the run had reached, once that best was within
``FID_NEAR`` of the real data's own (a run that worked and is degrading: e.g. a D that stopped learning, its
outputs the same for real and generated images, leaves G to drift).
``health.keep_best=fid|recall|coverage|class_acc`` copies the generator of the best check so far to
``RUN/best/``. The samples use fixed latents and labels (and noise seeds, for generators with noise inputs), so ticks
compare like the progress grids.

These are checks, not evaluations: no intervals, a few hundred samples, a fixed real subset. Report numbers
come from ``ganforge evaluate``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ganforge.config import Config, total_kimg
from ganforge.data import Dataset, load_dataset
from ganforge.errors import ConfigError
from ganforge.metrics.extractors import FeatureExtractor, build_extractor
from ganforge.metrics.fid import fid_from_features
from ganforge.metrics.prdc import prdc
from ganforge.training.export import draw_noise_seeds
from ganforge.training.monitor import TickCheck

K = 5  # k of precision, recall and coverage: the evaluation's (image_metrics.K_PR, K_DC)
DIVERSITY_WARN = 0.25  # samples (or one class) less than a quarter as spread as real data: collapsed
RECALL_DROP = 0.5  # recall under half the run's best: it had learned more of the data and lost it
RECALL_PEAK_MIN = 0.2  # ... only once the run had reached a recall worth losing
RECALL_LOW = 0.5  # recall under half the real data's (real test against training samples) ...
LOW_RECALL_AFTER = 0.5  # ... past half the run: G has had the time to cover the data and covers part of it
PRECISION_GATE = 0.1  # near-identical samples count as collapse once some of them look real (else: not trained yet)
FID_RISE = 1.8  # FID above 1.8x the run's best: degrading (healthy runs' checks swing by up to ~1.6x at 500 samples)
FID_NEAR = 5.0  # ... only once that best was within 5x the real data's own FID (early checks swing more)
HIGHER_IS_BETTER = {"fid": False, "recall": True, "coverage": True, "class_acc": True}


@dataclass(frozen=True)
class Health:
    """The numbers of one check (or of real test data against the same real training samples: the floor)."""

    precision: float
    recall: float
    coverage: float
    fid: float
    diversity: float  # lowest per-class (conditional) or overall spread ratio, generated / real
    diversity_class: int | None  # the class with that lowest ratio (conditional runs)
    class_acc: float | None  # domain classifier's accuracy on samples of the requested class


def spread(feats: torch.Tensor) -> float:
    """Mean Euclidean distance between distinct rows of feats [N, D] (0 when all rows are equal)."""
    if len(feats) < 2:
        return 0.0
    return float(torch.pdist(feats.double()).mean())


def diversity(
    real: torch.Tensor, real_y: torch.Tensor | None, gen: torch.Tensor, gen_y: torch.Tensor | None
) -> tuple[float, int | None]:
    """(lowest spread ratio generated / real, its class): per class when both sides are labelled, else overall."""
    if real_y is None or gen_y is None:
        ref = spread(real)
        return (spread(gen) / ref if ref > 0 else math.nan), None
    worst, worst_class = math.inf, None
    for k in gen_y.unique().tolist():
        ref = spread(real[real_y == k])
        if ref <= 0:  # fewer than two real samples of this class in the subset: nothing to compare with
            continue
        ratio = spread(gen[gen_y == k]) / ref
        if ratio < worst:
            worst, worst_class = ratio, int(k)
    return (worst, worst_class) if worst_class is not None else (math.nan, None)


def measure(
    real: torch.Tensor,
    real_y: torch.Tensor | None,
    gen: torch.Tensor,
    gen_y: torch.Tensor | None,
    gen_logits: torch.Tensor | None = None,
) -> Health:
    """Health of features gen [n, D] (asked labels gen_y, classifier logits) against real [m, D] (labels real_y)."""
    p = prdc(real, gen, k_pr=K, k_dc=K)
    div, div_class = diversity(real, real_y, gen, gen_y)
    acc = None
    if gen_logits is not None and gen_y is not None:
        acc = float((gen_logits.argmax(1) == gen_y).double().mean())
    return Health(p.precision, p.recall, p.coverage, fid_from_features(real, gen), div, div_class, acc)


def collapse_warnings(
    h: Health, peak_recall: float, peak_tick: int, class_names: tuple[str, ...] = (), *,
    floor_recall: float = math.nan, progress: float = 0.0, best_fid: float = math.nan, best_fid_tick: int = 0,
    floor_fid: float = math.nan,
) -> list[str]:
    """What looks like collapse in ``h``, given the best recall seen before (at ``peak_tick``), the real data's own
    recall at the same sample counts, the fraction of the run done, and the best FID seen before (at
    ``best_fid_tick``) with the real data's own FID; [] when healthy."""
    out = []
    # An untrained G (or the EMA copy of one, early on) draws near-identical blobs too, but off the data: its
    # samples are in no real neighbourhood (precision ~0). Collapse is near-identical samples that look real.
    looks_real = h.precision >= PRECISION_GATE or peak_recall >= RECALL_PEAK_MIN
    if looks_real and math.isfinite(h.diversity) and h.diversity < DIVERSITY_WARN:
        if h.diversity_class is not None:
            name = class_names[h.diversity_class] if h.diversity_class < len(class_names) else h.diversity_class
            out.append(f"class {name} samples are nearly alike (diversity {h.diversity:.2f} of real data's)")
        else:
            out.append(f"samples are nearly alike (diversity {h.diversity:.2f} of real data's)")
    if peak_recall >= RECALL_PEAK_MIN and h.recall < RECALL_DROP * peak_recall:
        out.append(f"recall fell to {h.recall:.2f} from {peak_recall:.2f} at tick {peak_tick}")
    elif progress >= LOW_RECALL_AFTER and h.recall < RECALL_LOW * floor_recall:  # nan floor: never
        out.append(f"recall {h.recall:.2f} is under half the real data's {floor_recall:.2f} past half the run: "
                   "G draws only part of the data (mode dropping)")
    if best_fid <= FID_NEAR * floor_fid and h.fid > FID_RISE * best_fid:  # nan best or floor: never
        out.append(f"FID rose to {h.fid:.3g}, {h.fid / best_fid:.1f}x its best {best_fid:.3g} at tick {best_fid_tick}: "
                   "the run is degrading (health.keep_best=fid keeps the best generator)")
    return out


def stratified_labels(prior: Sequence[float], n: int) -> torch.Tensor:
    """n labels at the prior's frequencies, without randomness and interleaved (a uniform prior over k labels
    gives ``i % k``): sample i takes the label whose share of the cumulative prior holds its stratum's midpoint."""
    k = len(prior)
    per = -(-n // k)  # strata per label slot: label slot i % k, position i // k
    i = torch.arange(n)
    u = ((i % k) * per + i // k + 0.5) / (k * per)
    cdf = torch.tensor(prior, dtype=torch.float64).cumsum(0)
    return torch.searchsorted(cdf / cdf[-1], u.double()).clamp(max=k - 1)


class HealthMonitor:
    """The ``Monitor`` (``training.monitor``) behind ``health.*``: built by the runner, called by the loop."""

    def __init__(
        self, cfg: Config, train: Dataset, test: Dataset, conditional: bool, device: torch.device | str = "cpu",
        own_labels: int = 0,
    ) -> None:
        self.cfg, self.hc = cfg, cfg.health
        self.train, self.test, self.conditional = train, test, conditional
        self.device = torch.device(device)
        self.num_classes = max(train.num_classes, 1)
        self.total_kimg = total_kimg(cfg, len(train))
        self.extractor: FeatureExtractor | None = None  # built at the first check (cached on disk after)
        self.state: dict[str, Any] = {}  # best value, its tick, the best recall: all in the checkpoint
        gen = torch.Generator().manual_seed(cfg.train.seed + 4242)  # its own generator: training RNG untouched
        self.n = self.hc.n
        self.real_idx = torch.randperm(len(train), generator=gen)[: self.n]
        self.floor_idx = torch.randperm(len(test), generator=gen)[: self.n]
        self.z: torch.Tensor | None = None  # fixed latents, drawn at the first check (z_dim comes from the net)
        self.noise_seeds: torch.Tensor | None = None  # and, for generators with noise inputs, their noise seeds
        self.z_seed = cfg.train.seed + 4243
        self.labels = (torch.arange(self.n) % self.num_classes) if conditional else None  # balanced
        # what G is sampled with: the labels above, or (own_labels, InfoGAN's codes) labels G draws for itself, at
        # the frequencies generator.json gives (check); those are not the data's classes, so the samples are
        # measured as unconditional
        self.own_labels = own_labels
        self.draw_labels = stratified_labels([1.0] * own_labels, self.n) if own_labels else self.labels  # uniform
        self.real: torch.Tensor | None = None
        self.floor: Health | None = None

    # ---- Monitor protocol ---------------------------------------------------------------------------------

    def check(self, tick: int, kimg: float, net: nn.Module, spec: dict[str, Any]) -> TickCheck | None:
        if tick % self.hc.every_ticks:
            return None
        start = time.perf_counter()
        if self.own_labels and spec.get("cluster_prior") is not None:  # as generate draws them (a learned prior)
            self.draw_labels = stratified_labels(spec["cluster_prior"], self.n)
        self._prepare()
        assert self.extractor is not None and self.real is not None and self.floor is not None
        fake = self._sample(net)
        feats, logits = self.extractor.features_and_logits(fake)
        h = measure(self.real, self._real_y(), feats, self.labels, logits if self.conditional else None)
        s = self.state
        warnings = collapse_warnings(
            h, s.get("peak_recall", 0.0), s.get("peak_recall_tick", 0), tuple(self.train.class_names),
            floor_recall=self.floor.recall, progress=kimg / self.total_kimg if self.total_kimg > 0 else 0.0,
            best_fid=s.get("best_fid", math.nan), best_fid_tick=s.get("best_fid_tick", 0), floor_fid=self.floor.fid,
        )
        if h.recall > s.get("peak_recall", 0.0):
            s["peak_recall"], s["peak_recall_tick"] = h.recall, tick
        if math.isfinite(h.fid) and h.fid < s.get("best_fid", math.inf):
            s["best_fid"], s["best_fid_tick"] = h.fid, tick
        improved = self._improves(h, tick, kimg)
        record: dict[str, Any] = {
            "type": "health",
            "tick": tick,
            "kimg": kimg,
            "n": self.n,
            "extractor": self.extractor.name,
            "extractor_hash": self.extractor.short_hash,
        }
        for key, value in asdict(h).items():
            if value is not None:
                record[key] = value if not isinstance(value, float) or math.isfinite(value) else None
        for key, value in asdict(self.floor).items():
            if isinstance(value, float) and math.isfinite(value):
                record[f"{key}_floor"] = value
        record.update(collapse=bool(warnings), warnings=warnings, seconds=round(time.perf_counter() - start, 3))
        if self.hc.keep_best != "off":
            record.update(keep_best=self.hc.keep_best, best=improved)
        return TickCheck(record, self._line(tick, kimg, h, improved, warnings), improved, warnings)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {k: (int(v) if k.endswith("tick") else float(v)) for k, v in state.items()}

    def summary(self) -> dict[str, Any]:
        s = self.state
        out: dict[str, Any] = {"every_ticks": self.hc.every_ticks, "n": self.n}
        if "best_tick" in s:
            out.update(
                keep_best=self.hc.keep_best,
                best_value=s["best_value"],
                best_tick=s["best_tick"],
                best_kimg=s["best_kimg"],
            )
        return out

    # ---- pieces -------------------------------------------------------------------------------------------

    def _improves(self, h: Health, tick: int, kimg: float) -> bool:
        metric = self.hc.keep_best
        if metric == "off":
            return False
        value = getattr(h, metric)
        if value is None or not math.isfinite(value):
            return False
        best = self.state.get("best_value")
        if best is not None and not (value > best if HIGHER_IS_BETTER[metric] else value < best):
            return False  # ties keep the earlier generator
        self.state.update(best_value=float(value), best_tick=tick, best_kimg=kimg)
        return True

    def _real_y(self) -> torch.Tensor | None:
        return self.train.y[self.real_idx] if self.conditional and self.train.y is not None else None

    def _prepare(self) -> None:
        """The extractor and the real side, once per process (the domain net is cached on disk by ganforge)."""
        if self.extractor is not None:
            return
        name = "domain" if self.train.kind == "image" else "raw"
        self.extractor = build_extractor(name, self.train, self.test, device=self.device)
        self.real = self.extractor.features_and_logits(self.train.x[self.real_idx])[0]
        floor_x = self.test.x[self.floor_idx]
        floor_feats, floor_logits = self.extractor.features_and_logits(floor_x)
        floor_y = self.test.y[self.floor_idx] if self.conditional and self.test.y is not None else None
        self.floor = measure(
            self.real, self._real_y(), floor_feats, floor_y, floor_logits if self.conditional else None
        )

    @torch.no_grad()
    def _sample(self, net: nn.Module) -> torch.Tensor:
        if self.z is None:
            gen = torch.Generator().manual_seed(self.z_seed)
            self.z = torch.randn(self.n, net.z_dim, generator=gen)
            self.noise_seeds = draw_noise_seeds(net, self.n, gen)  # per-sample noise maps, as evaluate samples
        device = next(net.parameters()).device
        was_training = net.training
        net.eval()  # BN uses running statistics, no dropout, no RNG consumed: the training state is left alone
        try:
            out = []
            for i in range(0, self.n, 500):
                c = self.draw_labels[i : i + 500].to(device) if self.draw_labels is not None else None
                noise = {} if self.noise_seeds is None else {"noise_seeds": self.noise_seeds[i : i + 500]}
                out.append(net(self.z[i : i + 500].to(device), c, **noise).float().cpu())
        finally:
            net.train(was_training)
        return torch.cat(out)

    def _line(self, tick: int, kimg: float, h: Health, improved: bool, warnings: list[str]) -> str:
        f = self.floor
        assert f is not None
        parts = [
            f"health {tick:<4d}",
            f"kimg {kimg:.1f}",
            f"recall {h.recall:.3f} (real {f.recall:.3f})",
            f"coverage {h.coverage:.3f} ({f.coverage:.3f})",
            f"fid {h.fid:.3g} ({f.fid:.3g})",
            f"diversity {h.diversity:.2f}",
        ]
        if h.class_acc is not None:
            parts.append(
                f"class acc {h.class_acc:.3f} ({f.class_acc:.3f})"
                if f.class_acc is not None
                else f"class acc {h.class_acc:.3f}"
            )
        if improved:
            parts.append(f"best {self.hc.keep_best}: kept in best/")
        line = "  ".join(parts)
        for w in warnings:
            line += f"\nWARNING collapse at tick {tick} ({kimg:.1f} kimg): {w}"
        return line


def build_monitor(
    cfg: Config, family: Any, train: Dataset, sampled: nn.Module, device: torch.device | str = "cpu"
) -> HealthMonitor | None:
    """The run's health monitor (None when ``health.every_ticks`` is 0); refuses what it cannot check, before
    anything is written. ``sampled``: a freshly built copy of the network generate samples from."""
    hc = cfg.health
    if hc.every_ticks == 0:
        return None
    if not hasattr(sampled, "z_dim"):
        raise ConfigError(
            f"health checks sample a generator from noise, and variant {cfg.variant!r} samples from "
            "something else. Set health.every_ticks=0."
        )
    conditional = bool(family.needs_labels)
    if hc.keep_best == "class_acc" and not (conditional and train.labelled and train.kind == "image"):
        raise ConfigError(
            "health.keep_best=class_acc needs a conditional variant on labelled images (it is the "
            "domain classifier's accuracy on samples of each class). Use fid, recall or coverage."
        )
    test = load_dataset(cfg.data, "test")
    if len(test) < K + 1 or len(train) < K + 1:
        raise ConfigError(
            f"health checks need at least {K + 1} real training and test samples; this data has "
            f"{len(train)} and {len(test)}. Set health.every_ticks=0."
        )
    return HealthMonitor(cfg, train, test, conditional, device, own_labels=family.own_labels(cfg))


__all__ = ["Health", "HealthMonitor", "build_monitor", "collapse_warnings", "diversity", "measure", "spread"]
