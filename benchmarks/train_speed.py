"""Training speed: a study-style loop vs ganforge's step, one model, one process, one device.

For the PathMNIST DCGAN (``pathmnist-dcgan``, 3x28x28), the MNIST DCGAN (``mnist-dcgan``, 1x28x28) and
the dense MNIST GAN (``mnist-mlp``, 1x28x28) at each batch size, times

  (a) ``benchmarks/plain_loop.py``: DataLoader over a CPU TensorDataset, ``.item()`` every step, fp32;
  (b) ganforge's step (``make_step``, as ``training_loop`` builds it) on device-resident data, with the
      best settings for the device: on CUDA bf16 autocast + channels_last (convolutional models) + CUDA
      graphs; on a CPU the eager step with ``train.amp=auto`` (bf16 autocast where the CPU has
      AVX512-BF16/AMX, fp32 elsewhere; the table says which).

Both train the same networks from the same initial weights. Warm-up iterations (and graph capture) are
excluded; the timed part runs for ``--seconds`` per cell (at least ``--min-iters`` iterations) and ends
with a device synchronisation. Images/s counts real images shown to D. The data is synthetic (random
pixels at the datasets' sizes; speed does not depend on pixel values) unless ``--pathmnist`` points
to the MedMNIST ``pathmnist.npz``.

``--eval`` also times a full evaluation with ``ganforge.metrics``: features of 50,000 generated images
and of the real reference set with the domain extractor, then FID, KID and precision/recall/density/coverage.

    PYTHONPATH=src python benchmarks/train_speed.py --out speed.md            # CUDA if present
    PYTHONPATH=src python benchmarks/train_speed.py --quick --out speed-cpu.md  # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make ``benchmarks.plain_loop`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.plain_loop import plain_train  # noqa: E402
from ganforge.config import Config  # noqa: E402
from ganforge.data import Dataset  # noqa: E402
from ganforge.models import build_models  # noqa: E402
from ganforge.presets import load_config  # noqa: E402
from ganforge.training.loop import build_training  # noqa: E402
from ganforge.training.precision import resolve_amp  # noqa: E402
from ganforge.training.state import seed_everything  # noqa: E402
from ganforge.training.stats import StatsAccumulator  # noqa: E402
from ganforge.variants import VARIANTS  # noqa: E402

# name -> (preset, image shape, training-set size)
MODELS = {"dcgan": ("pathmnist-dcgan", (3, 28, 28), 89_996), "mnist-dcgan": ("mnist-dcgan", (1, 28, 28), 60_000),
          "mlp": ("mnist-mlp", (1, 28, 28), 60_000)}


@dataclass
class Trainer:
    step: object  # EagerStep or GraphedStep: step(iteration, images_seen) -> images shown
    stats: StatsAccumulator
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module | None


def build_trainer(
    cfg: Config, x: torch.Tensor, y: torch.Tensor | None, num_classes: int, device: torch.device,
    models: tuple[torch.nn.Module, torch.nn.Module] | None = None,
) -> Trainer:
    """What ``training_loop`` builds before its first step, on in-memory data ``x`` [N, C, H, W]."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(cfg.train.seed)
    family = VARIANTS.get(cfg.variant)
    data = Dataset("benchmark", x, y, num_classes=num_classes, class_names=tuple(map(str, range(num_classes))))
    nets = {"G": models[0], "D": models[1]} if models is not None else None
    t = build_training(cfg, family, data, device, nets)
    return Trainer(t.make_step(cfg, device), t.stats, t.nets["G"], t.nets["D"], t.ema.get("G"))


def synthetic_images(n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """[n, *shape] float32 in [-1, 1] on 256 grey levels, like real uint8 images."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8).float().div_(127.5).sub_(1.0)


def load_pathmnist(path: str) -> torch.Tensor:
    arr = np.load(path)["train_images"]  # [N, 28, 28, 3] uint8
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2))).float().div_(127.5).sub_(1.0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ganforge(cfg: Config, x: torch.Tensor, device: torch.device, models, *, seconds: float, warmup: int,
                  min_iters: int, cudnn_benchmark: bool = False) -> tuple[float, float, float]:
    """(images/s, images per CPU-second of this process, mean loss_D of the timed iterations) of ganforge's step."""
    torch.backends.cudnn.benchmark = cudnn_benchmark
    t = build_trainer(cfg, x, None, 0, device, models)
    it = 0
    for _ in range(warmup):  # eager warm-up, capture, first replays
        t.step(it, 0)
        it += 1
    t.stats.read_and_reset()
    _sync(device)
    images, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        images += t.step(it, images)
        it += 1
        if it - warmup >= min_iters and time.perf_counter() - start >= seconds:
            break
    _sync(device)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    loss_d = t.stats.read_and_reset()["loss_D"]  # the once-per-tick read, outside the timing
    torch.backends.cudnn.benchmark = False
    return images / elapsed, images / max(cpu, 1e-9), loss_d


def time_plain(cfg: Config, x: torch.Tensor, device: torch.device, models, *, seconds: float, warmup: int,
               min_iters: int) -> tuple[float, float, float]:
    if device.type == "cuda":  # the studies' defaults: fp32 matmuls, cuDNN's default TF32 convolutions
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.train.seed)
    G, D = models
    r = plain_train(G, D, x, batch_size=cfg.train.batch_size, iterations=10**9, lr_g=cfg.optim.lr_g,
                    lr_d=cfg.optim.lr_d, betas=(cfg.optim.beta1, cfg.optim.beta2), seed=cfg.train.seed,
                    device=device, warmup=warmup, max_seconds=seconds, min_iterations=min_iters)
    return r.img_per_s, r.images / max(r.cpu_seconds, 1e-9), float(np.mean(r.loss_D))


def fast_overrides(device: torch.device, model: str) -> list[str]:
    if device.type != "cuda":
        # bf16 autocast where the CPU runs it natively (AVX512-BF16/AMX), fp32 elsewhere: what `demo` uses.
        return ["train.amp=auto"]
    out = ["train.amp=bf16", "train.cuda_graphs=true"]
    if model == "dcgan":
        out.append("train.channels_last=true")
    return out


def run_cells(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Time both arms for every (model, batch); best of ``--repeats`` interleaved rounds (robust to a busy CPU)."""
    rows = []
    for model in args.models:
        preset, shape, n_full = MODELS[model]
        n = args.n or (n_full if device.type == "cuda" else 10_000)
        x = load_pathmnist(args.pathmnist) if model == "dcgan" and args.pathmnist else synthetic_images(n, shape)
        for batch in args.batches:
            base = [f"train.batch_size={batch}", "train.seed=0"]
            cfg_plain = load_config(preset, base)
            cfg_fast = load_config(preset, base + fast_overrides(device, model) + args.set)
            torch.manual_seed(0)
            models = build_models(cfg_plain.model, shape, 1, VARIANTS.get(cfg_plain.variant).conditioning)
            plain = fast = plain_cpu = fast_cpu = 0.0
            losses = (0.0, 0.0)
            for _ in range(args.repeats):
                p, p_cpu, p_loss = time_plain(cfg_plain, x, device, copy.deepcopy(models), seconds=args.seconds,
                                              warmup=args.warmup, min_iters=args.min_iters)
                f, f_cpu, f_loss = time_ganforge(cfg_fast, x, device, copy.deepcopy(models), seconds=args.seconds,
                                                 warmup=args.warmup + 5 * (device.type == "cuda"),
                                                 min_iters=args.min_iters, cudnn_benchmark=args.cudnn_benchmark)
                plain, fast, losses = max(plain, p), max(fast, f), (p_loss, f_loss)
                plain_cpu, fast_cpu = max(plain_cpu, p_cpu), max(fast_cpu, f_cpu)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            row = {"model": f"{model} ({preset}, {'x'.join(map(str, shape))})", "batch": batch, "n": len(x),
                   "plain": plain, "ganforge": fast, "ratio": fast / plain, "settings": settings_text(cfg_fast, device),
                   "plain_cpu": plain_cpu, "ganforge_cpu": fast_cpu}
            rows.append(row)
            print(f"{row['model']:<34} batch {batch:>5}: plain {plain:>11,.0f} img/s  ganforge {fast:>11,.0f} img/s"
                  f"  x{fast / plain:.2f}  | per CPU-s: {plain_cpu:,.0f} / {fast_cpu:,.0f} x{fast_cpu / plain_cpu:.2f}"
                  f"  (mean loss_D {losses[0]:.3f} / {losses[1]:.3f})", flush=True)
    return rows


def settings_text(cfg: Config, device: torch.device) -> str:
    if device.type != "cuda":
        parts = ["eager", "bf16 autocast" if resolve_amp(cfg.train.amp, device) is not None else "fp32"]
        parts += ["channels_last"] if cfg.train.channels_last else []
        parts += ["G reuses D's fakes (one G forward per iteration)"] if cfg.objective.reuse_fakes else []
        return ", ".join(parts)
    parts = ["bf16" if cfg.train.amp == "bf16" else "fp32"]
    if cfg.train.channels_last:
        parts.append("channels_last")
    parts.append("CUDA graphs" if cfg.train.cuda_graphs else "eager")
    return " + ".join(parts)


def time_evaluation(device: torch.device, x: torch.Tensor, n_gen: int = 50_000, n_real: int = 50_000,
                    num_classes: int = 9) -> list[tuple[str, float]]:
    """Seconds of each stage of a full evaluation with ``ganforge.metrics``' pure functions.

    Domain extractor (trained once per dataset and cached, timed apart), 50,000 generated images from
    the DCGAN G, features of those and of ``n_real`` real images, FID, KID (100 subsets of 1,000) and
    precision/recall/density/coverage (k = 3 / 5). Labels are random when the data is synthetic: the
    extractor's accuracy is meaningless then, its cost is not.
    """
    try:
        from ganforge.data.base import Dataset
        from ganforge.metrics.domain_extractor import build_domain_extractor
        from ganforge.metrics.fid import fid_from_features
        from ganforge.metrics.kid import kid
        from ganforge.metrics.prdc import prdc
    except ImportError as e:
        print(f"evaluation not timed: {e}")
        return [(f"not timed: ganforge.metrics is incomplete ({e})", float("nan"))]
    rows: list[tuple[str, float]] = []

    def timed(name: str, fn):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        rows.append((name, time.perf_counter() - t0))
        print(f"  {name}: {rows[-1][1]:.2f} s", flush=True)
        return out

    n_real = min(n_real, len(x))
    y = torch.randint(0, num_classes, (len(x),), generator=torch.Generator().manual_seed(0))
    train = Dataset("pathmnist-like", x, y, num_classes=num_classes, class_names=tuple(map(str, range(num_classes))))
    ext = timed("domain extractor: train (once per dataset, then cached; not in the total)",
                lambda: build_domain_extractor(train, None, device=device, cache=False))
    cfg = load_config("pathmnist-dcgan")
    torch.manual_seed(0)
    G = build_models(cfg.model, tuple(x.shape[1:]), 1, VARIANTS.get(cfg.variant).conditioning)[0].to(device).eval()

    @torch.no_grad()
    def generate() -> torch.Tensor:
        return torch.cat([G(torch.randn(5000, G.z_dim, device=device)).float().cpu() for _ in range(n_gen // 5000)])

    gen = timed(f"generate {n_gen:,} images (DCGAN G, batches of 5,000)", generate)
    f_gen = timed(f"features: {n_gen:,} generated", lambda: ext.features_and_logits(gen)[0])
    f_real = timed(f"features: {n_real:,} real (reference set)", lambda: ext.features_and_logits(x[:n_real])[0])
    timed("FID", lambda: fid_from_features(f_real, f_gen))
    timed("KID (100 subsets of 1,000)", lambda: kid(f_real, f_gen, rng=0))
    timed(f"precision/recall/density/coverage ({n_real:,} x {n_gen:,}, k 3/5)", lambda: prdc(f_real, f_gen))
    rows.append(("total: generate + features + FID + KID + PRDC", sum(sec for _, sec in rows[1:])))
    return rows


def device_text(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs), CUDA {torch.version.cuda}"
    return f"CPU, {torch.get_num_threads()} threads ({platform.processor() or platform.machine()})"


def to_markdown(rows: list[dict], device: torch.device, args: argparse.Namespace, eval_rows) -> str:
    lines = [
        "# Training speed: study-style loop vs ganforge",
        "",
        f"- device: {device_text(device)}",
        f"- torch {torch.__version__}, python {platform.python_version()}",
        f"- timing: {args.seconds:g} s per cell after {args.warmup} warm-up iterations (ganforge on CUDA: "
        f"{args.warmup + 5} incl. capture), synchronised, best of {args.repeats} interleaved round(s); "
        "images/s = real images shown to D",
        "- plain: DataLoader(TensorDataset, shuffle) on CPU data, .item() per step, separate optimiser calls, fp32",
        f"- ganforge: device-resident data, {rows[0]['settings'] if rows else ''}",
        "",
    ]
    cpu = device.type != "cuda"  # a shared CPU: also images per CPU-second of this process, which contention moves less
    lines.append("| device | torch | model | batch | plain img/s | ganforge img/s | ratio b/a |"
                 + (" plain img/CPU-s | ganforge img/CPU-s | ratio |" if cpu else ""))
    lines.append("| --- | --- | --- | ---: | ---: | ---: | ---: |" + (" ---: | ---: | ---: |" if cpu else ""))
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    for r in rows:
        extra = (f" {r['plain_cpu']:,.0f} | {r['ganforge_cpu']:,.0f} | {r['ganforge_cpu'] / r['plain_cpu']:.2f} |"
                 if cpu else "")
        lines.append(f"| {dev} | {torch.__version__} | {r['model']} | {r['batch']:,} | {r['plain']:,.0f} | "
                     f"{r['ganforge']:,.0f} | {r['ratio']:.2f} |" + extra)
    if eval_rows:
        lines += ["", "## Evaluation", "", "| stage | seconds |", "| --- | ---: |"]
        lines += [f"| {name} | {sec:.2f} |" for name, sec in eval_rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--models", default="dcgan,mnist-dcgan,mlp", type=lambda s: s.split(","),
                    help=f"comma-separated, from: {', '.join(MODELS)}")
    ap.add_argument("--batches", default="64,128,1024,4096", type=lambda s: [int(b) for b in s.split(",")])
    ap.add_argument("--seconds", type=float, default=None, help="timed seconds per cell (default 3 CUDA, 6 CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed iterations (default 10 CUDA, 1 CPU)")
    ap.add_argument("--min-iters", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=None, help="interleaved rounds, best kept (default 1 CUDA, 3 CPU)")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune (ganforge's arm)")
    ap.add_argument("--set", action="append", default=[], help="extra config override for ganforge's arm")
    ap.add_argument("--n", type=int, default=None, help="training-set size (default: the dataset's; 10,000 on CPU)")
    ap.add_argument("--pathmnist", default=None, help="pathmnist.npz to use instead of synthetic PathMNIST pixels")
    ap.add_argument("--quick", action="store_true", help="CPU: 1 s cells, 1 warm-up + >= 1 timed iteration, 2 rounds")
    ap.add_argument("--eval", action="store_true", help="also time a 50,000-sample evaluation")
    ap.add_argument("--out", default=None, help="write the table as markdown here")
    args = ap.parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        ap.error(f"unknown --models {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cuda = device.type == "cuda"
    # CPU: 6-s cells. With 2-s cells on a shared 2-core VM, one full run gave the DCGAN 0.92x and 0.95x at batch 64
    # and 1,024 where 6-s cells and a rerun gave 1.07x and 1.10x: a few slow iterations swing a short window.
    args.seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else (3.0 if cuda else 6.0))
    args.repeats = args.repeats or (1 if cuda else (2 if args.quick else 3))
    args.min_iters = 1 if args.quick and not cuda else args.min_iters
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick and not cuda else (10 if cuda else 1))
    print(f"device: {device_text(device)}; torch {torch.__version__}", flush=True)
    rows = run_cells(args, device)
    eval_rows: list[tuple[str, float]] = []
    if args.eval:
        _, shape, n = MODELS["dcgan"]
        x = load_pathmnist(args.pathmnist) if args.pathmnist else synthetic_images(n, shape)
        eval_rows = time_evaluation(device, x)
    text = to_markdown(rows, device, args, eval_rows)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
