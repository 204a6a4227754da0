"""``--nproc N``: run the same command on N local processes under ``torchrun``, after the checks a user can
get wrong have passed in this one process (so a mistake is one line, not N tracebacks from torchrun)."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from ganforge.errors import GanforgeError

NPROC_HELP = ("Split the work over N local processes (one per GPU, or CPU processes), launched with torchrun; "
              "the result is the same as one process's.")


def check_not_under_torchrun() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise GanforgeError("--nproc launches torchrun itself; under torchrun drop --nproc (torchrun sets the count).")


def relaunch(nproc: int) -> None:
    """Run this command line again under torchrun on ``nproc`` processes and exit with its code."""
    from ganforge.training import distributed

    check_not_under_torchrun()
    cmd = distributed.launch_command(nproc, sys.argv[1:])
    click.echo(f"launching {nproc} processes: {' '.join(cmd[1:])}", err=True)
    sys.exit(subprocess.call(cmd))
