"""Thread settings for the metrics on a CPU.

``single_thread_on_cpu``: one torch intra-op thread while a small evaluation network trains (the domain
extractor, the U-Net). Two reasons: the weights (and so cached extractors) then do not depend on the
core count (reduction order), and a net this small gains little from threads but loses badly when the
cores are shared (parallel sweep jobs, test workers): measured 5 s with one thread against 100+ s with
two on a busy 2-core machine.

``concurrently``: several such nets at once on a CPU, one per torch thread the process was given (each still
trains on one thread, so its weights are the same as when the nets train one after the other). The demo's
evaluation trains two classifiers (CAS and the augmentation gain) this way in the time of one on 2 cores.

``small_blas``: one OpenBLAS thread for the metrics' small dense linear algebra (numpy/scipy). In a process
that has run torch, torch's OpenMP pool and OpenBLAS's own pool both spin-wait for work, so a
multi-threaded BLAS call on a small matrix fights torch's idle threads for the same cores: measured on 2
cores, ``scipy.linalg.sqrtm`` of a 128 x 128 product took 235 ms after a torch conv and 7 ms with
OpenBLAS held to one thread (the demo's evaluation spent most of its time there). Up to ``SMALL`` one
thread is also the fastest without torch in the process; larger problems (Inception's 2,048 dimensions)
keep the library's default.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

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


T = TypeVar("T")

# Held while a net's initial weights are drawn from the global RNG (fork_rng + manual_seed), so that nets built
# in parallel threads do not interleave their draws.
INIT_LOCK = threading.Lock()


def concurrently(jobs: list[Callable[[], T]], device: torch.device) -> list[T]:
    """Run ``jobs`` (each training a small net single-threaded) and return their results in order: on a CPU
    up to one at a time per torch thread of this process, in threads; elsewhere one after the other."""
    workers = min(len(jobs), torch.get_num_threads()) if device.type == "cpu" else 1
    if workers <= 1:
        return [job() for job in jobs]
    with single_thread_on_cpu(device), ThreadPoolExecutor(workers, thread_name_prefix="ganforge-fit") as pool:
        return list(pool.map(lambda job: job(), jobs))


SMALL = 512  # largest matrix side for which BLAS is held to one thread


@cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # finds the loaded BLAS libraries once

    return ThreadpoolController()


@contextlib.contextmanager
def small_blas(size: int) -> Iterator[None]:
    """Hold numpy/scipy's BLAS to one thread inside the block when ``size`` (the matrix side) is small."""
    if size > SMALL:
        yield
        return
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield
