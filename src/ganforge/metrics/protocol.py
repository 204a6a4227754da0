"""Metric protocols: what a number means, recorded next to the number.

A metric value is only comparable to another computed the same way: same feature extractor (and
its weights), same preprocessing, same sample counts, same reference split, same metric parameters.
Each value therefore carries a ``protocol`` (those facts, flat) and a ``protocol_id``: a SHA-256 of
everything in the protocol that changes what the number estimates. Two deliberate exclusions from
the id, both still recorded in the protocol:

- ``seed``: another seed gives another draw of the same estimate, not another quantity (tables
  average over training seeds anyway);
- ``ganforge_version``: a version bump that does not touch the metrics must not split tables;
  ``protocol_version`` is bumped instead whenever the metric code changes what it computes.
- ``extractor_test_accuracy`` (and ``judge_test_accuracy``, ``class_acc``'s classifier) follows from the
  extractor's (the judge's) hash; it is there for the reader.

``METRICS`` maps a metric name to a ``MetricSpec``: the data kinds it applies to, what it needs
(a conditional generator, labels, a class head) and its ``compute(ctx) -> Outcome`` function. The
``EvalContext`` hands a metric the samples and features it needs, computing each once per evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

import ganforge
from ganforge.data.base import Dataset
from ganforge.metrics.features import FeatureSet, extract, sha256_json, split_features
from ganforge.registry import Registry
from ganforge.training.distributed import World

PROTOCOL_VERSION = "ganforge-eval/1"
NOT_IN_ID = ("seed", "ganforge_version", "extractor_test_accuracy", "judge_test_accuracy")

Requirement = Literal["conditional", "labels", "logits", "curve", "modes", "masks", "vgg16"]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # "bootstrap-basic(n=20)", "subsets(m=1000, n=100)", "wilson", ...
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "method": self.method, "level": self.level}


@dataclass
class Outcome:
    """What a metric computes, before the protocol is attached."""

    value: float
    ci: Interval | None = None
    floor: float | None = None  # the same metric on real data vs the reference (real-vs-real)
    params: dict[str, Any] = field(default_factory=dict)  # metric parameters that belong in the protocol
    flagged: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    n_generated: int | None = None  # override the context's n (e.g. per-class or CAS sample counts)
    n_reference: int | None = None
    reference_split: str | None = None


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float
    ci: Interval | None
    floor: float | None
    protocol: dict[str, Any]
    protocol_id: str
    higher_is_better: bool | None = None
    flagged: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    display_scale: float = 1.0  # tables print value x display_scale (KID: x 10^3); the record keeps the raw value

    def to_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"name": self.name, "value": _finite(self.value),
                               "ci": self.ci.to_dict() if self.ci else None, "floor": _finite(self.floor),
                               "higher_is_better": self.higher_is_better}
        if self.flagged is not None:
            rec["flagged"] = self.flagged
        if self.display_scale != 1.0:
            rec["display_scale"] = self.display_scale
        rec.update({"protocol_id": self.protocol_id, "protocol": self.protocol, "details": self.details})
        return rec


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def scale_label(scale: float) -> str:
    """1000 -> "×10³": the unit a scaled column or value is printed in ("" when unscaled)."""
    if scale == 1.0:
        return ""
    exp = round(math.log10(scale))
    if not math.isclose(10.0**exp, scale):
        return f"×{scale:g}"
    sup = str(exp).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"×10{sup}"


def protocol_id(protocol: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in protocol.items() if k not in NOT_IN_ID})[:16]


# ----------------------------------------------------------------------------------------------
# the evaluation context


SampleFn = Callable[[int, int, "torch.Tensor | None"], "tuple[torch.Tensor, torch.Tensor | None]"]


@dataclass
class EvalContext:
    """The inputs of one evaluation; samples and features are computed on first use and kept."""

    train: Dataset
    test: Dataset
    extractor: Any  # a FeatureExtractor
    sample: SampleFn  # (n, seed, labels or None) -> (x [n, ...], labels [n] or None)
    conditional: bool
    num_classes: int
    n: int
    seed: int
    n_boot: int = 20  # bootstrap replicates for intervals (0: skip the bootstrap intervals, e.g. during training)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    run_dir: Path | None = None  # where pictures go (None: no pictures)
    feature_batch: int = 500
    log: Callable[[str], None] = print
    shared: dict[str, Any] = field(default_factory=dict, repr=False)  # real-data results, reusable across evals
    weights: dict[str, str] = field(default_factory=dict)  # pretrained files given by path: {"vgg16": PATH}
    world: World = field(default_factory=World)  # torchrun's ranks: samples and features are split over them
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)  # generated-data results of this eval

    @property
    def kind(self) -> str:
        return self.train.kind

    @property
    def reference_split(self) -> str:
        """Images: generated vs the training split, floor = test vs train. Points: vs a fresh sample (test)."""
        return "train" if self.kind == "image" else "test"

    @property
    def floor_split(self) -> str:
        return "test" if self.reference_split == "train" else "train"

    def split(self, name: str) -> Dataset:
        return self.train if name == "train" else self.test

    @property
    def reference(self) -> Dataset:
        return self.split(self.reference_split)

    @property
    def floor_data(self) -> Dataset:
        return self.split(self.floor_split)

    def has_weights(self, name: str) -> bool:
        """Whether the pretrained file ``name`` (``metrics.weights``) is at hand: path given, env var or cache."""
        from ganforge.metrics.weights import find_weights

        return find_weights(name, self.weights.get(name)) is not None

    def memo(self, key: str, fn: Callable[[], Any]) -> Any:
        """Compute once per evaluation (anything that depends on the generated samples)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def real_memo(self, key: str, fn: Callable[[], Any]) -> Any:
        """Compute once per data + extractor (real-vs-real floors, real features): kept across evaluations."""
        key = f"{self.extractor.identity}|{key}"
        if key not in self.shared:
            self.shared[key] = fn()
        return self.shared[key]

    def fake(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The n generated samples. Conditional runs: balanced labels (n/K of each class, shuffled by seed)."""

        def draw() -> tuple[torch.Tensor, torch.Tensor | None]:
            labels = None
            if self.conditional:
                gen = torch.Generator().manual_seed(self.seed + 7)
                labels = (torch.arange(self.n) % self.num_classes)[torch.randperm(self.n, generator=gen)]
            return self.sample(self.n, self.seed, labels)

        return self.memo("fake", draw)

    def fake_features(self) -> FeatureSet:
        return self.memo("fake_features",
                         lambda: extract(self.extractor, self.fake()[0], self.feature_batch, self.world))

    def real_features(self, split: str) -> FeatureSet:
        return self.real_memo(f"features:{split}",
                         lambda: split_features(self.extractor, self.split(split), self.feature_batch,
                                                     world=self.world))

    def base_protocol(self, metric: str) -> dict[str, Any]:
        ex = self.extractor
        extra = {}
        if ex.info.get("file_sha256"):  # a network loaded from a file (TorchScript): its full digest
            extra["extractor_file_sha256"] = ex.info["file_sha256"]
        return {**extra,
            "metric": metric, "protocol_version": PROTOCOL_VERSION,
            "extractor": ex.name, "extractor_hash": ex.short_hash,
            "extractor_test_accuracy": ex.info.get("test_accuracy"), "preprocessing": ex.preprocessing,
            "dataset": self.train.name, "n_generated": self.n, "reference_split": self.reference_split,
            "n_reference": len(self.reference), "reference_fingerprint": self.reference.fingerprint()[:16],
            "floor_split": self.floor_split, "n_floor": len(self.floor_data), "seed": self.seed,
            "ganforge_version": ganforge.__version__,
        }


# ----------------------------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class MetricSpec:
    name: str
    compute: Callable[[EvalContext], Outcome]
    kinds: tuple[str, ...]  # data kinds it applies to: "image", "points"
    requires: tuple[Requirement, ...] = ()
    cheap: bool = False  # part of the periodic (during training) default set
    default: bool = True  # part of `ganforge evaluate`'s default set (when applicable)
    higher_is_better: bool | None = None
    help: str = ""
    order: int = 0  # registration order: the order of tables and eval.json
    display_scale: float = 1.0  # how papers print it: KID as KID x 10^3 (values are stored unscaled)

    def offered(self, ctx: EvalContext) -> bool:
        """Whether the metric is about this run's kind of data at all (its data kinds; paired data for mask
        metrics). An offered metric that cannot run is reported as skipped, with ``missing``'s reason."""
        return (ctx.kind in self.kinds and ("masks" not in self.requires or bool(ctx.train.mask_channels))
                and ("vgg16" not in self.requires or ctx.has_weights("vgg16")))  # asked for: `missing` says how

    @property
    def samples_by_label(self) -> bool:
        """Whether it needs a conditional generator: known from the variant alone, before anything trains."""
        return "conditional" in self.requires

    def missing(self, ctx: EvalContext) -> str | None:
        """Why this metric cannot run on this evaluation (None when it can)."""
        if ctx.kind not in self.kinds:
            return f"it is for {' and '.join(self.kinds)} data, and this run's data is {ctx.kind}"
        if self.samples_by_label and not ctx.conditional:
            return "it needs a conditional generator (sampling by label), and this run is unconditional"
        if "labels" in self.requires and not (ctx.train.labelled and ctx.test.y is not None):
            return "it needs labelled data, and this dataset has no labels"
        if "logits" in self.requires and not ctx.extractor.has_logits:
            return f"it needs an extractor with a class head, and {ctx.extractor.name!r} has none here"
        if "curve" in self.requires and "curve" not in ctx.train.meta:
            return f"it is for the curve datasets (sine, parametric-curve), not {ctx.train.name!r}"
        if "modes" in self.requires and "modes" not in ctx.train.meta:
            return f"it is for the Gaussian-mixture datasets (ring8, grid25), not {ctx.train.name!r}"
        if "masks" in self.requires and not ctx.train.mask_channels:
            return f"it is for paired image + segmentation mask data, and {ctx.train.name!r} has no masks"
        if "vgg16" in self.requires and not ctx.has_weights("vgg16"):
            return ("it needs the VGG16 LPIPS network: run `ganforge weights fetch vgg16` once, or pass "
                    "--lpips-weights PATH (or set $GANFORGE_VGG16_WEIGHTS)")
        return None

    def run(self, ctx: EvalContext) -> MetricValue:
        out = self.compute(ctx)
        protocol = ctx.base_protocol(self.name)
        for key, attr in (("n_generated", out.n_generated), ("n_reference", out.n_reference),
                          ("reference_split", out.reference_split)):
            if attr is not None:
                protocol[key] = attr
        protocol.update(out.params)
        return MetricValue(self.name, float(out.value), out.ci, out.floor, protocol, protocol_id(protocol),
                           self.higher_is_better, out.flagged, out.details, self.display_scale)


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(
    name: str, *, kinds: tuple[str, ...], help: str, requires: tuple[Requirement, ...] = (), cheap: bool = False,
    default: bool = True, higher_is_better: bool | None = None, display_scale: float = 1.0,
) -> Callable[[Callable[[EvalContext], Outcome]], Callable[[EvalContext], Outcome]]:
    def decorator(fn: Callable[[EvalContext], Outcome]) -> Callable[[EvalContext], Outcome]:
        spec = MetricSpec(name, fn, kinds, requires, cheap, default, higher_is_better, help, order=len(METRICS),
                          display_scale=display_scale)
        METRICS.add(name, spec, help=help)
        return fn

    return decorator


# ----------------------------------------------------------------------------------------------
# small interval helpers shared by the metric modules


def wilson(successes: float, n: int, z: float = 1.959964) -> Interval:
    """Wilson score interval of a proportion (Wilson 1927): good coverage even near 0 and 1."""
    if n <= 0:
        return Interval(math.nan, math.nan, "wilson")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = centre - half, centre + half
    low, high = (0.0 if low < 1e-12 else low), (1.0 if high > 1 - 1e-12 else high)  # round-off at p = 0 or 1
    return Interval(low, high, "wilson")


def normal_mean(mean: float, std: float, n: int, label: str, z: float = 1.959964) -> Interval:
    half = z * std / math.sqrt(max(n, 1))
    return Interval(mean - half, mean + half, label)


def from_ci(ci: Any, label: str | None = None) -> Interval:
    """``bootstrap.ConfidenceInterval`` -> Interval, with the replicate count in the method."""
    method = label or f"{ci.method}(n={ci.n_boot})"
    return Interval(float(ci.low), float(ci.high), method, 1 - float(ci.alpha))
