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
"""

COMPARE_EXAMPLES = """
\b
Examples:
  ganforge compare runs/dcgan-s0 runs/dcgan-s1 runs/mlp-s0 runs/mlp-s1
  ganforge compare runs/depth/*/seed-* --out runs/depth-table
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
def sweep(sweep_file: Path, out: Path | None, jobs: int, overrides: tuple[str, ...], dry_run: bool) -> None:
    """Run a grid of configurations x seeds in parallel; write table.csv / table.md (mean ± std, 95% CI)."""
    from ganforge.experiments.sweep import format_result, load_sweep, run_state, run_sweep

    spec = load_sweep(sweep_file, overrides)
    out = out or Path("runs") / f"sweep-{spec.name}"
    if dry_run:
        for run in spec.runs:
            state = run_state(run, out, spec.evaluate)
            click.echo(f"{run.run_dir(out)}  [{state}]  {' '.join(run.overrides)}")
        click.echo(f"{len(spec.runs)} runs, every config checked; nothing was trained.")
        return
    try:
        result = run_sweep(spec, out, jobs=jobs, log=click.echo)
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
def compare(run_dirs: tuple[Path, ...], out: Path | None) -> None:
    """Compare existing runs: one row per config (seeds pooled), mean ± std and 95% CI per metric."""
    from ganforge.experiments.compare import compare_runs
    from ganforge.metrics.tables import to_markdown

    table, _ = compare_runs(list(run_dirs), out)
    click.echo(to_markdown(table))
    if out is not None:
        click.echo(f"wrote {out / 'table.csv'} and {out / 'table.md'}")
