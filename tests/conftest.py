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
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
