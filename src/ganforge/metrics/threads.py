"""One intra-op thread while a small evaluation network trains on a CPU (the domain extractor, the U-Net).

Two reasons: the weights (and so cached extractors) then do not depend on the core count (reduction
order), and a net this small gains little from threads but loses badly when the cores are shared
(parallel sweep jobs, test workers): measured 5 s with one thread against 100+ s with two on a busy
2-core machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """One torch intra-op thread inside the block when ``device`` is a CPU; the previous count restored after."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
