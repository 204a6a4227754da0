"""metrics.threads.concurrently: small evaluation nets trained in parallel threads on a CPU come out exactly as
when trained one after the other (each still trains on one thread, with its own seeded RNG)."""

from __future__ import annotations

import threading

import torch

from ganforge.metrics.domain_extractor import DomainRecipe, DomainSpec, train_domain_net
from ganforge.metrics.threads import concurrently


def test_parallel_fits_equal_sequential_fits():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 16, 16, generator=gen) * 2 - 1
    y = torch.arange(96) % 4
    spec, recipe = DomainSpec(1, 16, 4, widths=(8, 16), feature_dim=16), DomainRecipe(epochs=2.0, seed=3)
    sets = [(x, y), (-x, y), (x.flip(-1), y.flip(0))]
    names: list[str] = []

    def fit(xs: torch.Tensor, ys: torch.Tensor) -> dict[str, torch.Tensor]:
        names.append(threading.current_thread().name)
        return train_domain_net(xs, ys, spec, recipe, cache=False).net.state_dict()

    sequential = [fit(xs, ys) for xs, ys in sets]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        names.clear()
        parallel = concurrently([lambda xs=xs, ys=ys: fit(xs, ys) for xs, ys in sets], torch.device("cpu"))
        assert torch.get_num_threads() == 2  # restored after
    finally:
        torch.set_num_threads(before)
    assert all(name.startswith("ganforge-fit") for name in names)  # they did run in the worker threads
    for seq, par in zip(sequential, parallel):
        assert seq.keys() == par.keys()
        assert all(torch.equal(seq[k], par[k]) for k in seq)
    assert not all(torch.equal(sequential[0][k], sequential[1][k]) for k in sequential[0])  # different data


def test_one_thread_runs_the_jobs_in_order_here():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        names: list[str] = []
        out = concurrently([lambda i=i: names.append(threading.current_thread().name) or i for i in range(3)],
                           torch.device("cpu"))
    finally:
        torch.set_num_threads(before)
    assert out == [0, 1, 2] and names == [threading.current_thread().name] * 3
