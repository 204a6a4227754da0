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
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from ganforge.errors import RunDirError
from ganforge.experiments.compare import config_key, read_eval, read_run
from ganforge.experiments.runner import RESUME_KEYS
from ganforge.experiments.sweep_spec import (  # load_sweep & co. re-exported: `from ...sweep import load_sweep` works
    ENTRY_KEYS,
    EVAL_KEYS,
    TOP_KEYS,
    EvalSpec,
    PlannedRun,
    Sweep,
    load_sweep,
)
from ganforge.metrics.tables import Table, build_table, to_markdown, write_tables
from ganforge.training.checkpoint import atomic_write_json, atomic_write_text

__all__ = [
    "ENTRY_KEYS", "EVAL_KEYS", "PLAN", "TOP_KEYS", "EvalSpec", "JobOutcome", "PlannedRun", "Sweep", "SweepResult",
    "format_result", "load_sweep", "load_sweep_dir", "run_state", "run_sweep", "sweep_table",
]

PLAN = "plan.json"


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
