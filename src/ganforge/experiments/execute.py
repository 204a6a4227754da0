"""Executing one planned run of a sweep, wherever a backend runs it: its state read from its folder, then
``python -m ganforge train`` (new, resumed or restarted) and ``evaluate`` as child processes.

Kept apart from ``sweep`` (planning, the table) and ``backends`` (where tasks run) so that both import
this and neither imports the other.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ganforge.errors import RunDirError
from ganforge.experiments.compare import read_eval
from ganforge.experiments.sweep_spec import EvalSpec, PlannedRun
from ganforge.training.rundir import CKPT_DIR, LATEST, read_summary


@dataclass
class JobOutcome:
    run: PlannedRun
    action: str  # "skipped", "trained", "resumed", "restarted", "evaluated"
    ok: bool
    seconds: float = 0.0
    log: Path | None = None
    message: str = ""


def run_state(run: PlannedRun, out: Path, evaluate: EvalSpec | None) -> str:
    """What a planned run needs: "done", "evaluate", "resume", "restart" or "new"."""
    run_dir = run.run_dir(out)
    if not run_dir.exists():
        return "new"
    if not (run_dir / CKPT_DIR / LATEST).is_file():
        return "restart"  # killed before its first complete tick: start again
    try:
        summary = read_summary(run_dir, require=("images_seen",))
    except RunDirError:
        return "restart"  # summary missing or damaged: retrain (same config and seed: the same result)
    if int(summary["images_seen"]) < run.target_images:
        return "resume"
    if evaluate is not None and not _eval_complete(run_dir, evaluate, run.eval_metrics):
        return "evaluate"
    return "done"


def _eval_complete(run_dir: Path, spec: EvalSpec, metrics: tuple[str, ...]) -> bool:
    records = read_eval(spec.target(run_dir), spec.eval_file)
    if not records:
        return False
    names = {r["name"] for r in records}
    return all(m in names for m in metrics)


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
    cmd = [sys.executable, "-m", "ganforge", "evaluate", str(spec.target(run.run_dir(out)))]
    for m in run.eval_metrics:  # the asked-for metrics that apply to this run (the default set when none asked)
        cmd += ["--metric", m]
    if spec.n is not None:
        cmd += ["--n", str(spec.n)]
    if spec.extractor:
        cmd += ["--extractor", spec.extractor]
    if spec.full_data:
        cmd += ["--full-data"]
    return cmd


class ChildProcesses:
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


@dataclass(frozen=True)
class RunTask:
    """One planned run as a backend ships it to where it runs: a thread here, a Ray worker, a Slurm job.
    Plain data (it is pickled to Ray/submitit); ``out`` is absolute so it means the same on every node."""

    run: PlannedRun
    out: str
    evaluate: EvalSpec | None
    threads: int  # OpenMP/MKL threads of the run's processes


def execute_run(task: RunTask, runner: ChildProcesses | None = None) -> JobOutcome:
    """Bring one run to "done": train, resume or restart it, then evaluate it. The state is read from the
    run folder *here*, where the run executes, so a retried task (a Ray node lost, a Slurm job requeued)
    continues from the run's last checkpoint instead of starting over."""
    run, out, runner = task.run, Path(task.out), runner or ChildProcesses()
    state = run_state(run, out, task.evaluate)
    if state == "done":
        return JobOutcome(run, "skipped", True)
    env = _child_env(task.threads)
    logfile = out / "logs" / f"{run.name}.log"
    t0 = time.perf_counter()
    action = {"new": "trained", "restart": "restarted", "resume": "resumed", "evaluate": "evaluated"}[state]
    try:
        if state == "restart":
            shutil.rmtree(run.run_dir(out))  # our own folder, never finished a tick: nothing to keep
        if state in ("new", "restart", "resume"):
            rc = runner.run(_train_cmd(run, out, "resume" if state == "resume" else "new"), env, logfile)
            if rc != 0:
                return JobOutcome(run, action, False, time.perf_counter() - t0, logfile, _last_error(logfile, rc))
        if task.evaluate is not None:
            rc = runner.run(_eval_cmd(run, out, task.evaluate), env, logfile)
            if rc != 0:
                return JobOutcome(
                    run,
                    action,
                    False,
                    time.perf_counter() - t0,
                    logfile,
                    "evaluation failed: " + _last_error(logfile, rc),
                )
    except KeyboardInterrupt:  # Ctrl-C here, ray.cancel() on a worker: the child keeps its last checkpoint
        runner.stop()
        raise
    return JobOutcome(run, action, True, time.perf_counter() - t0, logfile)


def _last_error(logfile: Path, rc: int) -> str:
    lines = [ln for ln in logfile.read_text().splitlines() if ln.strip()] if logfile.is_file() else []
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln]
    return (errors[-1] if errors else (lines[-1] if lines else f"exit code {rc}")).strip()[:300]
