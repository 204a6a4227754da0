"""A study-style GAN training loop: the baseline that ``train_speed.py`` times ganforge against.

Written the way the source studies write it: a ``DataLoader`` over a CPU ``TensorDataset`` with
shuffling, each batch moved to the device, separate ``zero_grad``/``backward``/``step`` per network,
``nn.BCEWithLogitsLoss`` with the non-saturating G loss, default Adam, fp32, and ``.item()`` on both
losses every step.

Two concessions so that, for a fixed seed, its losses can be compared with ganforge's step
(``tests/numerics/test_fast_path.py``); neither changes its speed noticeably:

- the same order of randomness as ``ganforge.training.step.EagerStep``: per iteration the D step takes
  a real batch, then latents; the G step also takes a real batch (ganforge's G phase draws one, for
  feature matching) and fresh latents. The shuffle is one ``torch.randperm`` per epoch from a generator
  seeded like ganforge's ``BatchSampler`` (``EpochShuffle`` below: ``shuffle=True``'s RandomSampler draws
  a second, unused permutation at the end of each epoch), the loader's own seed comes from a separate
  generator (so the global RNG is untouched), and the last incomplete batch is dropped, as ganforge does;
- it trains ganforge's G and D modules (D returns logits), so both loops train the same networks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset


@dataclass
class PlainResult:
    loss_D: list[float] = field(default_factory=list)  # per timed iteration
    loss_G: list[float] = field(default_factory=list)
    images: int = 0  # real images shown to D in the timed iterations
    seconds: float = 0.0  # wall time of the timed iterations (the losses' .item() synchronise every step)
    cpu_seconds: float = 0.0  # CPU time of this process (all threads) in the timed iterations

    @property
    def img_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


class EpochShuffle(Sampler[int]):
    """A fresh permutation of range(n) per epoch: ``shuffle=True`` with exactly one randperm per epoch."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n, self.generator = n, generator

    def __iter__(self) -> Iterator[int]:
        yield from torch.randperm(self.n, generator=self.generator).tolist()

    def __len__(self) -> int:
        return self.n


def _batches(loader: DataLoader) -> Iterator[torch.Tensor]:
    while True:  # epochs
        for (real,) in loader:
            yield real


def plain_train(
    G: nn.Module, D: nn.Module, x: torch.Tensor, *, batch_size: int, iterations: int, lr_g: float = 2e-4,
    lr_d: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), seed: int = 0, device: str | torch.device = "cpu",
    warmup: int = 0, max_seconds: float | None = None, min_iterations: int = 1,
) -> PlainResult:
    """Train G and D in place on ``x`` [N, ...] (CPU tensor) for ``warmup`` + up to ``iterations`` iterations.

    The first ``warmup`` iterations are not timed or recorded; the timed ones stop early once
    ``max_seconds`` have passed and at least ``min_iterations`` ran.
    """
    device = torch.device(device)
    G.to(device).train()
    D.to(device).train()
    dataset = TensorDataset(x)
    loader = DataLoader(dataset, batch_size=batch_size, drop_last=True,
                        sampler=EpochShuffle(len(dataset), torch.Generator().manual_seed(seed)),
                        generator=torch.Generator().manual_seed(seed + 1))
    criterion = nn.BCEWithLogitsLoss()
    opt_G = torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas)
    batches = _batches(loader)
    result = PlainResult()
    start = cpu_start = 0.0
    for it in range(warmup + iterations):
        if it == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
        # ---- D: real batch, then latents
        real = next(batches).to(device)
        z = torch.randn(batch_size, G.z_dim, device=device)
        fake = G(z)
        opt_D.zero_grad()
        real_logits = D(real).logits
        fake_logits = D(fake.detach()).logits
        ones = torch.ones(batch_size, device=device)
        zeros = torch.zeros(batch_size, device=device)
        loss_D = criterion(real_logits, ones) + criterion(fake_logits, zeros)
        loss_D.backward()
        opt_D.step()
        # ---- G: non-saturating loss on fresh latents
        next(batches)  # ganforge's G phase also draws a real batch; draw it here too to keep the data order
        z = torch.randn(batch_size, G.z_dim, device=device)
        opt_G.zero_grad()
        loss_G = criterion(D(G(z)).logits, ones)  # -log(sigmoid(D(G(z))))
        loss_G.backward()
        opt_G.step()
        d_value, g_value = loss_D.item(), loss_G.item()  # the studies log (and sync) every step
        if it >= warmup:
            result.loss_D.append(d_value)
            result.loss_G.append(g_value)
            result.images += batch_size
            done = len(result.loss_D) >= min_iterations
            if done and max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
    result.seconds = time.perf_counter() - start
    result.cpu_seconds = time.process_time() - cpu_start
    return result
