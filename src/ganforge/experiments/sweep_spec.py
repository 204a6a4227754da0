"""The sweep file: reading and checking a sweep YAML into a plan of runs (``load_sweep``).

A sweep file::

    name: curve-ladder
    description: the noisy-curve ablation ladder, 3 seeds
    base: parametric-curve            # preset name or YAML path (relative to the sweep file)
    set: {train.kimg: 20}             # overrides applied to every run
    seeds: [0, 1, 2]                  # or a count: 3 -> 0, 1, 2
    list:                             # one entry per configuration ...
      - {label: plain}
      - {label: leaky-dropout, preset: parametric-curve-leaky-dropout}
      - {label: wide, set: {model.g_hidden: [64, 64]}}
    grid: {objective.loss: [bce, hinge]}   # ... and/or a cartesian product (crossed with the list)
    evaluate: {metrics: [fid], n: 1000}   # generator: best -> evaluate RUN/best/ (needs health.keep_best)

Every run's config is resolved and checked (``load_config`` plus a dry ``prepare``) before any run
starts, so a typo anywhere fails at once with the nearest valid name. Running the plan is
``ganforge.experiments.sweep``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ganforge.config import (
    Config,
    describe_layer,
    parse_override,
    read_layers,
    resolve_source,
    total_kimg,
)
from ganforge.errors import ConfigError, GanforgeError
from ganforge.presets import config_from_layers
from ganforge.registry import closest
from ganforge.training.monitor import BEST_DIR
from ganforge.training.rundir import EVAL, EVAL_FULL_DATA

TOP_KEYS = ("name", "description", "base", "set", "seeds", "list", "grid", "evaluate")
ENTRY_KEYS = ("label", "preset", "set")
EVAL_KEYS = ("metrics", "n", "extractor", "generator", "full_data")


@dataclass(frozen=True)
class EvalSpec:
    metrics: tuple[str, ...] = ()  # () : the dataset kind's default set
    n: int | None = None  # generated samples per metric (None: the evaluator's default)
    extractor: str | None = None
    generator: Literal["final", "best"] = "final"  # best: RUN/best/, the generator health.keep_best kept
    full_data: bool = False  # data.limit runs measured against the whole training split (eval-full-data.json)

    @property
    def eval_file(self) -> str:
        """The file the sweep writes and its table reads in the evaluated folder."""
        return EVAL_FULL_DATA if self.full_data else EVAL

    def target(self, run_dir: Path) -> Path:
        """The generator folder to evaluate, and whose eval.json the table reads."""
        return run_dir / BEST_DIR if self.generator == "best" else run_dir


@dataclass(frozen=True)
class PlannedRun:
    label: str  # the configuration's label (a table row)
    seed: int
    slug: str  # label made safe as a folder name
    source: str  # preset name or YAML path the config is built from
    overrides: tuple[str, ...]  # human-readable key=value list, for plan.json
    config: dict[str, Any] = field(repr=False)  # the resolved config
    target_images: int = 0  # the run is complete when summary.json reports this many images
    # evaluate.metrics that apply to this run (an unconditional arm of a mixed sweep leaves out the metrics that
    # sample by label), and {metric: why} for those left out; () with evaluate.metrics empty: the default set
    eval_metrics: tuple[str, ...] = ()
    eval_skipped: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.slug}-seed{self.seed}"

    def run_dir(self, out: Path) -> Path:
        return out / self.slug / f"seed-{self.seed}"


@dataclass
class Sweep:
    name: str
    description: str
    runs: list[PlannedRun]
    labels: list[str]  # configuration labels, in file order
    evaluate: EvalSpec | None
    source_text: str  # the sweep file as given


def _check_keys(data: dict[str, Any], valid: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in valid:
            near = closest(str(key), list(valid))
            hint = f" Did you mean {near!r}?" if near else ""
            raise ConfigError(f"unknown key {key!r} in {where}.{hint} Valid keys: {', '.join(valid)}.")


def _deep_merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """Plain nested merge (config.merge's kimg/epochs rule is applied later, when layers are resolved)."""
    out = dict(base)
    for key, value in layer.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _layer(mapping: Any, where: str) -> dict[str, Any]:
    """``{train.kimg: 20, model: {z_dim: 3}}`` -> a nested override layer (dotted keys expanded)."""
    if mapping is None:
        return {}
    if isinstance(mapping, list):  # ["train.kimg=20", ...]
        out: dict[str, Any] = {}
        for text in mapping:
            out = _deep_merge(out, parse_override(str(text)))
        return out
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where} must map config keys to values, e.g. {{train.kimg: 20}}; got {mapping!r}")
    out = {}
    for key, value in mapping.items():
        node: dict[str, Any] = {}
        parts = str(key).split(".")
        cur = node
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = value
        out = _deep_merge(out, node)
    return out


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", label).strip("-.") or "run"


def _short(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def load_sweep(path: Path | str, cli_overrides: tuple[str, ...] = (), validate_data: bool = True) -> Sweep:
    """Parse and check a sweep file; resolve every run's config. Raises ConfigError before anything runs."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"sweep file {str(path)!r} does not exist. Shipped sweeps are in sweeps/.") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"sweep file {str(path)!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"sweep file {str(path)!r} must hold a mapping (name, base, set, seeds, list/grid, ...).")
    _check_keys(data, TOP_KEYS, "the sweep file")
    name = str(data.get("name") or path.stem)
    base = data.get("base")

    seeds_raw = data.get("seeds", [0])
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        seeds_raw = list(range(seeds_raw))
    if not isinstance(seeds_raw, list) or not seeds_raw or not all(isinstance(s, int) for s in seeds_raw):
        raise ConfigError(f"seeds must be a list of integers (or a count), e.g. seeds: [0, 1, 2]; got {seeds_raw!r}")
    if len(set(seeds_raw)) != len(seeds_raw):
        raise ConfigError(f"seeds {seeds_raw} repeat a seed; each seed must appear once.")
    seeds = [int(s) for s in seeds_raw]

    common = _layer(data.get("set"), "set")
    cli = {}
    for text_override in cli_overrides:
        cli = _deep_merge(cli, parse_override(text_override))

    entries = data.get("list")
    if entries is None:
        entries = [{}]
    if not isinstance(entries, list) or not entries:
        raise ConfigError("list must be a non-empty list of configurations, e.g. - {label: plain, preset: sine}")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError("grid must map config keys to lists of values, e.g. grid: {model.z_dim: [2, 3]}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid key {key!r} must have a non-empty list of values, e.g. [1, 2, 3]")
    grid_keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in grid_keys))) if grid_keys else [()]

    evaluate = parse_eval_spec(data.get("evaluate"))
    if data.get("evaluate") is not None and validate_data:
        _check_metrics(evaluate)

    configs: list[tuple[str, str, dict[str, Any], list[str]]] = []  # label, source, layer, descr
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"list item {i + 1} must be a mapping like {{label: plain, preset: sine}}; got {entry!r}")
        plain = {k: v for k, v in entry.items() if "." not in str(k)}
        _check_keys(plain, ENTRY_KEYS, f"list item {i + 1}")
        dotted = {k: v for k, v in entry.items() if "." in str(k)}  # shorthand: {label: x, model.z_dim: 3}
        entry_layer = _deep_merge(_layer(entry.get("set"), f"list item {i + 1} set"),
                                  _layer(dotted, f"list item {i + 1}"))
        source = entry.get("preset") or base
        if not source:
            raise ConfigError(f"list item {i + 1} names no preset and the sweep has no base; add base: PRESET.")
        source = _resolve_relative(str(source), path.parent)
        for combo in combos:
            grid_layer = _layer(dict(zip(grid_keys, combo)), "grid")
            parts = [str(entry["label"])] if entry.get("label") is not None else []
            parts += [f"{k.split('.')[-1]}={_short(v)}" for k, v in zip(grid_keys, combo)]
            if not parts:
                parts = [Path(source).stem if source.endswith((".yaml", ".yml")) else source]
            layer = _deep_merge(entry_layer, grid_layer)
            configs.append((" ".join(parts), source, layer, describe_layer(entry_layer) + describe_layer(grid_layer)))

    labels = [c[0] for c in configs]
    dup = sorted({label for label in labels if labels.count(label) > 1})
    if dup:
        raise ConfigError(f"configuration labels repeat: {', '.join(dup)}. Give each list item its own label.")
    slugs = [_slug(label) for label in labels]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(f"labels {labels} collide as folder names {slugs}; make them differ in letters or digits.")

    runs: list[PlannedRun] = []
    for (label, source, layer, descr), slug in zip(configs, slugs):
        for where, lay in (("set", common), (label, layer), ("--set", cli)):
            if isinstance(lay.get("train"), dict) and "seed" in lay["train"]:
                raise ConfigError(f"train.seed is set in {where}; the sweep sets it from seeds: [...]. Remove it.")
        n_train: int | None = None
        eval_metrics: tuple[tuple[str, ...], tuple[tuple[str, str], ...]] = ((), ())
        for seed in seeds:
            layers = read_layers(resolve_source(source)) + [common, layer, cli, {"train": {"seed": seed}}]
            try:
                cfg = config_from_layers(layers)
            except ConfigError as e:
                raise ConfigError(f"configuration {label!r} (seed {seed}): {e}") from None
            if n_train is None:  # the first seed: what the seeds share (data, variant) is checked once
                n_train = _check_runnable(cfg, label) if validate_data else 0
                if evaluate is not None:
                    eval_metrics = _metrics_for(evaluate, cfg, label)
            target = int(round(total_kimg(cfg, n_train) * 1000)) if (cfg.train.kimg or n_train) else 0
            overrides = tuple(describe_layer(common) + descr + describe_layer(cli) + [f"train.seed={seed}"])
            if evaluate is not None and evaluate.generator == "best" and cfg.health.keep_best == "off":
                raise ConfigError(f"configuration {label!r}: evaluate.generator=best reads RUN/best/, which only "
                                  f"health.keep_best writes; add health.keep_best: fid (and health.every_ticks) to set")
            if evaluate is not None and evaluate.full_data and cfg.data.limit is None:
                raise ConfigError(f"configuration {label!r}: evaluate.full_data measures a data.limit run against the "
                                  f"whole training split, and this one has no data.limit; set data.limit (a grid over "
                                  f"it) or drop evaluate.full_data")
            runs.append(PlannedRun(label, seed, slug, source, overrides, cfg.to_dict(), target, *eval_metrics))
    # Seed-major order: every configuration's first seed before any second seed, so an interrupted
    # sweep already has a complete (one-seed) comparison.
    runs.sort(key=lambda r: (seeds.index(r.seed), labels.index(r.label)))
    return Sweep(name, str(data.get("description") or ""), runs, labels, evaluate, text)


def _resolve_relative(source: str, folder: Path) -> str:
    if source.endswith((".yaml", ".yml")) and not Path(source).is_absolute() and (folder / source).is_file():
        return str(folder / source)
    return source


def parse_eval_spec(raw: Any) -> EvalSpec | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return EvalSpec()
    if not isinstance(raw, dict):
        raise ConfigError(f"evaluate must be a mapping like {{metrics: [fid], n: 1000}}; got {raw!r}")
    _check_keys(raw, EVAL_KEYS, "evaluate")
    metrics = raw.get("metrics") or ()
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    n = raw.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 2):
        raise ConfigError(f"evaluate.n must be an integer >= 2; got {n!r}")
    generator = raw.get("generator", "final")
    if generator not in ("final", "best"):
        raise ConfigError(f"evaluate.generator must be final (the last tick's) or best (RUN/best/, kept by "
                          f"health.keep_best); got {generator!r}")
    full_data = raw.get("full_data", False)
    if not isinstance(full_data, bool):
        raise ConfigError(f"evaluate.full_data must be true or false; got {full_data!r}")
    return EvalSpec(tuple(str(m) for m in metrics), n, raw.get("extractor"), generator, full_data)


def _check_metrics(spec: EvalSpec | None) -> None:
    if spec is None:
        return
    try:
        from ganforge.metrics import EXTRACTORS, METRICS
    except ImportError:
        raise ConfigError("this sweep asks for evaluation, but ganforge.metrics is not installed here.") from None
    for m in spec.metrics:
        METRICS.get(m)  # ConfigError naming the closest metric
    if spec.extractor:
        EXTRACTORS.get(spec.extractor)


def _metrics_for(spec: EvalSpec, cfg: Config, label: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The asked-for metrics this configuration can be measured by, and (metric, reason) for the others.

    One sweep often compares conditional and unconditional variants; a metric that samples by label (class_acc,
    CAS, per-class FID) is measured on the arms that have labels and left out, with the reason, on the others.
    A configuration that none of the asked-for metrics applies to is refused before anything trains."""
    if not spec.metrics:
        return (), ()
    from ganforge.metrics import METRICS
    from ganforge.variants import VARIANTS

    conditional = VARIANTS.get(cfg.variant).needs_labels and not cfg.data.clusters  # clusters are not classes
    keep, skipped = [], []
    for name in spec.metrics:
        if METRICS.get(name).samples_by_label and not conditional:
            why = ("its labels are k-means clusters (data.clusters)" if cfg.data.clusters
                   else f"variant {cfg.variant!r} is unconditional")
            skipped.append((name, f"it samples by label and {why}"))
        else:
            keep.append(name)
    if not keep:
        raise ConfigError(f"configuration {label!r}: none of evaluate.metrics applies to it "
                          f"({'; '.join(f'{m}: {why}' for m, why in skipped)}); add a metric such as fid")
    return tuple(keep), tuple(skipped)


def _check_runnable(cfg: Config, label: str) -> int:
    """Dataset, variant and model shapes, as `ganforge train` checks them; returns the training-set size."""
    from ganforge.training.setup import prepare

    try:
        return len(prepare(cfg).train_set)
    except GanforgeError as e:
        raise type(e)(f"configuration {label!r}: {e}") from None
