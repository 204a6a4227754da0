"""StyleGAN2 + ADA training speed on a CPU: the step as it was (NCHW tensors) vs as it is now (channels_last,
the StyleGAN2 families' default ``train.channels_last=true``), side by side in one run.

Both train the brain phantom preset (``brain-stylegan2-ada``, 64x64, image + mask) from the same initial weights
and the same seed. Each repeat times ``--iters`` iterations of each, alternately (so a change in the machine's
load hits both), and the table reports the best images/s of each, their ratio, and where the time of one
iteration goes (the fastest call of each phase, in ms: D, lazy R1, G, lazy path length). Last, it compares both
layouts' outputs from the same weights, and their weights after a few iterations from the same state (float
rounding only: the memory layout changes the order of the convolutions' sums, not what they compute).

What a profile of one step showed (``--profile``; 1 thread): about 60% of the time in oneDNN's convolutions and
their backward in the NCHW layout, and little elsewhere: the path-length phase ~8% of an iteration (every 4th),
R1 ~3% (every 16th), ADA's grid_sample ~1%. The modulated convolutions already run as one ordinary convolution of
the modulated input (no per-sample weights, no grouped convolution). In the channels_last layout oneDNN's
convolutions (3x3, and the depthwise blur of D's downsampling) run much faster on a CPU.

On a CPU shared with other work, use one thread (``--threads 1``, and ``OMP_NUM_THREADS=1`` for training): with
more threads than free cores, each OpenMP barrier waits for a descheduled thread, and a step runs several times
slower (here, load average 5-9 on 2 cores: 3.3 img/s with 2 threads, 21 img/s with 1, both NCHW).

    PYTHONPATH=src python benchmarks/stylegan2_cpu_speed.py --threads 1 --out sg2-cpu.md
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from ganforge.presets import load_config
from ganforge.training.loop import Training, build_training
from ganforge.training.setup import prepare
from ganforge.training.state import seed_everything

SETTINGS = {"before (NCHW)": ["train.channels_last=false"], "now (channels_last)": []}


def _trainings(preset: str, extra: list[str]) -> dict[str, tuple[Training, Callable[[int, int], int]]]:
    """Both settings, built from the same initial weights."""
    out = {}
    nets = None
    for name, overrides in SETTINGS.items():
        cfg = load_config(preset, ["train.device=cpu", *extra, *overrides])
        setup = prepare(cfg)
        seed_everything(cfg.train.seed)
        if nets is None:
            nets = setup.build_networks()
        t = build_training(cfg, setup.family, setup.train_set, torch.device("cpu"), nets=copy.deepcopy(nets))
        out[name] = (t, t.make_step(cfg, torch.device("cpu")))
    return out


def _timed_phases(step) -> dict[str, list[float]]:
    """Wrap ``step.run_phase`` to record seconds per phase name."""
    times: dict[str, list[float]] = defaultdict(list)
    run = step.run_phase

    def timed(phase, idx):
        t0 = time.perf_counter()
        stats = run(phase, idx)
        times[phase.name].append(time.perf_counter() - t0)
        return stats

    step.run_phase = timed
    return times


def measure(preset: str, extra: list[str], iters: int, repeats: int, batch: int) -> list[dict]:
    runs = _trainings(preset, extra)
    phases = {name: _timed_phases(step) for name, (_, step) in runs.items()}
    best = dict.fromkeys(runs, 0.0)
    it = 0
    for name, (_, step) in runs.items():  # warm-up: oneDNN picks its kernels on the first calls
        for i in range(2):
            step(i, 0)
        phases[name].clear()
    for _ in range(repeats):
        for name, (_, step) in runs.items():
            t0 = time.perf_counter()
            for i in range(iters):
                step(it + i, 1000)
            best[name] = max(best[name], iters * batch / (time.perf_counter() - t0))
        it += iters
    rows = []
    for name in runs:
        per_phase = {k: 1000 * min(v) for k, v in phases[name].items()}  # fastest call: like best img/s, the least load
        rows.append({"setting": name, "img_s": best[name], "phases_ms": per_phase})
    return rows


def forward_difference(preset: str, extra: list[str]) -> float:
    """Relative difference of G's images and D's logits computed in the two layouts from the same weights."""
    runs = _trainings(preset, extra)
    outs = []
    for t, _ in runs.values():
        G, D = t.nets["G"].eval(), t.nets["D"].eval()
        with torch.no_grad():
            z, c = torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 2
            img = G(z, c)
            outs.append(torch.cat([img.flatten(), D(img, c).logits]))
    a, b = outs
    return ((a - b).norm() / a.norm()).item()


def drift(preset: str, extra: list[str], iters: int) -> float:
    """Relative difference of G's weights after ``iters`` iterations from the same state and seed."""
    runs = _trainings(preset, extra)
    weights = []
    for _, (t, step) in runs.items():
        torch.manual_seed(7)
        for i in range(iters):
            step(i, 32 * i)
        weights.append(torch.cat([p.detach().flatten() for p in t.nets["G"].parameters()]))
    a, b = weights
    return ((a - b).norm() / a.norm()).item()


def profile(preset: str, extra: list[str], iters: int) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    (_, step), _ = _trainings(preset, extra).values()
    for i in range(2):
        step(i, 0)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(iters):
            step(2 + i, 1000)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="brain-stylegan2-ada")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=12, help="iterations per timed repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="extra overrides, e.g. --set data.resolution=32")
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops of the NCHW step")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batch = load_config(args.preset, ["train.device=cpu", *args.set]).train.batch_size
    rows = measure(args.preset, args.set, args.iters, args.repeats, batch)
    rel, fwd = drift(args.preset, args.set, 4), forward_difference(args.preset, args.set)
    base = rows[0]["img_s"]
    names = sorted({k for r in rows for k in r["phases_ms"]}, key=["D", "Dreg", "G", "Greg"].index)
    lines = [
        f"# StyleGAN2 CPU speed: {args.preset} {' '.join(args.set)}".rstrip(),
        "",
        f"cpu x{args.threads} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"batch {batch}, best of {args.repeats} x {args.iters} iterations",
        "",
        "| setting | img/s | ratio | " + " | ".join(f"{n} ms" for n in names) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for r in rows:
        cells = " | ".join(f"{r['phases_ms'].get(n, 0):.0f}" for n in names)
        lines.append(f"| {r['setting']} | {r['img_s']:.1f} | {r['img_s'] / base:.2f} | {cells} |")
    lines += [
        "",
        f"Same weights, the two layouts: G's images and D's logits differ by {fwd:.1e} (relative; float rounding).",
        f"After 4 training iterations from the same state and seed, G's weights differ by {rel:.1e} (relative; Adam "
        "normalises each gradient, so rounding differences in small gradients grow into weight differences).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.profile:
        print(profile(args.preset, args.set, 8))


if __name__ == "__main__":
    main()
