"""The training loop: one readable function, measured in images (kimg), maintenance once per tick.

It walks the phases the run's family declares (for a GAN: D steps, lazy regularisation, G step) and
never names a family, a network or a loss. Statistics stay on the device and are read once per tick, so a step costs no
host-device synchronisation. Every tick: a log line, ``metrics.jsonl``, a fixed-noise sample grid,
the loss plot, the exported generator and an atomic checkpoint from which ``--resume`` continues
bit for bit.
"""

from __future__ import annotations

import copy
import math
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

import ganforge
from ganforge.config import Config, total_kimg
from ganforge.data import Dataset
from ganforge.errors import ConfigError
from ganforge.training import distributed
from ganforge.training.checkpoint import restore_checkpoint, save_checkpoint
from ganforge.training.curves import save_loss_plot
from ganforge.training.export import export_generator
from ganforge.training.fast import GraphedStep
from ganforge.training.grids import save_image_grid, save_scatter
from ganforge.training.monitor import Monitor, keep_best
from ganforge.training.recovery import lr_decay, on_nonfinite, set_learning_rates
from ganforge.training.rundir import CKPT_DIR, LATEST, append_record, atomic_write_json, truncate_history
from ganforge.training.setup import Setup
from ganforge.training.state import BatchSampler, rng_state, seed_everything, set_rng_state
from ganforge.training.stats import StatsAccumulator
from ganforge.training.step import EagerStep
from ganforge.variants import Family, Objective, OptimizerSpec


def make_step(cfg: Config, *args: Any) -> Callable[[int, int], int]:
    """The iteration implementation: eager, or CUDA-graph captured when train.cuda_graphs is on.

    ``args`` are (objective, opts, opt_specs, networks, ema, sampler, stats, device).
    """
    device: torch.device = args[-1]
    if cfg.train.cuda_graphs and distributed.current().parallel:
        warnings.warn("train.cuda_graphs is not used with several processes; using the eager step.", stacklevel=2)
    elif cfg.train.cuda_graphs and device.type == "cuda":
        return GraphedStep(cfg, *args)
    if cfg.train.cuda_graphs:
        warnings.warn(f"train.cuda_graphs needs a CUDA device, not {device}; using the eager step.", stacklevel=2)
    return EagerStep(cfg, *args)


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA GPU is visible; use train.device=auto or cpu.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(params: Any, spec: OptimizerSpec, cfg: Config, device: torch.device) -> torch.optim.Adam:
    # Fused Adam on CUDA (one kernel for all parameters); foreach on CPU.
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    betas = spec.betas if spec.betas is not None else (cfg.optim.beta1, cfg.optim.beta2)
    return torch.optim.Adam(params, lr=spec.lr, betas=betas, **fast)


@dataclass
class Training:
    """Everything a run builds before its first step: networks, EMA copies, objective, optimizers, sampler."""

    family: Family
    nets: dict[str, nn.Module]
    ema: dict[str, nn.Module]  # name of an averaged network -> its EMA copy
    objective: Objective
    opts: dict[str, torch.optim.Optimizer]
    opt_specs: dict[str, OptimizerSpec]
    sampler: BatchSampler
    stats: StatsAccumulator

    def make_step(self, cfg: Config, device: torch.device) -> Callable[[int, int], int]:
        """The iteration, ``step(iteration, images_seen) -> real images shown``. Made after a resume has restored the
        optimizers, since the CUDA-graph step adjusts their settings."""
        return make_step(cfg, self.objective, self.opts, self.opt_specs, self.nets, self.ema, self.sampler,
                         self.stats, device)


def build_training(cfg: Config, family: Family, data: Dataset, device: torch.device,
                   nets: dict[str, nn.Module] | None = None) -> Training:
    """Build a run from scratch (call after ``seed_everything``: initial weights depend on the seed).

    ``nets`` may bring already-built networks (the speed benchmark gives both programs the same weights).
    """
    nets = dict(nets) if nets is not None else family.build_networks(cfg, data)
    for name, net in nets.items():
        nets[name] = net.to(device)
        if cfg.train.channels_last and data.kind == "image":
            nets[name] = nets[name].to(memory_format=torch.channels_last)
    # Exponential moving averages of the networks the family names (G's, for a GAN), when train.ema_kimg > 0.
    ema = {name: copy.deepcopy(nets[name]).eval().requires_grad_(False)
           for name in family.ema_networks if cfg.train.ema_kimg > 0}
    # Small datasets live on the device whole; batches are gathered there by index.
    real_x = data.x.to(device)
    real_y = data.y.to(device) if data.y is not None else None
    objective = family.objective(cfg, nets, data, real_x, real_y)
    opt_specs = family.optimizers(cfg)
    opts = {name: make_optimizer([p for n in spec.networks for p in nets[n].parameters()], spec, cfg, device)
            for name, spec in opt_specs.items()}
    sampler = BatchSampler(len(data), cfg.train.batch_size, device, seed=cfg.train.seed)
    return Training(family, nets, ema, objective, opts, opt_specs, sampler, StatsAccumulator())


def training_loop(
    setup: Setup, run_dir: Path, *, resume: bool = False, progress: bool = True,
    log: Callable[[str], None] = print, on_tick: Callable[[int, Path], None] | None = None,
    monitor: Monitor | None = None,
) -> TrainResult:
    cfg, data = setup.cfg, setup.train_set
    world = distributed.current()  # one process, or one rank of `torchrun` (training/distributed.py)
    distributed.check_batch(cfg.train.batch_size, world)
    device = pick_device(cfg.train.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(cfg.train.seed)
    t = build_training(cfg, setup.family, data, device)
    distributed.sync_batchnorm(list(t.nets.values()), device, world)  # SyncBatchNorm on CUDA, in place
    family, nets, ema, objective, opts, sampler = t.family, t.nets, t.ema, t.objective, t.opts, t.sampler
    batch = cfg.train.batch_size
    total_images = int(round(total_kimg(cfg, len(data)) * 1000))
    tick_images = max(int(round((cfg.train.tick_kimg or total_images / 20_000) * 1000)), batch)

    step, images_seen, tick, wall_before = 0, 0, 0, 0.0
    if resume:
        ck = restore_checkpoint(run_dir / CKPT_DIR / LATEST, nets, ema, opts, sampler)  # validated first
        set_learning_rates(opts, t.opt_specs)  # a resume may change them (config.yaml wins over the optimiser state)
        step, images_seen, tick, wall_before = ck["step"], ck["images_seen"], ck["tick"], ck["wall_time"]
        if monitor is not None:
            monitor.load_state_dict(ck.get("monitor") or {})  # best value so far: keep-best continues exactly
        if int(ck.get("world_size", 1)) != world.size and world.main:
            warnings.warn(f"resuming a run written by {int(ck.get('world_size', 1))} process(es) with {world.size}: "
                          "data order and latents continue exactly, but per-rank randomness (dropout, augmentation) "
                          "and float summation order differ, so it will not match an uninterrupted run bit for bit.",
                          stacklevel=2)
        log(f"resumed from {run_dir / CKPT_DIR / LATEST} at {images_seen / 1000:.1f} kimg (tick {tick})")
    history = truncate_history(run_dir, images_seen, log) if world.main else []
    rollbacks = 0

    train_step = t.make_step(cfg, device)
    start, tick_start, tick_images_start = time.perf_counter(), time.perf_counter(), images_seen
    progress = progress and world.main
    bar = tqdm(total=total_images, initial=images_seen, unit="img", unit_scale=True, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    last_plot = 0.0
    summary: dict[str, Any] = {}
    tb = None
    if cfg.train.tensorboard:
        from ganforge.training.tensorboard import TensorBoardSink  # lazy: optional dependency

        tb = TensorBoardSink(run_dir, warn=log)
    decaying = cfg.optim.lr_decay_start < 1
    while images_seen < total_images:
        if decaying:  # optim.lr_decay_start: the rates follow the images seen (after any NaN rollbacks' lowering)
            set_learning_rates(opts, t.opt_specs,
                               cfg.train.nan_lr_factor**rollbacks * lr_decay(cfg, images_seen, total_images))
        shown = train_step(step, images_seen)
        images_seen += shown
        bar.update(shown)
        step += 1

        done = images_seen >= total_images
        if not done and images_seen < (tick + 1) * tick_images:
            continue
        # ---- maintenance, once per tick ----------------------------------------------------------
        tick += 1
        now = time.perf_counter()
        values = distributed.mean_over_ranks(t.stats.read_and_reset(), world)  # the one host-device sync of the tick
        record = {"tick": tick, "kimg": images_seen / 1000, "step": step, **values,
                  "time_s": round(wall_before + now - start, 3),
                  "img_per_s": round((images_seen - tick_images_start) / max(now - tick_start, 1e-9), 1),
                  **({"lr_scale": round(lr_decay(cfg, images_seen, total_images), 6)} if decaying else {})}
        if not all(math.isfinite(v) for v in values.values()):  # train.nan_policy: stop (raises) or roll back
            try:
                # the statistics are averaged over ranks, so every rank takes this branch at the same tick and
                # each reloads the checkpoint rank 0 wrote (complete: rank 0 wrote it before the all-reduce of
                # any later step), with the one random stream they share
                ck = on_nonfinite(cfg, run_dir, record, rollbacks, nets, ema, opts, t.opt_specs, sampler, log,
                                  write=world.main)
            except BaseException:
                bar.close()
                raise
            rollbacks += 1
            step, images_seen, tick = ck["step"], ck["images_seen"], ck["tick"]
            if monitor is not None:
                monitor.load_state_dict(ck.get("monitor") or {})
            history = truncate_history(run_dir, images_seen, log) if world.main else []
            bar.reset(total=total_images)
            bar.update(images_seen)
            tick_start, tick_images_start = time.perf_counter(), images_seen
            continue
        if not world.main:  # rank 0 alone writes; the other ranks go on training
            continue
        history.append(record)
        append_record(run_dir, record)
        if tb is not None:
            tb.log(record, step=images_seen)
        line = _log_line(record, list(values), objective.stat_labels, total_images)
        bar.write(line)
        _log_file(run_dir, line)
        sampled = ema.get(family.sample_network, nets[family.sample_network])  # what generate will sample from
        _save_grid(objective, sampled, data, run_dir / "grids" / f"tick-{tick:04d}.png", record)
        if done or time.perf_counter() - last_plot > 15:  # matplotlib is slow: at most every 15 s, and at the end
            save_loss_plot(history, run_dir / "losses.png", title=cfg.name)
            last_plot = time.perf_counter()
        spec = generator_info(cfg, family, data, bool(ema), images_seen / 1000, nets)
        sha = export_generator(run_dir, sampled, cfg, spec)
        if monitor is not None:  # before the checkpoint, which holds its state (training RNG untouched)
            saved = rng_state()
            checked = monitor.check(tick, images_seen / 1000, sampled, spec)
            set_rng_state(saved)
            if checked is not None:
                append_record(run_dir, checked.record)
                bar.write(checked.line)
                _log_file(run_dir, checked.line)
                if checked.improved:
                    keep_best(run_dir)
        payload = {
            **{name: net.state_dict() for name, net in nets.items()},
            **{f"{name}_ema": averaged.state_dict() for name, averaged in ema.items()},
            **{f"opt_{name}": opt.state_dict() for name, opt in opts.items()},
            "sampler": sampler.state_dict(), "rng": rng_state(), "step": step, "images_seen": images_seen, "tick": tick,
            "world_size": world.size, **({"monitor": monitor.state_dict()} if monitor is not None else {}),
            "wall_time": wall_before + time.perf_counter() - start, "config": cfg.to_dict(),
            "ganforge_version": ganforge.__version__,
        }
        save_checkpoint(run_dir / CKPT_DIR / LATEST, payload)
        if tick % cfg.train.snapshot_ticks == 0 or done:
            save_checkpoint(run_dir / CKPT_DIR / f"tick-{tick:04d}.pt", payload)
        if on_tick is not None:
            saved = rng_state()  # hooks (e.g. periodic evaluation) must not perturb training randomness
            on_tick(tick, run_dir)
            set_rng_state(saved)
        summary = {
            "name": cfg.name, "variant": cfg.variant, "dataset": data.name, "kimg": images_seen / 1000,
            "images_seen": images_seen, "steps": step, "ticks": tick,
            "wall_time_s": round(wall_before + time.perf_counter() - start, 2),
            "final": {k: v for k, v in values.items()}, "generator_sha256": sha, "ema": bool(ema),
            "device": _device_name(device), "torch_version": torch.__version__,
            "ganforge_version": ganforge.__version__, "python": platform.python_version(),
            **({"health": monitor.summary()} if monitor is not None else {}),
        }
        atomic_write_json(run_dir / "summary.json", summary)
        tick_start, tick_images_start = time.perf_counter(), images_seen
    bar.close()
    if tb is not None:
        tb.close()
    return TrainResult(run_dir, summary)


def generator_info(cfg: Config, family: Family, data: Dataset, ema: bool, kimg: float,
                   nets: dict[str, nn.Module] | None = None) -> dict[str, Any]:
    """What ``generator.json`` records beside the weights: the data's shape and kind, the labels G takes (the
    family's ``label_info``, from the networks as trained so far), how the family conditions, and where in training
    the weights come from."""
    return {"shape": list(data.shape), **family.label_info(cfg, data, nets), "kind": data.kind,
            "mask_channels": data.mask_channels,
            **({"shape_b": list(data.shape_b), "domains": list(data.domains)} if data.two_domain else {}),
            **family.export_info(), "variant": cfg.variant, "ema": ema, "kimg": kimg}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def _save_grid(objective: Objective, net: torch.nn.Module, data: Dataset, path: Path, record: dict[str, Any]) -> None:
    fake, grid_rows = objective.grid(net)  # the family's fixed grid inputs, drawn without touching training RNG
    if data.kind == "points":
        save_scatter(data.x[:1024], fake, path, title=f"{data.name}: real vs generated, {record['kimg']:.1f} kimg")
    else:
        save_image_grid(fake, path, nrow=grid_rows, mask_channels=data.mask_channels)
    latest = path.parent.parent / ("samples.png")
    latest.write_bytes(path.read_bytes())


def _log_line(r: dict[str, Any], stats: list[str], labels: dict[str, str], total_images: int) -> str:
    """``tick 3  kimg 1.2/4.0  <each statistic>  5.1s 240 img/s``; statistics in the family's order and labels."""
    parts = [f"tick {r['tick']:<4d}", f"kimg {r['kimg']:.1f}/{total_images / 1000:.1f}"]
    parts += [f"{labels.get(key, key)} {r[key]:.3f}" for key in stats]
    parts.append(f"{r['time_s']:.1f}s {r['img_per_s']:,.0f} img/s")
    return "  ".join(parts)


def _log_file(run_dir: Path, line: str) -> None:
    with open(run_dir / "log.txt", "a") as f:
        f.write(line + "\n")

