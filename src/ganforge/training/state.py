"""Everything about a run that must survive a resume, apart from the weights and optimisers.

- ``BatchSampler``: shuffles the in-memory dataset an epoch at a time, on the data's device. Its
  state is the generator state at the start of the current epoch plus the position in it, so a
  resumed run regenerates the same permutation and continues at the same example.
- ``rng_state``/``set_rng_state``: torch CPU and CUDA, numpy and Python ``random`` states as plain
  tensors and numbers (so ``torch.load(weights_only=True)`` reads them back).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


class BatchSampler:
    """Yields index tensors of ``batch`` examples without replacement within an epoch."""

    def __init__(self, n: int, batch: int, device: torch.device, seed: int) -> None:
        self.n, self.batch, self.device = n, batch, device
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch_start_state = self.gen.get_state()
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def _new_epoch(self) -> None:
        self.epoch_start_state = self.gen.get_state()
        reps = -(-self.batch // self.n)  # a batch larger than the dataset spans several permutations
        perm = torch.cat([torch.randperm(self.n, generator=self.gen) for _ in range(reps)])
        if self.device.type == "cuda":  # page-locked, so the copy below does not block the host (no sync per epoch)
            perm = perm.pin_memory()
        self.perm = perm.to(self.device, non_blocking=True)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.perm is None or self.pos + self.batch > len(self.perm):
            self._new_epoch()
        assert self.perm is not None
        idx = self.perm[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_start_state": self.epoch_start_state, "pos": self.pos, "started": self.perm is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["started"]:
            self.gen.set_state(state["epoch_start_state"])
            self._new_epoch()
            self.pos = int(state["pos"])


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npst = state["numpy"]
    key = npst["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, npst["pos"], npst["has_gauss"], npst["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
