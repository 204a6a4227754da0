"""Checkpoints are data: tensors, numbers, strings. Written atomically, loaded with weights_only=True.

A checkpoint holds everything that must survive a resume (``training.state.TrainState``): G, D,
G_ema, both optimisers, the data sampler, every RNG state, counters, the resolved config and the
ganforge version. Nothing in it is code, so loading never unpickles a class.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.errors import RunDirError
from ganforge.training.rundir import CKPT_DIR, LATEST, atomic_write_bytes, atomic_write_json, atomic_write_text

# Kept importable from here: the atomic writes moved to training.rundir, which owns the run directory.
__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "load_checkpoint", "restore_checkpoint",
           "save_checkpoint", "sha256_file"]


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"checkpoint {str(path)!r} does not exist; is this a ganforge run directory?")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file or a pickle that is not plain data
        raise CheckpointDamaged(path, f"cannot be read as plain tensors ({_first_line(e, 80)})") from None
    if not isinstance(ck, dict):
        raise CheckpointDamaged(path, f"holds a {type(ck).__name__}, not a ganforge checkpoint")
    return ck


class CheckpointDamaged(RunDirError):
    """A checkpoint that cannot be resumed from; the message points at the newest other snapshot."""

    def __init__(self, path: Path, what: str) -> None:
        path = Path(path)
        snapshots = sorted(p for p in path.parent.glob("tick-*.pt") if p.name != path.name and p != path)
        if snapshots:
            run_dir = path.parent.parent
            fix = (f"resume from the newest snapshot instead: cp {snapshots[-1]} {run_dir / CKPT_DIR / LATEST} && "
                   f"ganforge train --resume {run_dir}")
        else:
            fix = "there is no other snapshot to resume from; start a new run"
        super().__init__(f"checkpoint {str(path)!r} {what}. To continue, {fix}.")


def _first_line(e: BaseException, limit: int = 120) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


COUNTERS = ("step", "images_seen", "tick")


def weights_problem(state: Any, model: nn.Module, name: str) -> str | None:
    """What is wrong with STATE as MODEL's state dict (keys, shapes, dtypes, finite values); None if it fits."""
    if not isinstance(state, dict):
        return f"has no weights for {name}"
    want = model.state_dict()
    missing, extra = [k for k in want if k not in state], [k for k in state if k not in want]
    if missing or extra:
        key = (missing or extra)[0]
        return (f"does not fit this run's {name}: {'missing' if missing else 'unexpected'} tensor {str(key)[:60]!r} "
                f"({len(missing)} missing, {len(extra)} unexpected)")
    for key, ref in want.items():
        t = state[key]
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape or t.dtype != ref.dtype:
            got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
            return f"does not fit this run's {name}: {key!r} is {got}, the model needs {tuple(ref.shape)} {ref.dtype}"
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"holds NaN or infinite weights in {name} ({key!r})"
    return None


def restore_checkpoint(path: Path, nets: dict[str, nn.Module], ema: dict[str, nn.Module],
                       opts: dict[str, torch.optim.Optimizer], sampler: Any) -> dict[str, Any]:
    """Load PATH into the networks, their averages, the optimisers and the sampler and restore every RNG
    state; return the checkpoint.

    Everything is checked (keys, shapes, dtypes, finite weights, counters) before anything is loaded, so a
    damaged file raises CheckpointDamaged naming what is wrong and leaves the networks as they were
    (optimiser, sampler and RNG states are only checked by loading them: call this on fresh objects).
    """
    from ganforge.training.state import set_rng_state

    ck = load_checkpoint(path)
    models = dict(nets) | {f"{name}_ema": net for name, net in ema.items()}
    for key in (*models, *(f"opt_{n}" for n in opts), "sampler", "rng", *COUNTERS, "wall_time"):
        if key not in ck:
            raise CheckpointDamaged(path, f"has no {key!r} entry")
    for name, model in models.items():
        problem = weights_problem(ck[name], model, name)
        if problem:
            raise CheckpointDamaged(path, problem)
    for key in COUNTERS:
        if not isinstance(ck[key], int) or isinstance(ck[key], bool) or ck[key] < 0:
            raise CheckpointDamaged(path, f"has {key}={str(ck[key])[:30]}, not a whole number >= 0")
    if not isinstance(ck["wall_time"], (int, float)) or not math.isfinite(ck["wall_time"]):
        raise CheckpointDamaged(path, "has a wall_time that is not a finite number")
    for name, model in models.items():
        model.load_state_dict(ck[name])
    for name, opt in opts.items():
        _load_part(path, f"opt_{name}", opt.load_state_dict, ck[f"opt_{name}"])
    for name, opt in opts.items():  # Adam does not check its moments against the parameters: a bad file
        for p, st in opt.state.items():  # would only fail at the first step, after files were written
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.dim() > 0 and (v.shape != p.shape or not torch.isfinite(v).all()):
                    raise CheckpointDamaged(path, f"has an unusable 'opt_{name}' entry ({k} of shape {tuple(v.shape)} "
                                                  f"for a parameter of shape {tuple(p.shape)}, or not finite)")
    _load_part(path, "sampler", sampler.load_state_dict, ck["sampler"])
    _load_part(path, "rng", set_rng_state, ck["rng"])
    return ck


def _load_part(path: Path, what: str, load: Any, state: Any) -> None:
    try:
        load(state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as e:
        raise CheckpointDamaged(path, f"has an unusable {what!r} entry ({_first_line(e, 80)})") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
