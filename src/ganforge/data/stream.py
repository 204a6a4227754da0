"""Images that stay on disk: a folder too large for memory, read and fitted per batch.

An image folder whose decoded pixels (float32) pass ``data.max_memory_mb`` is not loaded whole (AFHQ at 512 px would
need ~16 GB). Its ``Dataset.x`` is a ``StreamedImages`` instead: it has the tensor's ``shape``, ``dtype``,
``len`` and ``to(device)``, and indexing its first dimension (an index tensor, a list, a slice, an int) reads those
files, converts and resizes them exactly as the in-memory loader does, and returns the float tensor
[n, C, H, W] in [-1, 1] on its device. So the families' ``real_x[idx]`` works unchanged, and a streamed run draws
the same pixels as an in-memory one: the batch order comes from the seeded ``BatchSampler``, never from the timing
of the reading threads, so resume stays exact.

The files of one batch are decoded by ``data.loader_threads`` threads (Pillow releases the GIL while it decodes
and resizes), their rows put back in the order asked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

Reader = Callable[[tuple[Path, ...]], torch.Tensor]  # files -> float32 [n, C, H, W] in [-1, 1] (CPU)


class StreamedImages:
    """[N, C, H, W] float32 images in [-1, 1] read from ``files`` by ``read`` when indexed."""

    dtype = torch.float32

    def __init__(
        self,
        files: Sequence[Path],
        shape: tuple[int, int, int],
        read: Reader,
        *,
        threads: int = 4,
        device: torch.device | str = "cpu",
        identity: str = "",
    ) -> None:
        self.files, self.read, self.threads = tuple(files), read, max(1, threads)
        self.shape = torch.Size((len(self.files), *shape))
        self.device = torch.device(device)
        self._identity = identity  # what the pixels depend on besides the files (mode, size, resize)
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"StreamedImages({len(self)} files, shape={tuple(self.shape)}, device={self.device})"

    @property
    def nbytes(self) -> int:
        """The bytes these images would take in memory as float32."""
        return int(np.prod(self.shape)) * 4

    def dim(self) -> int:
        return len(self.shape)

    def to(self, device: torch.device | str, *args: Any, **kwargs: Any) -> StreamedImages:
        """The same images, returned on ``device`` when indexed (nothing is read now)."""
        return StreamedImages(
            self.files, tuple(self.shape[1:]), self.read, threads=self.threads, device=device, identity=self._identity
        )

    def rows(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> StreamedImages:
        """A subset of the rows, still on disk (data.classes, data.limit)."""
        picked = self._row_list(index)
        return StreamedImages(
            [self.files[i] for i in picked],
            tuple(self.shape[1:]),
            self.read,
            threads=self.threads,
            device=self.device,
            identity=self._identity,
        )

    def load(self) -> torch.Tensor:
        """Every image, in memory."""
        return self[:]

    def identity(self) -> str:
        """What the pixels depend on: each file's path, size and modification time, and how it is read."""
        h = hashlib.sha256(self._identity.encode())
        for f in self.files:
            st = f.stat()
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return f"streamed {tuple(self.shape)} {h.hexdigest()}"

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, tuple):  # x[rows, ...]: read the rows, then index the rest as a tensor would
            return self[key[0]][(slice(None), *key[1:])]
        if isinstance(key, int):
            return self[[key]][0]
        return self._read_rows(self._row_list(key))

    def _row_list(self, key: Any) -> list[int]:
        n = len(self)
        if isinstance(key, slice):
            return list(range(n))[key]
        if isinstance(key, torch.Tensor):
            key = key.detach().cpu()
            if key.dtype == torch.bool:
                key = key.nonzero().flatten()
            key = key.tolist()
        elif isinstance(key, np.ndarray):
            key = np.flatnonzero(key).tolist() if key.dtype == bool else key.tolist()
        rows = [int(i) + n if int(i) < 0 else int(i) for i in key]
        bad = [i for i in rows if not 0 <= i < n]
        if bad:
            raise IndexError(f"index {bad[0]} is out of bounds for {n} streamed images")
        return rows

    def _read_rows(self, rows: list[int]) -> torch.Tensor:
        if not rows:
            return torch.empty((0, *self.shape[1:]), dtype=self.dtype, device=self.device)
        files = tuple(self.files[i] for i in rows)
        # Contiguous chunks, one per thread, concatenated in order: the result never depends on which thread
        # finishes first.
        per = -(-len(files) // self.threads)
        chunks = [files[i : i + per] for i in range(0, len(files), per)]
        if len(chunks) == 1:
            out = self.read(files)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ganforge-read")
            out = torch.cat(list(self._pool.map(self.read, chunks)))
        return out.to(self.device, non_blocking=self.device.type == "cuda")

    def __del__(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
