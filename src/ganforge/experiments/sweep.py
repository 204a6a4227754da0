"""Multi-seed sweeps: a grid (or list) of configurations x seeds, run in parallel, resumable, tabulated.

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
    evaluate: {metrics: [fid], n: 1000}

Every run's config is resolved and checked (``load_config`` plus a dry ``prepare``) before any run
starts, so a typo anywhere fails at once with the nearest valid name. Layout of the output folder::

    OUT/plan.json                 the planned runs (label, seed, overrides, target length)
    OUT/configs/LABEL-seedS.yaml  the resolved config each run is started from
    OUT/LABEL/seed-S/             the run directories (ordinary ganforge runs)
    OUT/logs/LABEL-seedS.log      each run's console output
    OUT/table.csv, OUT/table.md   mean ± std and a 95% t-interval over seeds, per metric and configuration

Running the same command again continues the sweep: runs that reached their length (and have their
``eval.json`` when evaluation is asked) are skipped, runs killed part-way resume exactly from their
last checkpoint, runs killed before their first tick start over. Runs are separate processes
(``python -m ganforge train``); with ``--jobs N`` each gets cores/N threads so they share the machine.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganforge.config import Config, config_from_layers, parse_override, read_layers, resolve_source, total_kimg
from ganforge.errors import ConfigError, GanforgeError, RunDirError
from ganforge.experiments.compare import config_key, read_eval, read_run
from ganforge.experiments.runner import RESUME_KEYS
from ganforge.registry import closest
from ganforge.reporting.tables import Table, build_table, to_markdown, write_tables
from ganforge.training.checkpoint import atomic_write_json, atomic_write_text

TOP_KEYS = ("name", "description", "base", "set", "seeds", "list", "grid", "evaluate")
ENTRY_KEYS = ("label", "preset", "set")
EVAL_KEYS = ("metrics", "n", "extractor")
PLAN = "plan.json"


# ----------------------------------------------------------------------------------------------
# the sweep file


@dataclass(frozen=True)
class EvalSpec:
    metrics: tuple[str, ...] = ()  # () : the dataset kind's default set
    n: int | None = None  # generated samples per metric (None: the evaluator's default)
    extractor: str | None = None


@dataclass(frozen=True)
class PlannedRun:
    label: str  # the configuration's label (a table row)
    seed: int
    slug: str  # label made safe as a folder name
    source: str  # preset name or YAML path the config is built from
    overrides: tuple[str, ...]  # human-readable key=value list, for plan.json
    config: dict[str, Any] = field(repr=False)  # the resolved config
    target_images: int = 0  # the run is complete when summary.json reports this many images

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
    """Plain nested merge (config._merge's kimg/epochs rule is applied later, when layers are resolved)."""
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


def _describe(layer: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in layer.items():
        if isinstance(v, dict):
            out += _describe(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}={json.dumps(v) if not isinstance(v, str) else v}")
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

    evaluate = _eval_spec(data.get("evaluate"))
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
            configs.append((" ".join(parts), source, layer, _describe(entry_layer) + _describe(grid_layer)))

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
        for seed in seeds:
            layers = read_layers(resolve_source(source)) + [common, layer, cli, {"train": {"seed": seed}}]
            try:
                cfg = config_from_layers(layers)
            except ConfigError as e:
                raise ConfigError(f"configuration {label!r} (seed {seed}): {e}") from None
            if n_train is None:
                n_train = _check_runnable(cfg, label) if validate_data else 0
            target = int(round(total_kimg(cfg, n_train) * 1000)) if (cfg.train.kimg or n_train) else 0
            overrides = tuple(_describe(common) + descr + _describe(cli) + [f"train.seed={seed}"])
            runs.append(PlannedRun(label, seed, slug, source, overrides, cfg.to_dict(), target))
    # Seed-major order: every configuration's first seed before any second seed, so an interrupted
    # sweep already has a complete (one-seed) comparison.
    runs.sort(key=lambda r: (seeds.index(r.seed), labels.index(r.label)))
    return Sweep(name, str(data.get("description") or ""), runs, labels, evaluate, text)


def _resolve_relative(source: str, folder: Path) -> str:
    if source.endswith((".yaml", ".yml")) and not Path(source).is_absolute() and (folder / source).is_file():
        return str(folder / source)
    return source


def _eval_spec(raw: Any) -> EvalSpec | None:
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
    return EvalSpec(tuple(str(m) for m in metrics), n, raw.get("extractor"))


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


def _check_runnable(cfg: Config, label: str) -> int:
    """Dataset, variant and model shapes, as `ganforge train` checks them; returns the training-set size."""
    from ganforge.training.setup import prepare

    try:
        return len(prepare(cfg).train_set)
    except GanforgeError as e:
        raise type(e)(f"configuration {label!r}: {e}") from None


# ----------------------------------------------------------------------------------------------
# running


@dataclass
class JobOutcome:
    run: PlannedRun
    action: str  # "skipped", "trained", "resumed", "restarted", "evaluated"
    ok: bool
    seconds: float = 0.0
    log: Path | None = None
    message: str = ""


@dataclass
class SweepResult:
    out: Path
    table: Table
    outcomes: list[JobOutcome]
    wall_s: float

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]


def run_state(run: PlannedRun, out: Path, evaluate: EvalSpec | None) -> str:
    """What a planned run needs: "done", "evaluate", "resume", "restart" or "new"."""
    run_dir = run.run_dir(out)
    if not run_dir.exists():
        return "new"
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file() or not (run_dir / "checkpoints" / "latest.pt").is_file():
        return "restart"  # killed before its first complete tick (or summary deleted): start again
    try:
        summary = json.loads(summary_path.read_text())
    except json.JSONDecodeError:
        return "restart"
    if int(summary.get("images_seen", 0)) < run.target_images:
        return "resume"
    if evaluate is not None and not _eval_complete(run_dir, evaluate):
        return "evaluate"
    return "done"


def _eval_complete(run_dir: Path, spec: EvalSpec) -> bool:
    records = read_eval(run_dir)
    if not records:
        return False
    names = {r["name"] for r in records}
    return all(m in names for m in spec.metrics)


def _check_existing(sweep: Sweep, out: Path) -> None:
    """An existing run folder must hold the same configuration (up to its length); else nothing starts."""
    if out.exists() and any(out.iterdir()) and not (out / PLAN).is_file():
        raise RunDirError(
            f"{str(out)!r} exists and is not a sweep folder (no {PLAN}); choose another --out (nothing was touched)."
        )
    ignore = set(RESUME_KEYS)
    for run in sweep.runs:
        cfg_path = run.run_dir(out) / "config.yaml"
        if not cfg_path.is_file():
            continue
        existing = yaml.safe_load(cfg_path.read_text()) or {}
        if _without(existing, ignore) != _without(run.config, ignore):
            raise RunDirError(
                f"{str(run.run_dir(out))!r} was trained with a different config than the sweep now asks for "
                f"({run.label!r}, seed {run.seed}). Use a new --out for a changed sweep (nothing was touched)."
            )


def _without(config: dict[str, Any], keys: set[str]) -> str:
    data = json.loads(config_key(config))  # flattened, seed-like keys dropped ...
    data["train.seed"] = config.get("train", {}).get("seed")  # ... but here the seed must match too
    return json.dumps({k: v for k, v in data.items() if k not in keys}, sort_keys=True)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _child_env(threads: int) -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2])  # so `python -m ganforge` works from a source checkout
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _train_cmd(run: PlannedRun, out: Path, state: str) -> list[str]:
    base = [sys.executable, "-m", "ganforge", "train"]
    if state == "resume":
        train = run.config["train"]
        length = f"train.kimg={train['kimg']}" if train.get("kimg") is not None else f"train.epochs={train['epochs']}"
        return base + ["--resume", str(run.run_dir(out)), "--set", length, "--no-progress"]
    return base + [str(out / "configs" / f"{run.name}.yaml"), "--out", str(run.run_dir(out)), "--no-progress"]


def _eval_cmd(run: PlannedRun, out: Path, spec: EvalSpec) -> list[str]:
    cmd = [sys.executable, "-m", "ganforge", "evaluate", str(run.run_dir(out))]
    for m in spec.metrics:
        cmd += ["--metric", m]
    if spec.n is not None:
        cmd += ["--n", str(spec.n)]
    if spec.extractor:
        cmd += ["--extractor", spec.extractor]
    return cmd


class _Jobs:
    """Child processes started by the sweep, so an interrupt can stop exactly those."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()
        self.stopping = False

    def run(self, cmd: list[str], env: dict[str, str], log: Path) -> int:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            with self.lock:
                if self.stopping:
                    return 130
                proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
                self.procs.add(proc)
            try:
                return proc.wait()
            finally:
                with self.lock:
                    self.procs.discard(proc)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        # SIGINT first: the trainer stops cleanly. A child that ignores SIGINT (started from a background
        # shell job) gets SIGTERM; either way its last checkpoint is intact (checkpoints are atomic).
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            for stop in (proc.terminate, proc.kill):
                try:
                    proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    stop()


def run_sweep(
    sweep: Sweep, out: Path | str, *, jobs: int = 1, log: Callable[[str], None] = print,
) -> SweepResult:
    """Run (or continue) every planned run, then write table.csv and table.md. Failed runs are listed
    at the end (the others still run); rerunning the same command retries only what is missing."""
    out = Path(out)
    start = time.perf_counter()
    _check_existing(sweep, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "configs").mkdir(exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    atomic_write_text(out / "sweep.yaml", sweep.source_text)
    atomic_write_json(out / PLAN, {
        "name": sweep.name, "description": sweep.description, "labels": sweep.labels,
        "evaluate": asdict(sweep.evaluate) if sweep.evaluate else None,
        "runs": [{"label": r.label, "seed": r.seed, "run_dir": str(r.run_dir(out).relative_to(out)),
                  "source": r.source, "overrides": list(r.overrides), "target_images": r.target_images}
                 for r in sweep.runs],
    })
    for run in sweep.runs:
        atomic_write_text(out / "configs" / f"{run.name}.yaml", yaml.safe_dump(run.config, sort_keys=False))

    jobs = max(1, jobs)
    threads = max(1, _cores() // jobs)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # a lower limit set by the user is kept
        threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
    env = _child_env(threads)
    states = {run.name: run_state(run, out, sweep.evaluate) for run in sweep.runs}
    todo = [r for r in sweep.runs if states[r.name] != "done"]
    outcomes = [JobOutcome(r, "skipped", True) for r in sweep.runs if states[r.name] == "done"]
    log(f"sweep {sweep.name}: {len(sweep.runs)} runs ({len(sweep.labels)} configurations x "
        f"{len({r.seed for r in sweep.runs})} seeds) in {out}; {len(outcomes)} complete, {len(todo)} to run; "
        f"{jobs} job(s) x {threads} thread(s)")
    print_lock = threading.Lock()
    counter = [len(outcomes)]
    runner = _Jobs()

    def job(run: PlannedRun) -> JobOutcome:
        state = states[run.name]
        logfile = out / "logs" / f"{run.name}.log"
        t0 = time.perf_counter()
        action = {"new": "trained", "restart": "restarted", "resume": "resumed", "evaluate": "evaluated"}[state]
        if state == "restart":
            shutil.rmtree(run.run_dir(out))  # our own folder, never finished a tick: nothing to keep
        if state in ("new", "restart", "resume"):
            rc = runner.run(_train_cmd(run, out, "resume" if state == "resume" else "new"), env, logfile)
            if rc != 0:
                return JobOutcome(run, action, False, time.perf_counter() - t0, logfile, _last_error(logfile, rc))
        if sweep.evaluate is not None:
            rc = runner.run(_eval_cmd(run, out, sweep.evaluate), env, logfile)
            if rc != 0:
                return JobOutcome(run, action, False, time.perf_counter() - t0, logfile,
                                  "evaluation failed: " + _last_error(logfile, rc))
        return JobOutcome(run, action, True, time.perf_counter() - t0, logfile)

    pool = ThreadPoolExecutor(max_workers=jobs)
    previous = _on_sigterm_interrupt()
    try:
        futures = [pool.submit(job, run) for run in todo]
        for fut in as_completed(futures):
            outcome = fut.result()
            outcomes.append(outcome)
            with print_lock:
                counter[0] += 1
                status = "ok" if outcome.ok else f"FAILED ({outcome.message}; log {outcome.log})"
                log(f"[{counter[0]}/{len(sweep.runs)}] {outcome.run.label} seed {outcome.run.seed}: "
                    f"{outcome.action} in {outcome.seconds:.1f} s  {status}")
    except KeyboardInterrupt:
        runner.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    pool.shutdown(wait=True)

    table = sweep_table(sweep, out)
    write_tables(table, out, title=f"sweep {sweep.name}")
    order = {r.name: i for i, r in enumerate(sweep.runs)}
    outcomes.sort(key=lambda o: order[o.run.name])
    return SweepResult(out, table, outcomes, time.perf_counter() - start)


def _on_sigterm_interrupt():
    """SIGTERM (a scheduler or `kill`) stops the sweep like Ctrl-C: children get SIGINT and keep their
    last checkpoint. Returns the previous handler (None off the main thread, where none can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _last_error(logfile: Path, rc: int) -> str:
    lines = [ln for ln in logfile.read_text().splitlines() if ln.strip()] if logfile.is_file() else []
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln]
    return (errors[-1] if errors else (lines[-1] if lines else f"exit code {rc}")).strip()[:300]


def sweep_table(sweep: Sweep, out: Path) -> Table:
    """The table over the runs that are complete (a failed run leaves its row with fewer seeds)."""
    groups: dict[str, list] = {label: [] for label in sweep.labels}
    for run in sweep.runs:
        if run_state(run, out, None) in ("done", "evaluate"):
            groups[run.label].append(read_run(run.run_dir(out)).values())
    return build_table({k: v for k, v in groups.items() if v})


def load_sweep_dir(out: Path | str) -> tuple[dict[str, Any], dict[str, list[Path]]]:
    """For reports: plan.json and label -> run directories that exist, from a sweep output folder."""
    out = Path(out)
    plan_path = out / PLAN
    if not plan_path.is_file():
        raise RunDirError(f"{str(out)!r} is not a sweep folder (no {PLAN}).")
    plan = json.loads(plan_path.read_text())
    groups: dict[str, list[Path]] = {label: [] for label in plan.get("labels", [])}
    for r in plan["runs"]:
        run_dir = out / r["run_dir"]
        summary = (run_dir / "summary.json").read_text() if (run_dir / "summary.json").is_file() else "{}"
        if json.loads(summary).get("images_seen", -1) >= r.get("target_images", 0):  # finished runs only
            groups.setdefault(r["label"], []).append(run_dir)
    return plan, groups


def format_result(result: SweepResult) -> str:
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    done = ", ".join(f"{v} {k}" for k, v in counts.items())
    return (f"{to_markdown(result.table)}\n"
            f"sweep finished in {result.wall_s:.1f} s ({done})\n"
            f"  table: {result.out / 'table.md'}  (and table.csv)\n"
            f"  next:  ganforge report {result.out}")
