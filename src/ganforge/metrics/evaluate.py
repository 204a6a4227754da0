"""Evaluate a trained run: generated samples against real data, every number with its protocol.

``evaluate_run(run_dir)`` loads the exported generator (the EMA generator when the run kept one),
reloads the real train/test splits from the run's own data config, builds the feature extractor
(``domain`` by default: trained on the run's training split, cached), computes the requested
metrics (default: every registered metric that applies to this data and generator), and writes

- ``RUN_DIR/eval.json``: one record per metric: value, 95% interval, real-vs-real floor,
  protocol and protocol id (atomically, replacing the previous evaluation);
- one ``{"type": "eval", ...}`` line appended to ``RUN_DIR/metrics.jsonl`` (the run's history);
- ``RUN_DIR/eval/closest_pairs*.png``: the memorisation audit's closest generated/training pairs.

``periodic_eval_hook(cfg)`` is the training-time variant (``eval.every_ticks``): a cheap metric set,
no bootstrap, the extractor and real features kept between ticks, a history line per evaluation.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import ganforge
from ganforge.config import Config
from ganforge.data import load_dataset
from ganforge.errors import ConfigError, GanforgeError, RunDirError
from ganforge.metrics.extractors import FeatureExtractor, build_extractor, check_extractor_name, pick_device
from ganforge.metrics.protocol import METRICS, EvalContext, MetricValue
from ganforge.training.distributed import World
from ganforge.training.export import by_label, load_generator
from ganforge.training.lock import acquire
from ganforge.training.rundir import (
    CONFIG,
    EVAL_FULL_DATA,
    append_record,
    atomic_write_json,
    read_config,
)

if TYPE_CHECKING:
    from ganforge.metrics.translation import TwoDomainEval

EVAL_FILE = "eval.json"
EVAL_FORMAT = "ganforge-eval/1"
HISTORY_FILE = "metrics.jsonl"

Log = Callable[[str], None]


@dataclass
class EvalResult:
    run_dir: Path | None
    values: dict[str, MetricValue]  # metric name -> value with interval, floor and protocol
    skipped: dict[str, str]  # metric name -> why it did not apply
    extractor: dict[str, Any]
    dataset: str
    n_generated: int
    seed: int
    kimg: float | None
    generator_sha256: str
    seconds: float
    device: str
    path: Path | None = None  # the eval.json written (None when not written)
    meta: dict[str, Any] = field(default_factory=dict)
    metric_seconds: dict[str, float] = field(default_factory=dict)  # wall time of each metric (benchmarks)

    def __getitem__(self, name: str) -> MetricValue:
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        return name in self.values

    @property
    def flagged(self) -> list[str]:
        return [v.name for v in self.values.values() if v.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": EVAL_FORMAT, "run_dir": str(self.run_dir) if self.run_dir else None, "dataset": self.dataset,
            "generator_sha256": self.generator_sha256, "kimg": self.kimg, "n_generated": self.n_generated,
            "seed": self.seed, "extractor": self.extractor, "seconds": round(self.seconds, 2), "device": self.device,
            "ganforge_version": ganforge.__version__, "torch_version": torch.__version__,
            "python": platform.python_version(), **self.meta,
            "metrics": [v.to_record() for v in self.values.values()], "skipped": self.skipped,
        }

    def history_record(self, source: str = "evaluate", tick: int | None = None) -> dict[str, Any]:
        """One flat line for metrics.jsonl (and TensorBoard): values and floors, with what they were measured on."""
        rec: dict[str, Any] = {"type": "eval", "source": source}
        if tick is not None:
            rec["tick"] = tick
        rec.update({"kimg": self.kimg if self.kimg is not None else 0.0, "n_generated": self.n_generated,
                    "extractor": self.extractor.get("name"), "extractor_hash": self.extractor.get("hash"),
                    "seed": self.seed, "eval_seconds": round(self.seconds, 2)})
        for v in self.values.values():
            rec[v.name] = v.value
            if v.floor is not None:
                rec[f"{v.name}_floor"] = v.floor
            if v.flagged is not None:
                rec[f"{v.name}_flagged"] = v.flagged
        rec["protocol_ids"] = {v.name: v.protocol_id for v in self.values.values()}
        return rec


# ----------------------------------------------------------------------------------------------


class Evaluator:
    """Real data and extractor for one data config; evaluates any number of generators against them.

    Real features and real-vs-real floors are computed once and kept (``shared``), so periodic
    evaluation during training pays for them only at the first evaluation.
    """

    def __init__(self, cfg: Config, extractor: str = "domain", *, extractor_weights: str | None = None,
                 lpips_weights: str | None = None, device: str | torch.device | None = None, log: Log = print,
                 world: World | None = None) -> None:
        self.cfg = cfg = measured_config(cfg)  # a run on k-means clusters is measured against the data's labels
        self.world = world or World()  # torchrun's ranks share the samples and features; rank 0 writes
        self.weights = {"vgg16": lpips_weights} if lpips_weights else {}
        self.log = log
        self.device = pick_device(device)
        self.train = load_dataset(cfg.data, "train")
        self.test = load_dataset(cfg.data, "test")
        if self.train.kind == "points":
            kind = check_extractor_name(extractor)  # a typo still fails with the valid names
            if kind not in ("domain", "raw"):
                raise GanforgeError(f"2D point data is evaluated on raw coordinates; --extractor {extractor} does not "
                                    "apply. Drop --extractor.")
            extractor = "raw"
        if len(self.test) < 2:
            raise GanforgeError(f"the test split of {self.train.name!r} has {len(self.test)} samples; evaluation needs "
                                "held-out real data (raise data.test_fraction).")
        self.extractor: FeatureExtractor = build_extractor(extractor, self.train, self.test, device=self.device,
                                                           weights=extractor_weights, log=log)
        self.shared: dict[str, Any] = {}

    def context(self, sample: Callable, *, conditional: bool, num_classes: int, n: int, seed: int, n_boot: int,
                run_dir: Path | None) -> EvalContext:
        return EvalContext(self.train, self.test, self.extractor, sample, conditional, num_classes, n, seed,
                           n_boot=n_boot, device=self.device, run_dir=run_dir if self.world.main else None,
                           log=self.log, shared=self.shared, weights=self.weights, world=self.world)

    def evaluate(self, gen: Any, *, n: int, metrics: Sequence[str] | None = None, seed: int = 0, n_boot: int = 20,
                 cheap: bool = False, run_dir: Path | None = None) -> EvalResult:
        """Evaluate ``gen`` (a LoadedGenerator or anything with its ``sample`` and facts)."""
        t0 = time.perf_counter()
        if n < 2:
            raise GanforgeError(f"--n must be at least 2 (got {n}); use a few thousand for stable numbers.")
        if tuple(gen.shape) != tuple(self.train.shape):
            raise GanforgeError(f"the generator makes samples of shape {tuple(gen.shape)} but the run's data "
                                f"{self.train.name!r} has {tuple(self.train.shape)}; the data config changed.")

        def sample(count: int, s: int, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
            return gen.sample(count, seed=s, labels=labels, device=self.device, world=self.world)

        ctx = self.context(sample, conditional=by_label(gen), num_classes=int(gen.num_classes), n=n,
                           seed=seed, n_boot=n_boot, run_dir=run_dir)
        names, skipped = resolve_metrics(metrics, ctx, cheap=cheap)
        values: dict[str, MetricValue] = {}
        seconds: dict[str, float] = {}
        for name in names:
            t = time.perf_counter()
            values[name] = METRICS.get(name).run(ctx)
            seconds[name] = time.perf_counter() - t
            self.log(f"  {name}: {values[name].value:.6g} ({seconds[name]:.1f} s)")
        ex = self.extractor
        spec = getattr(gen, "spec", {}) or {}
        return EvalResult(
            run_dir=run_dir, values=values, skipped=skipped,
            extractor={"name": ex.name, "hash": ex.short_hash, "identity": ex.identity,
                       "preprocessing": ex.preprocessing, **ex.info},
            dataset=self.train.name, n_generated=n, seed=seed, kimg=spec.get("kimg"),
            generator_sha256=str(getattr(gen, "sha256", "")), seconds=time.perf_counter() - t0,
            device=str(self.device), meta={"ema": spec.get("ema"), "variant": spec.get("variant")},
            metric_seconds=seconds,
        )


def measured_config(cfg: Config) -> Config:
    """The config whose data a run is measured against: the data's own labels, never k-means clusters, so a
    cluster-conditioned run shares its protocol ids with every other run on that data."""
    return replace(cfg, data=replace(cfg.data, clusters=0)) if cfg.data.clusters else cfg


def resolve_metrics(requested: Sequence[str] | None, ctx: EvalContext, cheap: bool = False) -> tuple[list[str], dict]:
    """Names to compute, and {name: reason} for default metrics that do not apply here.

    Asked-for metrics that cannot run are an error (with the reason); the default set quietly
    leaves them out but lists them in ``skipped``.
    """
    skipped: dict[str, str] = {}
    names: list[str] = []
    if requested:
        for name in requested:
            spec = METRICS.get(name)  # ConfigError with the nearest valid name
            reason = spec.missing(ctx)
            if reason:
                raise GanforgeError(f"metric {name!r} cannot run on this run: {reason}. Drop it from --metrics.")
            if name not in names:
                names.append(name)
    else:
        for entry in METRICS:
            spec = entry.obj
            if not (spec.cheap if cheap else spec.default):
                continue
            reason = spec.missing(ctx)
            if reason is None:
                names.append(spec.name)
            elif spec.offered(ctx):
                skipped[spec.name] = reason
    return sorted(names, key=lambda m: METRICS.get(m).order), skipped


def parse_metric_list(values: Sequence[str] | str | None) -> list[str] | None:
    """``["fid,kid", "precision"]`` or ``"fid,kid"`` -> ``["fid", "kid", "precision"]``; empty -> None."""
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    out = [m.strip() for item in items for m in str(item).split(",") if m.strip()]
    return out or None


def evaluate_run(
    run_dir: Path | str, n: int | None = None, metrics: Sequence[str] | str | None = None, extractor: str | None = None,
    seed: int = 0, *, extractor_weights: str | None = None, lpips_weights: str | None = None,
    device: str | None = None, n_boot: int = 20,
    baseline: str | None = None, full_data: bool = False, write: bool = True, log: Log = print,
    world: World | None = None,
) -> EvalResult:
    """Evaluate the run's exported generator; write eval.json and a metrics.jsonl line (``write=True``).

    n: generated samples (default: the run's eval.n). metrics: names (default: all that apply).
    extractor: a registered extractor (default: the run's eval.extractor, normally ``domain``), optionally
    ``KIND:OPTION`` (``inception:clean``, ``torchscript:PATH``). lpips_weights: the VGG16 LPIPS file.
    baseline: evaluate a reference generator (``ganforge.metrics.baselines``) under the run's protocol
    instead; written to ``eval-baseline-NAME.json`` and ``baseline-NAME/eval/``, never over eval.json.
    full_data: for a run trained on a ``data.limit`` subset, measure against the dataset's whole training split
    with the extractor trained on it (the limited-data protocol of ADA and DiffAugment: the reference is more
    than the few images G saw, so copying them is not rewarded); written to ``eval-full-data.json``.
    world: under ``torchrun`` the ranks split the generated samples and their features; rank 0 alone locks and
    writes, and every rank returns the same values.
    """
    world = world or World()
    write = write and world.main
    from ganforge.metrics.baselines import check_baseline

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {str(run_dir)!r} does not exist; check the path.")
    if baseline is not None:
        check_baseline(baseline)  # before the extractor is built
    # A writer holds the run's lock: evaluating a run that is being trained (or evaluated) is refused.
    with acquire(run_dir, f"ganforge evaluate {run_dir}", log) if write else contextlib.nullcontext():
        return _evaluate_run(run_dir, n, metrics, extractor, seed, extractor_weights, lpips_weights, device, n_boot,
                             baseline, full_data, write, log, world)


def _evaluate_run(run_dir: Path, n: int | None, metrics: Sequence[str] | str | None, extractor: str | None, seed: int,
                  extractor_weights: str | None, lpips_weights: str | None, device: str | None, n_boot: int,
                  baseline: str | None, full_data: bool, write: bool, log: Log, world: World) -> EvalResult:
    from ganforge.metrics.baselines import BASELINES, baseline_generator

    gen = load_generator(run_dir)
    cfg: Config = gen.config
    if cfg.data.clusters:
        log(f"labels were {cfg.data.clusters} k-means clusters (data.clusters): measured as an unconditional "
            f"generator, against {cfg.data.name!r} as it is")
    limit = cfg.data.limit
    if full_data:
        if limit is None:
            raise GanforgeError(f"{str(run_dir)!r} trained on the whole training split (no data.limit); --full-data "
                                "is for runs trained on a subset. Drop --full-data.")
        if gen.spec.get("translation") or gen.spec.get("coupled"):
            raise GanforgeError("--full-data is for single-domain image runs; a translation or CoGAN run measures "
                                "its own splits. Drop --full-data.")
        cfg = replace(cfg, data=replace(cfg.data, limit=None))
        log(f"--full-data: measured against the whole training split, not the run's {limit} training images")
    if gen.spec.get("translation"):  # image-to-image runs: translate the source test split (metrics/translation.py)
        return _evaluate_translation(run_dir, gen, n, metrics, extractor, seed, device, baseline, write, log)
    if gen.spec.get("coupled"):  # CoGAN: pairs from one z each, measured as pairs (metrics/cogan.py)
        return _evaluate_pairs(run_dir, gen, n, metrics, extractor, seed, device, baseline, write, log)
    names = parse_metric_list(metrics)
    for name in names or ():
        METRICS.get(name)  # fail on a typo before any work
    evaluator = Evaluator(cfg, extractor or cfg.eval.extractor, extractor_weights=extractor_weights,
                          lpips_weights=lpips_weights, device=device, log=log, world=world)
    ex = evaluator.extractor
    acc = ex.info.get("test_accuracy")
    log(f"extractor {ex.name} ({ex.short_hash})" + (f", test accuracy {acc:.2%}" if acc is not None else "")
        + (" [cached]" if ex.info.get("cache_hit") else ""))
    out_dir, n = run_dir, n or cfg.eval.n
    if baseline is not None:
        # Under --full-data the replayer replays what G saw (the run's data.limit images), measured against the
        # whole split: the score of a generator that copies its training subset exactly.
        copier = full_data and baseline == "replay"
        seen = load_dataset(gen.config.data, "train") if copier else evaluator.train
        gen = baseline_generator(baseline, gen, seen, seed=seed)
        out_dir = run_dir / (f"baseline-{baseline}" + ("-full-data" if full_data else ""))
        log(f"baseline replay: copies the run's {limit} training images (with replacement), measured against the "
            "whole split" if copier else f"baseline {baseline}: {BASELINES[baseline]}")
        if baseline == "replay" and n > len(seen):
            log(f"note: {n} samples replay {len(seen)} images, so each comes back about {n / len(seen):.0f} times; "
                "copies shrink the generated samples' k-nearest-neighbour radii, which recall uses, so the "
                "replayer's recall reads low; its FID, KID, precision and coverage are not affected this way")
    result = evaluator.evaluate(gen, n=n, metrics=names, seed=seed, n_boot=n_boot, run_dir=out_dir)
    if baseline is not None:
        result.meta["baseline"] = baseline
    if full_data:
        result.meta["full_data"] = True
        result.meta["run_data_limit"] = limit
    if write:
        name, how = EVAL_FILE, "evaluate"
        if baseline is not None:
            name, how = f"eval-baseline-{baseline}.json", f"baseline:{baseline}"
            if full_data:  # eval-full-data-baseline-replay.json (EVAL_FULL_DATA_REPLAY) for the copier
                name, how = f"eval-full-data-baseline-{baseline}.json", f"baseline:{baseline}:full-data"
        elif full_data:
            name, how = EVAL_FULL_DATA, "evaluate:full-data"
        result.path = run_dir / name
        atomic_write_json(result.path, result.to_dict())
        append_history(run_dir, result.history_record(how))
    return result


def _evaluate_translation(run_dir: Path, gen: Any, n: int | None, metrics: Sequence[str] | str | None,
                          extractor: str | None, seed: int, device: str | None, baseline: str | None, write: bool,
                          log: Log) -> EvalResult:
    from ganforge.metrics.translation import evaluate_translation

    if parse_metric_list(metrics):
        raise GanforgeError("a translation run computes its own metric set (fid, kid, ssim, psnr, mae, cycle_error, "
                            "label_accuracy, dice where they apply); drop --metrics.")
    t = evaluate_translation(run_dir, gen, n=n or gen.config.eval.n, seed=seed,
                             extractor=extractor or gen.config.eval.extractor, device=device, baseline=baseline,
                             log=log)
    return _two_domain_result(run_dir, gen, t, "translation", seed, baseline, write)


def _evaluate_pairs(run_dir: Path, gen: Any, n: int | None, metrics: Sequence[str] | str | None,
                    extractor: str | None, seed: int, device: str | None, baseline: str | None, write: bool,
                    log: Log) -> EvalResult:
    from ganforge.metrics.cogan import evaluate_pairs

    if parse_metric_list(metrics) or baseline is not None:
        raise GanforgeError("a CoGAN run computes its own metric set (fid_A, fid_B, label_agreement, pair_ssim where "
                            "they apply); drop --metrics and --baseline (train family.tie_weights=false for the "
                            "untied control).")
    t = evaluate_pairs(run_dir, gen, n=n or gen.config.eval.n, seed=seed,
                       extractor=extractor or gen.config.eval.extractor, device=device, log=log)
    return _two_domain_result(run_dir, gen, t, "coupled", seed, None, write)


def _two_domain_result(run_dir: Path, gen: Any, t: TwoDomainEval, kind: str, seed: int, baseline: str | None,
                       write: bool) -> EvalResult:
    """A translation's or CoGAN's measurements as an EvalResult (``meta[kind]`` True), written when ``write``."""
    spec = gen.spec or {}
    result = EvalResult(
        run_dir=run_dir, values=t.values, skipped=t.skipped, extractor=t.extractor, dataset=gen.config.data.name,
        n_generated=t.n, seed=seed, kimg=spec.get("kimg"), generator_sha256=str(gen.sha256),
        seconds=t.seconds, device=t.device,
        meta={"ema": spec.get("ema"), "variant": spec.get("variant"), kind: True, "domains": t.domains},
    )
    if baseline is not None:
        result.meta["baseline"] = baseline
    if write:
        result.path = run_dir / (EVAL_FILE if baseline is None else f"eval-baseline-{baseline}.json")
        atomic_write_json(result.path, result.to_dict())
        append_history(run_dir, result.history_record("evaluate" if baseline is None else f"baseline:{baseline}"))
    return result


def append_history(run_dir: Path, record: dict[str, Any]) -> None:
    append_record(run_dir, record)


# ----------------------------------------------------------------------------------------------
# during training


def periodic_eval_hook(cfg: Config | None) -> Callable[[int, Path], None] | None:
    """``on_tick`` hook for ``eval.every_ticks``: None when it is 0; cfg None (resume): read config.yaml."""
    if cfg is not None:
        if cfg.eval.every_ticks == 0:
            return None
        _check_eval_config(cfg)
    state: dict[str, Any] = {"cfg": cfg}

    def hook(tick: int, run_dir: Path) -> None:
        if state["cfg"] is None:
            state["cfg"] = _run_config(run_dir)
            _check_eval_config(state["cfg"])
        c: Config = state["cfg"]
        if c.eval.every_ticks == 0 or tick % c.eval.every_ticks:
            return
        from tqdm import tqdm

        if "evaluator" not in state:
            state["evaluator"] = Evaluator(c, c.eval.extractor, log=_quiet)
        gen = load_generator(run_dir)
        result = state["evaluator"].evaluate(gen, n=c.eval.n, metrics=list(c.eval.metrics) or None, seed=0, n_boot=0,
                                             cheap=True, run_dir=None)
        append_history(run_dir, result.history_record("periodic", tick=tick))
        parts = [f"{v.name} {v.value:.4g}" + (f" (floor {v.floor:.3g})" if v.floor is not None else "")
                 for v in result.values.values()]
        tqdm.write(f"eval   tick {tick:<4d} kimg {result.kimg or 0:.1f}  " + "  ".join(parts)
                   + f"  [{result.seconds:.1f} s]")

    return hook


def _quiet(_: str) -> None:
    pass


def _run_config(run_dir: Path) -> Config:
    if not (Path(run_dir) / CONFIG).is_file():
        raise RunDirError(f"{str(run_dir)!r} has no config.yaml; is it a ganforge run directory?")
    return read_config(run_dir)


def _check_eval_config(cfg: Config) -> None:
    for name in cfg.eval.metrics:
        METRICS.get(name)
    check_extractor_name(cfg.eval.extractor)
    if cfg.eval.n < 2:
        raise ConfigError("eval.n must be >= 2")


__all__ = ["EVAL_FILE", "EvalResult", "Evaluator", "evaluate_run", "periodic_eval_hook"]
