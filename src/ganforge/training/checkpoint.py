"""Checkpoints are data: tensors, numbers, strings. Written atomically, loaded with weights_only=True.

A checkpoint holds everything that must survive a resume (``training.state.TrainState``): G, D,
G_ema, both optimisers, the data sampler, every RNG state, counters, the resolved config and the
ganforge version. Nothing in it is code, so loading never unpickles a class.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import torch

from ganforge.errors import RunDirError


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``.

    A crash (or SIGKILL) at any point leaves either the old file or the new one, never half of one.
    ``write`` is called with a binary file object.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: it creates 0600 files. O_EXCL with mode 0o666 lets the umask give a normal file's mode.
    tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"checkpoint {str(path)!r} does not exist; is this a ganforge run directory?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file or a pickle that is not plain data
        raise RunDirError(
            f"checkpoint {str(path)!r} could not be read as plain tensors ({type(e).__name__}: {e}). "
            "ganforge never unpickles code; use an earlier checkpoint from the same folder."
        ) from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
