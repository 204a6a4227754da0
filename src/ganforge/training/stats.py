"""Per-tick statistics that stay on the device until the tick ends (no per-step ``.item()``)."""

from __future__ import annotations

import torch


class StatsAccumulator:
    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for key, value in stats.items():
            value = value.detach().float()
            self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
            self._counts[key] = self._counts.get(key, 0) + 1

    def read_and_reset(self) -> dict[str, float]:
        """Means since the last read. One device->host copy for all keys."""
        if not self._sums:
            return {}
        keys = list(self._sums)
        values = torch.stack([self._sums[k] for k in keys]).cpu().tolist()
        out = {k: v / self._counts[k] for k, v in zip(keys, values)}
        self._sums, self._counts = {}, {}
        return out
