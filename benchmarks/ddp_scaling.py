"""Data-parallel scaling: images/s of one training run on 1, 2, ... processes, side by side, and the ratio.

Each cell is a real ``ganforge train PRESET --nproc N`` (torchrun, gloo on CPU, NCCL on GPUs) with the same
global batch; its speed is the median ``img_per_s`` over the ticks after the first (the training part of
each tick: grids, checkpoints and plots are excluded, as the first tick's warm-up is). The cells run one
after another in the same invocation, so they share the machine's state. Scaling efficiency is
``(img/s at N) / (N x img/s at 1)``; 1.0 is linear.

On a CPU every process gets ``--threads`` OpenMP threads (default 1), so N processes use N cores. On a
2-core machine the numbers are noisy (other work on the machine moves them); read the ratio.

    PYTHONPATH=src python benchmarks/ddp_scaling.py --out scaling-cpu.md                   # 1 vs 2 CPU processes
    PYTHONPATH=src python benchmarks/ddp_scaling.py --nproc 1 2 4 8 --presets mnist-dcgan --kimg 20   # GPUs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# preset -> overrides that make a short run of it (the recipe otherwise unchanged)
PRESETS = {
    "sine": ("train.batch_size=256",),
    "demo": ("train.batch_size=64", "train.ema_kimg=0"),
    "mnist-dcgan": (),
}


def run_cell(preset: str, nproc: int, kimg: float, threads: int, workdir: Path) -> float:
    """One training run on ``nproc`` processes; returns its median training images/s."""
    out = workdir / f"{preset}-{nproc}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": str(threads), "MPLBACKEND": "Agg"}
    ticks = 6  # the first is warm-up
    cmd = [
        sys.executable,
        "-m",
        "ganforge",
        "train",
        preset,
        "--out",
        str(out),
        "--no-progress",
        "--set",
        f"train.kimg={kimg}",
        "--set",
        f"train.tick_kimg={kimg / ticks}",
    ]
    for override in PRESETS.get(preset, ()):
        cmd += ["--set", override]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{preset} on {nproc} process(es) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["img_per_s"] for r in records[1:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["sine", "demo"])
    parser.add_argument("--nproc", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--kimg", type=float, default=None, help="length of each run (default: per preset)")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads per process on a CPU")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    default_kimg = {"sine": 12.0, "demo": 1.5}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    lines = [
        f"# Data-parallel scaling on {device}",
        "",
        f"torch {torch.__version__}, Python {platform.python_version()}, {args.threads} thread(s) per process "
        "on CPU. img/s: median over ticks 2.. of the training part of each tick; efficiency = "
        "img/s(N) / (N x img/s(1)).",
        "",
        "| preset | global batch | "
        + " | ".join(f"{n} proc img/s" for n in args.nproc)
        + " | "
        + " | ".join(f"x{n} speed-up (eff.)" for n in args.nproc[1:])
        + " |",
        "|" + " --- |" * (2 + len(args.nproc) + len(args.nproc[1:])),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            kimg = args.kimg or default_kimg.get(preset, 10.0)
            speeds = {n: run_cell(preset, n, kimg, args.threads, Path(tmp)) for n in args.nproc}
            base = speeds[args.nproc[0]]
            sizes = [o.split("=")[1] for o in PRESETS.get(preset, ()) if o.startswith("train.batch_size")]
            batch = sizes[0] if sizes else "preset's"
            cells = [f"{speeds[n]:,.0f}" for n in args.nproc]
            ups = [f"{speeds[n] / base:.2f} ({speeds[n] / base / (n / args.nproc[0]):.2f})" for n in args.nproc[1:]]
            lines.append(f"| {preset} | {batch} | " + " | ".join(cells + ups) + " |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
