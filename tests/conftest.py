from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# The suite runs as 2 xdist workers on 2 cores: one thread each (and in every CLI subprocess), since
# oversubscribed OpenMP threads spin and can slow small steps down by an order of magnitude.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("GANFORGE_CACHE", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "ganforge"))

import torch  # noqa: E402

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m ganforge ARGS`` in a subprocess, as a user would."""
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def invoke_cli(*args: str, cwd: Path | None = None):
    """``ganforge ARGS`` in this process through click's CliRunner (no ~2-3 s torch import): its ``Result``."""
    from click.testing import CliRunner

    from ganforge.cli import main

    before = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    finally:
        os.chdir(before)


def run_cli_in_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``run_cli`` without the subprocess, for refusals that happen before any work: the same exit code, stdout
    and stderr, and an exception escaping the CLI appended to stderr as the traceback a user would have seen.
    Each kind of refusal keeps at least one case through ``run_cli``."""
    import traceback

    result = invoke_cli(*args, cwd=cwd)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["ganforge", *args], result.exit_code, result.stdout, stderr)


@pytest.fixture
def cli():
    return run_cli


def stub_objective(variant: str, G, D, cfg, num_classes: int, shape: tuple[int, ...], kind: str = "image"):
    """``variant``'s objective around hand-made G and D (tests of loss terms on fixed outputs).

    Its ``step(name, real_img, real_c, gen_z, gen_c)`` runs one phase by name on a batch given by hand.
    """
    from ganforge.data.base import Dataset
    from ganforge.variants import VARIANTS
    from ganforge.variants.gan import Batch

    family = VARIANTS.get(variant)
    y = torch.arange(2) % num_classes if num_classes else None
    data = Dataset("stub", torch.zeros(2, *shape), y, num_classes=num_classes, kind=kind)
    family.check(cfg, data)
    family.check_networks(cfg, {"G": G, "D": D}, data)
    G.train(), D.train()
    obj = family.objective_class(family, cfg, G, D, data, data.x, None)
    phases = {p.name: p for p in obj.phases}
    obj.step = lambda name, real_img, real_c, gen_z, gen_c: obj.accumulate_gradients(
        phases[name], Batch(real_img, real_c, gen_z, gen_c))
    return obj
