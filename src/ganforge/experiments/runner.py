"""Run directories: create one (never over an existing run), or reopen one to resume.

Both hold the folder's lock (``training.lock``) while they write it, validate everything first
(config, dataset, checkpoint) and write nothing before that; a new run that fails before its first
checkpoint leaves no folder behind.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ganforge.config import Config, config_from_dict, merge, parse_override, total_kimg
from ganforge.errors import ConfigError, RunDirError
from ganforge.training import distributed
from ganforge.training.checkpoint import restore_checkpoint, sha256_file
from ganforge.training.lock import LOCK_FILE, FolderLock, acquire
from ganforge.training.loop import TrainResult, build_training, pick_device, training_loop
from ganforge.training.monitor import BEST_DIR, Monitor
from ganforge.training.rundir import (
    CKPT_DIR,
    CONFIG,
    LATEST,
    LOG,
    METRICS,
    SPEC,
    SUMMARY,
    SUMMARY_KEYS,
    WEIGHTS,
    append_record,
    atomic_write_json,
    atomic_write_text,
    is_temp_file,
    make_new_folder,
    read_config_dict,
    read_summary,
    remove_stale_temps,
)
from ganforge.training.setup import Setup, prepare

# What may differ between a sweep's planned config and a run it finds (the run's length).
RESUME_KEYS = ("train.kimg", "train.epochs", "train.tick_kimg", "train.snapshot_ticks")
# What `--resume` may change: the length, the learning rates and their decay, the NaN policy and
# evaluation/logging settings. Anything else (data, model, objective, seeds) would not continue the same run.
SAFE_RESUME_KEYS = RESUME_KEYS + (
    "optim.lr_g", "optim.lr_d", "optim.lr_decay_start", "train.nan_policy", "train.nan_rollbacks",
    "train.nan_lr_factor", "train.tensorboard", "eval.every_ticks", "eval.metrics", "eval.n", "eval.extractor",
    "health.every_ticks",
)


def _exists_message(out: str) -> str:
    return (f"run directory {out!r} already exists. Continue it with `ganforge train --resume {out}`, "
            "or choose another --out (nothing was overwritten).")


# What a run writes before its first checkpoint (the first tick writes these, then checkpoints/latest.pt).
BEFORE_FIRST_CHECKPOINT = {CONFIG, LOCK_FILE, METRICS, LOG, "grids", "samples.png", "losses.png", WEIGHTS, SPEC,
                           CKPT_DIR, BEST_DIR}


def _unstarted(path: Path) -> bool:
    """A folder a killed ``ganforge train`` left before its first checkpoint: nothing to resume, ours to reuse."""
    names = {p.name for p in path.iterdir()}
    return not (path / CKPT_DIR / LATEST).exists() and all(
        n in BEFORE_FIRST_CHECKPOINT or is_temp_file(n) for n in names)


def new_run_dir(out: str | None, name: str, root: str = "runs") -> Path:
    """``out`` if given and free; else ``runs/NAME``, ``runs/NAME-2``, ... (a new name, never an old one).

    ``out`` may also be a run that was killed before its first tick (nothing in it but its config).
    """
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not _unstarted(path))):
            raise RunDirError(_exists_message(out))
        return path
    base = Path(root) / (name or "run")
    path, i = base, 2
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


def claim_new_folder(out: str | None, name: str, command: str, log: Callable[[str], None] = print,
                     ) -> tuple[Path, FolderLock, Callable[[], None]]:
    """Create and lock a new (or empty) run directory; return it, its lock and an undo that removes it.

    Two processes given the same --out: one gets the folder, the other is refused (or, without --out,
    takes the next free name).
    """
    for _ in range(100):
        run_dir = new_run_dir(out, name)
        undo = make_new_folder(run_dir)
        try:
            lock = acquire(run_dir, command, log)
        except RunDirError:
            if out is not None:
                raise
            continue  # another process took this default name first: the next one
        if _unstarted(run_dir):
            for p in run_dir.iterdir():
                if p.name != LOCK_FILE:  # a killed start's config, first-tick files, temp files: ours to replace
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            return run_dir, lock, undo
        lock.release()  # someone wrote here between our check and our lock: theirs, not ours to remove
        if out is not None:
            raise RunDirError(_exists_message(out))
    raise RunDirError(f"could not find a free run directory under runs/{name}; give one with --out.")


def health_monitor(setup: Setup) -> Monitor | None:
    """The collapse check and keep-best of ``health.*`` (``metrics.health``), or None when it is off."""
    if setup.cfg.health.every_ticks == 0:
        return None
    from ganforge.metrics.health import build_monitor  # metrics sit above training: handed to the loop

    sampled = setup.build_networks()[setup.family.sample_network]
    return build_monitor(setup.cfg, setup.family, setup.train_set, sampled, pick_device(setup.cfg.train.device))


def start_run(cfg: Config, out: str | None, *, progress: bool = True, on_tick=None, log=print) -> TrainResult:
    setup = prepare(cfg)  # fails before anything is written
    world = distributed.current()
    monitor = health_monitor(setup) if world.main else None
    claimed: dict = {}

    def create() -> str:  # rank 0 claims, locks and creates the folder; every rank trains into that one
        run_dir, lock, undo = claim_new_folder(out, cfg.name, f"ganforge train {cfg.name}", log)
        claimed.update(lock=lock, undo=undo, run_dir=run_dir)
        atomic_write_text(run_dir / CONFIG, cfg.to_yaml())
        log(f"run directory: {run_dir}" + (f"  ({world.size} processes)" if world.parallel else ""))
        return str(run_dir)

    try:
        run_dir = Path(distributed.on_main(create, world))
        return training_loop(setup, run_dir, progress=progress, on_tick=on_tick if world.main else None, log=log,
                             monitor=monitor)
    except BaseException:
        made = claimed.get("run_dir")
        if made is not None and not (made / CKPT_DIR / LATEST).is_file():  # nothing worth keeping: no half-made folder
            claimed["undo"]()
            log(f"no tick finished: removed {made}")
        raise
    finally:
        if "lock" in claimed:
            claimed["lock"].release()


def _check_resumable(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {str(run_dir)!r} does not exist; check the path given to --resume.")
    if not (run_dir / CONFIG).is_file() or not (run_dir / CKPT_DIR / LATEST).is_file():
        raise RunDirError(
            f"{str(run_dir)!r} has no {CONFIG} and {CKPT_DIR}/{LATEST}: it is not a resumable ganforge run "
            "(it may have been stopped before its first tick: start it again with the same --out, which is reused)."
        )


def resume_config(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The run's config with the allowed ``--set`` changes applied; config.yaml is checked, not changed."""
    _check_resumable(run_dir)
    data = read_config_dict(run_dir)
    try:
        config_from_dict(data)
    except ConfigError as e:
        raise RunDirError(f"{str(run_dir / CONFIG)!r} is not a valid config ({str(e).rstrip('.')}); restore it "
                          "(every checkpoint holds a copy) or start a new run.") from None
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key not in SAFE_RESUME_KEYS:
            raise ConfigError(
                f"--set {key[:60]} cannot change when resuming (it would not continue the same run). "
                f"Only {', '.join(SAFE_RESUME_KEYS)} can; start a new run for anything else."
            )
        data = merge(data, parse_override(text))
    return config_from_dict(data)


def _dry_restore(setup: Setup, path: Path) -> dict:
    """Load the checkpoint into a fresh CPU copy of the run: every check runs before the real loop writes anything."""
    t = build_training(setup.cfg, setup.family, setup.train_set, torch.device("cpu"))
    return restore_checkpoint(path, t.nets, t.ema, t.opts, t.sampler)


def resume_run(run_dir: Path, overrides: list[str] | tuple[str, ...] = (), *, progress: bool = True,
               on_tick=None, log=print) -> TrainResult:
    run_dir = Path(run_dir)
    _check_resumable(run_dir)
    world = distributed.current()  # every rank runs the checks; rank 0 alone locks and writes
    lock = acquire(run_dir, f"ganforge train --resume {run_dir}", log) if world.main else contextlib.nullcontext()
    with lock:
        old = resume_config(run_dir)
        cfg = resume_config(run_dir, overrides)
        setup = prepare(cfg)
        ck = _dry_restore(setup, run_dir / CKPT_DIR / LATEST)
        done, n = ck["images_seen"], len(setup.train_set)
        target, old_target = round(total_kimg(cfg, n) * 1000), round(total_kimg(old, n) * 1000)
        if target <= done:
            if target < old_target:
                raise ConfigError(
                    f"this run has trained {done / 1000:g} kimg already; a length of {target / 1000:g} kimg would "
                    f"end before that. Give more, e.g. --set train.kimg={2 * done / 1000:g} (nothing was changed)."
                )
            if not world.main:
                return TrainResult(run_dir, {})
            log(f"{run_dir} is already finished ({done / 1000:g} kimg of {target / 1000:g}); nothing to train. "
                f"To train longer: ganforge train --resume {run_dir} --set train.kimg={2 * done / 1000:g}")
            return TrainResult(run_dir, _finished_summary(run_dir, ck, log))
        changes = _changes(old.to_dict(), cfg.to_dict())
        if world.main:
            remove_stale_temps(run_dir, log)
            if changes:  # the config the run continues under, and the change in the run's history
                atomic_write_text(run_dir / CONFIG, cfg.to_yaml())
                append_record(run_dir, {"type": "resume", "at_kimg": done / 1000, "changes": changes})
                log("resume changes: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()))
        distributed.barrier(world)
        return training_loop(setup, run_dir, resume=True, progress=progress, on_tick=on_tick if world.main else None,
                             log=log, monitor=health_monitor(setup) if world.main else None)


def _finished_summary(run_dir: Path, ck: dict, log: Callable[[str], None]) -> dict:
    """summary.json of a finished run; rewritten from the checkpoint when it is missing, damaged, or behind it (the
    last tick's checkpoint is written before its summary: a run killed in between has the previous tick's)."""
    try:
        summary = read_summary(run_dir, require=SUMMARY_KEYS)
        if summary["images_seen"] != ck["images_seen"]:
            raise RunDirError(f"{run_dir / SUMMARY} is behind the checkpoint ({summary['images_seen']} images seen "
                              f"against {ck['images_seen']}); the run was stopped between the two")
        return summary
    except RunDirError as e:
        summary = {"kimg": ck["images_seen"] / 1000, "images_seen": ck["images_seen"], "ticks": ck["tick"],
                   "steps": ck["step"], "wall_time_s": round(float(ck["wall_time"]), 2), "final": {},
                   "generator_sha256": sha256_file(run_dir / WEIGHTS) if (run_dir / WEIGHTS).is_file() else None}
        atomic_write_json(run_dir / SUMMARY, summary)
        log(f"{str(e).split(';')[0]}: rewrote it from the checkpoint.")
        return summary


def _changes(old: dict, new: dict, prefix: str = "") -> dict[str, list]:
    out: dict[str, list] = {}
    for key in new:
        a, b = old.get(key), new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out |= _changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out[f"{prefix}{key}"] = [a, b]
    return out
