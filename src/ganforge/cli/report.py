"""``ganforge report``: a thin wrapper over ``reporting.html.write_report``."""

from __future__ import annotations

from pathlib import Path

import click

REPORT_EXAMPLES = """
\b
Examples:
  ganforge report runs/dcgan                      # writes runs/dcgan/report.html
  ganforge report runs/sweep-curve-ladder --out ladder.html
"""


@click.command(epilog=REPORT_EXAMPLES)
@click.argument("path", type=click.Path(path_type=Path), metavar="RUN_DIR|SWEEP_DIR")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="HTML file to write (default: report.html inside the folder).")
def report(path: Path, out: Path | None) -> None:
    """One self-contained HTML report (pictures embedded, opens offline) for a run or a sweep."""
    from ganforge.reporting.html import write_report

    target = write_report(path, out)
    click.echo(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB, self-contained; open it in any browser)")
