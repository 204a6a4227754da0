"""``ganforge sweep`` and ``ganforge compare``: thin wrappers over experiments.sweep / experiments.compare."""

from __future__ import annotations

import sys
from pathlib import Path

import click

SWEEP_EXAMPLES = """
\b
Examples:
  ganforge sweep sweeps/curve-ladder.yaml --set train.kimg=10 --jobs 2
  ganforge sweep sweeps/mnist-depth.yaml --out runs/depth        # rerun the same line to continue it
  ganforge sweep sweeps/mnist-augment.yaml --dry-run             # list the runs, check every config
  ganforge sweep sweeps/mnist-depth.yaml --backend ray --address auto --gpus-per-run 1 --out /shared/depth
  ganforge sweep sweeps/mnist-depth.yaml --backend slurm --partition gpu --time 2:00:00 --gpus-per-run 1
"""

COMPARE_EXAMPLES = """
\b
Examples:
  ganforge compare runs/dcgan-s0 runs/dcgan-s1 runs/mlp-s0 runs/mlp-s1
  ganforge compare runs/depth/*/seed-* --out runs/depth-table
  ganforge compare runs/u500-s* runs/u500-da-s* --full-data   # data.limit runs, each evaluated with --full-data
  ganforge compare runs/a-s* runs/b-s* --best                 # the generators health.keep_best kept, evaluated
"""


@click.command(epilog=SWEEP_EXAMPLES)
@click.argument("sweep_file", type=click.Path(path_type=Path), metavar="SWEEP.yaml")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="Sweep folder (default: runs/sweep-NAME). Rerunning into the same folder continues the sweep.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs in parallel; each gets cores/jobs threads.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key in every run (repeatable), e.g. --set train.kimg=10 for a CPU-sized sweep.")
@click.option("--dry-run", is_flag=True, help="Check every run's config and list the runs; train nothing.")
@click.option("--backend", type=click.Choice(["local", "ray", "slurm"]), default="local", show_default=True,
              help="Where runs execute: local processes, one Ray task per run, or one Slurm job per run.")
@click.option("--address", default=None, metavar="ADDR",
              help="ray: the cluster to join (auto: the one this node belongs to). Default: start a local one.")
@click.option("--cpus-per-run", type=click.IntRange(min=1), default=None,
              help="ray/slurm: CPUs reserved per run (and its threads). [default: 1]")
@click.option("--gpus-per-run", type=click.FloatRange(min=0), default=None,
              help="ray/slurm: GPUs reserved per run (ray allows fractions, e.g. 0.5). [default: 0]")
@click.option("--partition", default=None, help="slurm: the partition to submit to.")
@click.option("--time", "time_limit", default=None, metavar="TIME",
              help="slurm: time limit per run (90, 1:30:00, 2-00:00:00). A run that hits it resumes when rerun.")
@click.option("--slurm-arg", "slurm_args", multiple=True, metavar="KEY=VALUE",
              help="slurm: any other sbatch option, e.g. --slurm-arg account=proj42 --slurm-arg qos=high.")
def sweep(sweep_file: Path, out: Path | None, jobs: int, overrides: tuple[str, ...], dry_run: bool, backend: str,
          address: str | None, cpus_per_run: int | None, gpus_per_run: float | None, partition: str | None,
          time_limit: str | None, slurm_args: tuple[str, ...]) -> None:
    """Run a grid of configurations x seeds in parallel; write table.csv / table.md (mean ± std, 95% CI)."""
    from ganforge.experiments.backends import backend_options
    from ganforge.experiments.sweep import format_result, load_sweep, run_state, run_sweep

    options = backend_options(backend, jobs=jobs, address=address, cpus_per_run=cpus_per_run,
                              gpus_per_run=gpus_per_run, partition=partition, time_limit=time_limit,
                              slurm_args=slurm_args)
    spec = load_sweep(sweep_file, overrides)
    out = out or Path("runs") / f"sweep-{spec.name}"
    if dry_run:
        for run in spec.runs:
            state = run_state(run, out, spec.evaluate)
            skipped = "".join(f"  (no {m}: {why})" for m, why in run.eval_skipped)
            click.echo(f"{run.run_dir(out)}  [{state}]  {' '.join(run.overrides)}{skipped}")
        click.echo(f"{len(spec.runs)} runs, every config checked; nothing was trained.")
        return
    try:
        result = run_sweep(spec, out, backend=backend, options=options, log=click.echo)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted. Finished runs are kept and killed runs keep their last checkpoint: rerun the same "
                   f"command (with --out {out}) to continue the sweep.", err=True)
        sys.exit(130)
    click.echo(format_result(result))
    if result.failed:
        from ganforge.errors import GanforgeError

        lines = [f"{o.run.label} seed {o.run.seed} (log {o.log})" for o in result.failed]
        raise GanforgeError(
            f"{len(result.failed)} of {len(result.outcomes)} runs failed: {'; '.join(lines)}. "
            "Fix the cause and rerun the same command: completed runs are skipped."
        )


@click.command(epilog=COMPARE_EXAMPLES)
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR...")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="Folder to write table.csv and table.md into (default: print only).")
@click.option("--full-data", "full_data", is_flag=True,
              help="Read each run's eval-full-data.json (`ganforge evaluate RUN --full-data`: a data.limit run "
                   "measured against the whole training split) instead of its eval.json.")
@click.option("--best", "best", is_flag=True,
              help="Read the numbers of each run's kept generator, RUN/best/ (`ganforge evaluate RUN/best`; runs "
                   "trained with health.keep_best), instead of the last tick's.")
def compare(run_dirs: tuple[Path, ...], out: Path | None, full_data: bool, best: bool) -> None:
    """Compare existing runs: one row per config (seeds pooled), mean ± std and 95% CI per metric."""
    from ganforge.experiments.compare import compare_runs
    from ganforge.metrics.tables import to_markdown

    table, _ = compare_runs(list(run_dirs), out, full_data=full_data, best=best)
    click.echo(to_markdown(table))
    if out is not None:
        click.echo(f"wrote {out / 'table.csv'} and {out / 'table.md'}")
