"""What the loop does when losses become NaN or infinite (``train.nan_policy``), and learning-rate changes.

- ``optim.lr_decay_start``: both rates stay as configured until that fraction of the run, then fall linearly
  to 0 at its end. The factor is a function of the images seen, so a resumed run continues on the same line.

- ``stop``: raise TrainingDiverged (exit code 3) with a message that is true about what is kept: the
  last checkpoint and where it stands, or that no tick had finished yet.
- ``rollback``: reload ``checkpoints/latest.pt`` (weights, optimisers, sampler, RNG), multiply both
  learning rates by ``train.nan_lr_factor`` and continue; at most ``train.nan_rollbacks`` times per
  process. Each rollback is a ``{"type": "rollback"}`` record in metrics.jsonl and a line in the log, and
  config.yaml is rewritten with the lowered rates, so a later ``--resume`` continues at those rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ganforge.config import Config, to_plain
from ganforge.errors import TrainingDiverged
from ganforge.training.checkpoint import restore_checkpoint
from ganforge.training.rundir import CKPT_DIR, CONFIG, LATEST, append_record, atomic_write_text
from ganforge.variants import OptimizerSpec


def set_learning_rates(
    opts: dict[str, torch.optim.Optimizer], specs: dict[str, OptimizerSpec], scale: float = 1.0
) -> None:
    """The config's rates (times ``scale``) win over the ones stored with the optimiser state (a resume may change
    them)."""
    for name, opt in opts.items():
        for group in opt.param_groups:
            group["lr"] = specs[name].lr * scale


def lr_decay(cfg: Config, images_seen: int, total_images: int) -> float:
    """``optim.lr_decay_start``'s factor on both rates after ``images_seen`` of ``total_images``: 1 until the start,
    then linear to 0 at the end."""
    start = cfg.optim.lr_decay_start
    if start >= 1:
        return 1.0
    done = images_seen / max(total_images, 1)
    return 1.0 if done <= start else max(0.0, (1.0 - done) / (1.0 - start))


def on_nonfinite(
    cfg: Config,
    run_dir: Path,
    record: dict[str, Any],
    rollbacks: int,
    nets: dict[str, nn.Module],
    ema: dict[str, nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    specs: dict[str, OptimizerSpec],
    sampler: Any,
    log: Callable[[str], None],
    write: bool = True,
) -> dict[str, Any]:
    """Raise TrainingDiverged, or roll back to the last checkpoint and return it (the loop resets its counters).

    Every optimiser's rate comes from optim.lr_g / optim.lr_d, so lowering both config rates by the factor
    lowers every optimiser's by it, whatever the family names them. ``write``: False on the ranks of torchrun
    other than 0, which roll back alike but leave config.yaml, the log and metrics.jsonl to rank 0.
    """
    latest = Path(run_dir) / CKPT_DIR / LATEST
    bad = ", ".join(f"{k}={v}" for k, v in record.items() if isinstance(v, float) and not math.isfinite(v))
    where = f"losses became NaN or infinite by {record['kimg']:.1f} kimg (tick {record['tick']}): {bad}."
    scale = cfg.train.nan_lr_factor**rollbacks  # the rates now run at scale x the configured ones
    lr_g, lr_d = cfg.optim.lr_g * scale, cfg.optim.lr_d * scale
    factor = cfg.train.nan_lr_factor
    lower = f"--set optim.lr_g={lr_g * factor:.3g} --set optim.lr_d={lr_d * factor:.3g}"
    if not latest.is_file():
        raise TrainingDiverged(
            f"{where} No checkpoint had been written yet, so there is nothing to resume: start again with lower "
            f"learning rates ({lower}), objective.loss=hinge or spectral norm."
        )
    if cfg.train.nan_policy == "stop" or rollbacks >= cfg.train.nan_rollbacks:
        tried = f" after {rollbacks} rollback(s)" if cfg.train.nan_policy == "rollback" else ""
        raise TrainingDiverged(
            f"{where} Stopped{tried}; the last good checkpoint {latest} is intact. Continue with lower learning "
            f"rates: ganforge train --resume {run_dir} {lower} (or --set train.nan_policy=rollback)."
        )
    ck = restore_checkpoint(latest, nets, ema, opts, sampler)
    for name, opt in opts.items():
        for group in opt.param_groups:
            group["lr"] = specs[name].lr * scale * factor
    new_g, new_d = lr_g * factor, lr_d * factor
    if not write:
        return ck
    log(
        f"{where} Rolled back to {ck['images_seen'] / 1000:.1f} kimg (tick {ck['tick']}) with learning rates "
        f"lr_g {lr_g:.3g} -> {new_g:.3g}, lr_d {lr_d:.3g} -> {new_d:.3g} "
        f"(rollback {rollbacks + 1} of at most {cfg.train.nan_rollbacks})."
    )
    data = to_plain(cfg)
    data["optim"] = {**data["optim"], "lr_g": new_g, "lr_d": new_d}
    atomic_write_text(Path(run_dir) / CONFIG, yaml.safe_dump(data, sort_keys=False))
    append_record(
        run_dir,
        {
            "type": "rollback",
            "at_kimg": record["kimg"],
            "to_kimg": ck["images_seen"] / 1000,
            "lr_g": [lr_g, new_g],
            "lr_d": [lr_d, new_d],
            "rollback": rollbacks + 1,
        },
    )
    return ck
