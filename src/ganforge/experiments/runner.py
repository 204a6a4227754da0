"""Run directories: create one (never over an existing run), or reopen one to resume."""

from __future__ import annotations

from pathlib import Path

import yaml

from ganforge.config import Config, config_from_dict, merge, parse_override
from ganforge.errors import ConfigError, RunDirError
from ganforge.training.checkpoint import atomic_write_text
from ganforge.training.loop import CKPT_DIR, LATEST, TrainResult, training_loop
from ganforge.training.setup import prepare


def new_run_dir(out: str | None, name: str, root: str = "runs") -> Path:
    """``out`` if given and free; else ``runs/NAME``, ``runs/NAME-2``, ... (a new name, never an old one)."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunDirError(
                f"run directory {out!r} already exists. Continue it with `ganforge train --resume {out}`, "
                "or choose another --out (nothing was overwritten)."
            )
        return path
    base = Path(root) / (name or "run")
    path, i = base, 2
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


def start_run(cfg: Config, out: str | None, *, progress: bool = True, on_tick=None, log=print) -> TrainResult:
    setup = prepare(cfg)  # fails before anything is written
    run_dir = new_run_dir(out, cfg.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    log(f"run directory: {run_dir}")
    return training_loop(setup, run_dir, progress=progress, on_tick=on_tick, log=log)


RESUME_KEYS = ("train.kimg", "train.epochs", "train.tick_kimg", "train.snapshot_ticks")


def resume_config(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    cfg_path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {str(run_dir)!r} does not exist; check the path given to --resume.")
    if not cfg_path.is_file() or not (run_dir / CKPT_DIR / LATEST).is_file():
        raise RunDirError(
            f"{str(run_dir)!r} has no config.yaml and {CKPT_DIR}/{LATEST}: it is not a resumable ganforge run "
            "(it may have been stopped before its first tick; start it again with a new --out)."
        )
    data = yaml.safe_load(cfg_path.read_text())
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key not in RESUME_KEYS:
            raise ConfigError(
                f"--set {key} cannot change when resuming (it would not continue the same run). "
                f"Only {', '.join(RESUME_KEYS)} can; start a new run for anything else."
            )
        data = merge(data, parse_override(text))
    return config_from_dict(data)


def resume_run(run_dir: Path, overrides: list[str] | tuple[str, ...] = (), *, progress: bool = True,
               on_tick=None, log=print) -> TrainResult:
    cfg = resume_config(run_dir, overrides)
    setup = prepare(cfg)
    if overrides:
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    return training_loop(setup, run_dir, resume=True, progress=progress, on_tick=on_tick, log=log)
