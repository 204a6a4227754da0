"""Where a sweep's runs execute: local processes (the default), Ray tasks, or Slurm jobs.

A backend takes the runs still to do (``RunTask``, plain data) and calls ``finished(outcome)`` once per run,
on the calling thread, as each completes. Every backend executes the same function, ``execute_run``, which
reads the run folder where it runs and trains, resumes or evaluates as needed; so an interrupted sweep
continues from each run's last checkpoint whatever the backend, and ``run_sweep`` builds the same table from
the same run folders. The engines are the ones users already have, imported lazily:

- ``ray``: each run is a Ray task (``num_cpus``/``num_gpus`` reserved per run) on the cluster at
  ``--address`` (``auto``: the one this node belongs to) or on a local one. Ray retries a task whose node
  was lost, and the retry resumes from the checkpoint. ``pip install 'ganforge[ray]'``.
- ``slurm``: each run is a Slurm job submitted with submitit (partition, time limit, CPUs and GPUs per
  run; logs in OUT/slurm/). ``pip install 'ganforge[slurm]'``.

On a cluster the sweep folder (``--out``) and the datasets must be on a filesystem every node sees, and
ganforge must be installed in the same environment on every node.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ganforge.errors import ConfigError, GanforgeError
from ganforge.experiments.execute import ChildProcesses, JobOutcome, RunTask, execute_run
from ganforge.registry import Registry

Finished = Callable[[JobOutcome], None]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Backend:
    check: Callable[[BackendOptions], None]  # raises GanforgeError before the sweep writes anything
    execute: Callable[[list[RunTask], BackendOptions, Finished, Log], None]


BACKENDS: Registry[Backend] = Registry("sweep backend")


@dataclass(frozen=True)
class BackendOptions:
    jobs: int = 1  # local: runs at once
    address: str | None = None  # ray: cluster address ("auto", "ray://host:10001"); None starts a local one
    cpus_per_run: int = 1  # ray/slurm: CPUs reserved per run (and its OpenMP threads)
    gpus_per_run: float = 0  # ray (fractions allowed) / slurm (whole GPUs)
    partition: str | None = None  # slurm
    time_min: int | None = None  # slurm: time limit per run, minutes
    slurm_args: tuple[tuple[str, str], ...] = ()  # slurm: extra #SBATCH --key=value (account, qos, ...)

    def __post_init__(self) -> None:
        if self.cpus_per_run < 1:
            raise ConfigError(f"--cpus-per-run must be >= 1; got {self.cpus_per_run}.")
        if self.gpus_per_run < 0:
            raise ConfigError(f"--gpus-per-run must be >= 0; got {self.gpus_per_run}.")


def parse_time(text: str) -> int:
    """Slurm time formats -> minutes: ``90``, ``1:30:00``, ``2-00:00:00``, ``30:00`` (MM:SS)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ConfigError(
            f"--time {text!r} is not a Slurm time; write minutes (90), H:MM:SS (1:30:00) or D-HH:MM:SS (2-00:00:00)."
        )
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if b is None:  # minutes (or D-HH)
        minutes = a * 60 if days is not None else a
    elif c is None:  # MM:SS, or D-HH:MM
        minutes = a * 60 + b if days is not None else a + (1 if b else 0)
    else:  # H:MM:SS
        minutes = a * 60 + b + (1 if c else 0)
    minutes += (days or 0) * 24 * 60
    if minutes < 1:
        raise ConfigError(f"--time {text!r} is under a minute; give each run at least 1 minute.")
    return minutes


def run_local(tasks: list[RunTask], options: BackendOptions, finished: Finished, log: Log) -> None:
    children = ChildProcesses()
    pool = ThreadPoolExecutor(max_workers=max(1, options.jobs))
    try:
        futures = [pool.submit(execute_run, task, children) for task in tasks]
        for fut in as_completed(futures):
            finished(fut.result())
    except KeyboardInterrupt:
        children.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _nothing_to_check(options: BackendOptions) -> None:
    pass


BACKENDS.add("local", Backend(_nothing_to_check, run_local), help="processes on this machine, --jobs at a time")


def check_ray(options: BackendOptions) -> None:
    """Ray is installed and the cluster answers (connecting here, before the sweep writes anything)."""
    try:
        import ray
    except ImportError:
        raise GanforgeError("--backend ray needs Ray: pip install 'ganforge[ray]' (on every node).") from None
    if not ray.is_initialized():  # a caller (a notebook, a test) may have connected already
        try:
            ray.init(address=options.address, log_to_driver=False, include_dashboard=False)
        except ConnectionError as e:
            raise GanforgeError(
                f"cannot reach the Ray cluster at {options.address!r} ({e}); start it with "
                "`ray start --head` or fix --address."
            ) from None


def run_ray(tasks: list[RunTask], options: BackendOptions, finished: Finished, log: Log) -> None:
    import ray

    log(
        f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, {ray.cluster_resources().get('GPU', 0):g} GPUs "
        "in the cluster"
    )
    # max_retries: a task whose worker or node died is run again; execute_run then resumes its checkpoint.
    remote = ray.remote(execute_run).options(
        num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_retries=3
    )
    pending = {remote.remote(task): task for task in tasks}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as e:  # retries exhausted, or the task itself crashed
                    outcome = JobOutcome(task.run, "failed", False, 0.0, _log_of(task), _first_line(e))
                finished(outcome)
    except KeyboardInterrupt:
        for ref in pending:  # KeyboardInterrupt inside each task: execute_run stops its child (checkpoint kept)
            ray.cancel(ref)
        raise


BACKENDS.add("ray", Backend(check_ray, run_ray), help="one Ray task per run on a Ray cluster (--address auto)")


def check_slurm(options: BackendOptions) -> None:
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise GanforgeError("--backend slurm needs submitit: pip install 'ganforge[slurm]'.") from None
    missing = [cmd for cmd in ("sbatch", "srun", "sacct") if shutil.which(cmd) is None]
    if missing:
        raise GanforgeError(
            f"--backend slurm: {', '.join(missing)} not found on PATH; run the sweep on a "
            "Slurm login node (or use --backend local / ray)."
        )


def run_slurm(tasks: list[RunTask], options: BackendOptions, finished: Finished, log: Log) -> None:
    import submitit

    folder = Path(tasks[0].out) / "slurm"
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="slurm")
    params: dict = {"cpus_per_task": options.cpus_per_run, "tasks_per_node": 1, "nodes": 1}
    if options.gpus_per_run:
        params["gpus_per_node"] = int(options.gpus_per_run)
    if options.time_min is not None:
        params["timeout_min"] = options.time_min
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.slurm_args:
        params["slurm_additional_parameters"] = dict(options.slurm_args)
    executor.update_parameters(**params)
    jobs = {}
    try:
        for task in tasks:
            executor.update_parameters(name=f"ganforge-{task.run.name}")
            try:
                job = executor.submit(execute_run, task)
            except Exception as e:  # sbatch refused (bad partition, account, time limit ...): nothing more starts
                raise GanforgeError(
                    f"Slurm refused the job for {task.run.label} seed {task.run.seed}: "
                    f"{_first_line(e)}. Fix the Slurm options and rerun (finished runs are kept)."
                ) from None
            jobs[job.job_id] = (job, task)
            log(f"slurm: submitted {task.run.name} as job {job.job_id}")
        while jobs:
            for job_id, (job, task) in list(jobs.items()):
                if not job.done():
                    continue
                del jobs[job_id]
                exc = job.exception()
                if exc is None:
                    outcome = job.result()
                else:  # killed, timed out, node failure: the run keeps its last checkpoint
                    outcome = JobOutcome(
                        task.run, "failed", False, 0.0, _log_of(task), f"slurm job {job_id} failed: {_first_line(exc)}"
                    )
                finished(outcome)
            if jobs:
                time.sleep(1.0)
    except KeyboardInterrupt:
        for job, _ in jobs.values():
            job.cancel(check=False)  # scancel: the trainer is signalled; its atomic checkpoint stays
        log(f"slurm: cancelled {len(jobs)} job(s)")
        raise


BACKENDS.add("slurm", Backend(check_slurm, run_slurm), help="one Slurm job per run, submitted with submitit")


def _log_of(task: RunTask) -> Path:
    return Path(task.out) / "logs" / f"{task.run.name}.log"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:300]


_FLAGS = {  # backend -> the CLI flags it uses
    "ray": ("--address", "--cpus-per-run", "--gpus-per-run"),
    "slurm": ("--cpus-per-run", "--gpus-per-run", "--partition", "--time", "--slurm-arg"),
}


def backend_options(
    backend: str,
    *,
    jobs: int = 1,
    address: str | None = None,
    cpus_per_run: int | None = None,
    gpus_per_run: float | None = None,
    partition: str | None = None,
    time_limit: str | None = None,
    slurm_args: tuple[str, ...] = (),
) -> BackendOptions:
    """The CLI's flags -> BackendOptions; a flag given to a backend that does not use it is an error (it would
    otherwise be silently ignored, e.g. --gpus-per-run on local processes)."""
    given = {
        "--address": address,
        "--cpus-per-run": cpus_per_run,
        "--gpus-per-run": gpus_per_run,
        "--partition": partition,
        "--time": time_limit,
        "--slurm-arg": slurm_args or None,
    }
    for flag, value in given.items():
        if value is not None and flag not in _FLAGS.get(backend, ()):
            users = [b for b, flags in _FLAGS.items() if flag in flags]
            raise ConfigError(
                f"{flag} applies to --backend {' or '.join(users)}, not {backend}; "
                f"add --backend {users[0]} or drop {flag}."
            )
    if backend != "local" and jobs != 1:
        raise ConfigError(
            f"--jobs is for local processes; with --backend {backend} the cluster runs as many runs "
            "at once as it has room for. Drop --jobs."
        )
    if backend == "slurm" and gpus_per_run is not None and gpus_per_run != int(gpus_per_run):
        raise ConfigError(
            f"--gpus-per-run {gpus_per_run:g}: Slurm reserves whole GPUs; give an integer "
            "(Ray can share a GPU: --backend ray --gpus-per-run 0.5)."
        )
    pairs = []
    for text in slurm_args:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--slurm-arg {text!r} must be KEY=VALUE, e.g. --slurm-arg account=proj42.")
        pairs.append((key.strip().lstrip("-"), value.strip()))
    return BackendOptions(
        jobs=jobs,
        address=address,
        cpus_per_run=cpus_per_run or 1,
        gpus_per_run=gpus_per_run or 0,
        partition=partition,
        time_min=parse_time(time_limit) if time_limit else None,
        slurm_args=tuple(pairs),
    )
