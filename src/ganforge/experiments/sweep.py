"""Multi-seed sweeps: a grid (or list) of configurations x seeds, run in parallel, resumable, tabulated.

The sweep file format and its checking (``load_sweep``) are in ``ganforge.experiments.sweep_spec``;
this module runs a loaded sweep. Layout of the output folder::

    OUT/plan.json                 the planned runs (label, seed, overrides, target length)
    OUT/configs/LABEL-seedS.yaml  the resolved config each run is started from
    OUT/LABEL/seed-S/             the run directories (ordinary ganforge runs)
    OUT/logs/LABEL-seedS.log      each run's console output
    OUT/table.csv, OUT/table.md   mean ± std and a 95% t-interval over seeds, per metric and configuration

Running the same command again continues the sweep: runs that reached their length (and have their
``eval.json`` when evaluation is asked) are skipped, runs killed part-way resume exactly from their
last checkpoint, runs killed before their first tick start over. Runs are separate processes
(``python -m ganforge train``); with ``--jobs N`` each gets cores/N threads so they share the machine.
Where those processes run is a backend (``ganforge.experiments.backends``): here, Ray tasks or Slurm jobs.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ganforge.errors import ConfigError, RunDirError
from ganforge.experiments.compare import config_key, copier_notes, read_eval, read_run
from ganforge.experiments.execute import (  # re-exported: `from ...sweep import run_state` works
    JobOutcome,
    RunTask,
    execute_run,
    run_state,
)
from ganforge.experiments.runner import RESUME_KEYS
from ganforge.experiments.sweep_spec import (  # load_sweep & co. re-exported: `from ...sweep import load_sweep` works
    ENTRY_KEYS,
    EVAL_KEYS,
    TOP_KEYS,
    EvalSpec,
    PlannedRun,
    Sweep,
    load_sweep,
    parse_eval_spec,
)
from ganforge.metrics.tables import RunValues, Table, build_table, to_markdown, write_tables
from ganforge.training.lock import acquire
from ganforge.training.rundir import (
    SUMMARY,
    atomic_write_json,
    atomic_write_text,
    read_config_dict,
    read_json,
    read_summary,
    write_failure,
)

__all__ = [
    "ENTRY_KEYS", "EVAL_KEYS", "PLAN", "TOP_KEYS", "EvalSpec", "JobOutcome", "PlannedRun", "RunTask", "Sweep",
    "SweepResult", "execute_run", "format_result", "load_sweep", "load_sweep_dir", "plan_evaluation", "run_state",
    "run_sweep", "run_values", "sweep_table",
]

PLAN = "plan.json"


@dataclass
class SweepResult:
    out: Path
    table: Table
    outcomes: list[JobOutcome]
    wall_s: float

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]


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
        existing = read_config_dict(run.run_dir(out))
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


def run_sweep(
    sweep: Sweep, out: Path | str, *, jobs: int = 1, backend: str = "local", options: Any = None,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Run (or continue) every planned run, then write table.csv and table.md. Failed runs are listed
    at the end (the others still run); rerunning the same command retries only what is missing.
    The sweep folder is locked meanwhile: a second sweep into it is refused (each run also locks its own).

    ``backend`` says where the runs execute (``ganforge.experiments.backends``): "local" processes, `--jobs`
    at a time (the default), "ray" tasks on a Ray cluster, or "slurm" jobs; ``options`` is its
    ``BackendOptions``. The table is built here from the run folders, so it is the same whatever the backend."""
    from ganforge.experiments.backends import BACKENDS, BackendOptions

    options = options or BackendOptions(jobs=jobs)
    engine = BACKENDS.get(backend)  # ConfigError naming the valid backends, before anything is written
    engine.check(options)  # Ray/submitit installed, sbatch on PATH ...: fail before writing anything
    out = Path(out)
    _check_existing(sweep, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(write_failure(out, e)) from None
    with acquire(out, f"ganforge sweep {sweep.name} --out {out}", log):
        return _run_sweep(sweep, out, backend, engine, options, log)


def _run_sweep(sweep: Sweep, out: Path, backend: str, engine: Any, options: Any,
               log: Callable[[str], None]) -> SweepResult:
    start = time.perf_counter()
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

    if backend == "local":
        jobs = max(1, options.jobs)
        threads = max(1, _cores() // jobs)
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # a lower limit set by the user is kept
            threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
        where = f"{jobs} job(s) x {threads} thread(s)"
    else:  # a run owns the CPUs its task/job reserved
        threads = options.cpus_per_run
        where = f"backend {backend}, {threads} CPU(s)" + (f" + {options.gpus_per_run:g} GPU(s)" if
                                                          options.gpus_per_run else "") + " per run"
    states = {run.name: run_state(run, out, sweep.evaluate) for run in sweep.runs}
    todo = [r for r in sweep.runs if states[r.name] != "done"]
    outcomes = [JobOutcome(r, "skipped", True) for r in sweep.runs if states[r.name] == "done"]
    log(f"sweep {sweep.name}: {len(sweep.runs)} runs ({len(sweep.labels)} configurations x "
        f"{len({r.seed for r in sweep.runs})} seeds) in {out}; {len(outcomes)} complete, {len(todo)} to run; "
        f"{where}")
    counter = [len(outcomes)]

    def finished(outcome: JobOutcome) -> None:  # called once per task, on the calling thread
        outcomes.append(outcome)
        counter[0] += 1
        status = "ok" if outcome.ok else f"FAILED ({outcome.message}; log {outcome.log})"
        log(f"[{counter[0]}/{len(sweep.runs)}] {outcome.run.label} seed {outcome.run.seed}: "
            f"{outcome.action} in {outcome.seconds:.1f} s  {status}")

    tasks = [RunTask(r, str(out.resolve()), sweep.evaluate, threads) for r in todo]
    previous = _on_sigterm_interrupt()
    try:
        if tasks:
            engine.execute(tasks, options, finished, log)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

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


def sweep_table(sweep: Sweep, out: Path) -> Table:
    """The table over the runs that are complete (a failed run leaves its row with fewer seeds)."""
    groups: dict[str, list] = {label: [] for label in sweep.labels}
    done: list[Path] = []
    for run in sweep.runs:
        if run_state(run, out, None) in ("done", "evaluate"):
            done.append(run.run_dir(out))
            groups[run.label].append(run_values(done[-1], sweep.evaluate))
    table = build_table({k: v for k, v in groups.items() if v})
    table.notes.extend(sweep_notes(sweep.evaluate, done))
    return table


def sweep_notes(spec: EvalSpec | None, run_dirs: list[Path]) -> list[str]:
    """Notes under a sweep's table: for a full-data sweep, what a G that copies each data.limit's examples scores."""
    if spec is None or not spec.full_data or not run_dirs:
        return []
    return copier_notes([read_run(d) for d in run_dirs])


def run_values(run_dir: Path, spec: EvalSpec | None) -> RunValues:
    """A finished run's row values, with the metrics the sweep's evaluation wrote: RUN/eval.json, or RUN/best/'s
    (``evaluate.generator: best``), or eval-full-data.json (``evaluate.full_data``)."""
    info = read_run(run_dir)
    if spec is not None and (spec.generator == "best" or spec.full_data):
        info = replace(info, metrics=read_eval(spec.target(info.run_dir), spec.eval_file))
    return info.values()


def plan_evaluation(plan: dict[str, Any], plan_path: Path) -> EvalSpec | None:
    """The evaluation a sweep's plan.json records (None: the sweep trained only)."""
    raw = plan.get("evaluate")
    if raw is None:
        return None
    try:
        return parse_eval_spec(raw)
    except ConfigError as e:
        raise RunDirError(f"{str(plan_path)!r} is damaged: its 'evaluate' is not valid ({e}); rerun the sweep "
                          "command to rewrite it.") from None


def load_sweep_dir(out: Path | str) -> tuple[dict[str, Any], dict[str, list[Path]]]:
    """For reports: plan.json and label -> run directories that exist, from a sweep output folder."""
    out = Path(out)
    plan_path = out / PLAN
    if not plan_path.is_file():
        raise RunDirError(f"{str(out)!r} is not a sweep folder (no {PLAN}).")
    fix = "rerun the sweep command to rewrite it"
    plan = read_json(plan_path, fix)
    runs = plan.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) and isinstance(r.get("run_dir"), str)
                                             and isinstance(r.get("label"), str) for r in runs):
        raise RunDirError(f"{str(plan_path)!r} is damaged: 'runs' is not a list of planned runs; {fix}.")
    labels = plan.get("labels")
    groups: dict[str, list[Path]] = {str(label): [] for label in (labels if isinstance(labels, list) else [])}
    for r in runs:
        run_dir = out / r["run_dir"]
        if not (run_dir / SUMMARY).is_file():
            continue
        target = r.get("target_images", 0)
        seen = read_summary(run_dir, require=("images_seen",))["images_seen"]
        if seen >= (target if isinstance(target, int) else 0):  # finished runs only
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
