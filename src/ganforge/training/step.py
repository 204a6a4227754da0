"""One training iteration: every phase the family declares, the optimiser steps and the EMA update.

Kept apart from the loop so that a faster implementation of the *same* iteration (e.g. a CUDA-graph
captured one) can replace it without touching the loop. It consumes randomness in a fixed order
(data permutation from the sampler's own generator, then whatever the family's ``draw`` and
``accumulate_gradients`` draw from torch's global generator), which is what makes kill-and-resume bit-exact.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganforge.config import Config
from ganforge.training import distributed
from ganforge.training.precision import autocast_for
from ganforge.training.state import BatchSampler
from ganforge.training.stats import StatsAccumulator
from ganforge.variants import Objective, OptimizerSpec, Phase


class EagerStep:
    def __init__(
        self, cfg: Config, objective: Objective, opts: dict[str, torch.optim.Optimizer],
        opt_specs: dict[str, OptimizerSpec], networks: dict[str, nn.Module], ema: dict[str, nn.Module],
        sampler: BatchSampler, stats: StatsAccumulator, device: torch.device,
    ) -> None:
        self.cfg, self.objective, self.opts, self.networks, self.ema = cfg, objective, opts, networks, ema
        self.sampler, self.stats, self.device = sampler, stats, device
        self.batch = cfg.train.batch_size
        self.phases = objective.phases
        self.ema_nimg, self.ema_rampup = cfg.train.ema_kimg * 1000, cfg.train.ema_rampup
        # 1 - beta of this iteration's EMA update: a device tensor, so a captured CUDA graph reads the value that
        # __call__ sets before each replay instead of the one it was captured with (the ramp-up moves it).
        self.ema_weight = torch.zeros([], device=device)
        self.autocast: Any = autocast_for(cfg.train.amp, device)  # bf16 where the device runs it natively
        # A phase computes gradients for the networks its optimizer steps only. The others' weight gradients
        # would be discarded by their own optimizer's next zero_grad, so skip computing them (same result,
        # less work): e.g. a G step needs D's input gradients, not D's weight gradients.
        trainable = {name: [p for p in net.parameters() if p.requires_grad] for name, net in networks.items()}
        self.frozen = {
            phase: [p for name, ps in trainable.items()
                    if name not in opt_specs[phase.opt].networks and name not in phase.keeps_graph for p in ps]
            for phase in objective.phases
        }
        self.world = distributed.current()  # several processes: each computes its share of the global batch

    def __call__(self, step: int, images_seen: int) -> int:
        """Run iteration ``step`` after ``images_seen`` real images; return the number of real images shown."""
        self.set_ema_weight(images_seen)
        self.objective.set_progress(images_seen)
        shown = 0
        for phase in self.phases:
            if step % phase.interval != 0:
                continue
            for _ in range(phase.repeats):
                self.stats.add(self.run_phase(phase, self.sampler.next()))
                if phase.shows_real:
                    shown += self.batch
        self.update_ema()
        distributed.broadcast_buffers(list(self.networks.values()), self.world)  # BN stats follow rank 0 (CPU)
        return shown

    def run_phase(self, phase: Phase, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimiser step of ``phase`` on the real examples ``idx`` [N]; returns its statistics.

        Also the body that ``GraphedStep`` captures, so both implementations run the same code.
        """
        batch = distributed.shard_batch(self.objective.draw(phase, idx), self.batch, self.world)  # this rank's rows
        opt = self.opts[phase.opt]
        opt.zero_grad(set_to_none=True)
        frozen = self.frozen[phase]
        for p in frozen:
            p.requires_grad_(False)
        try:
            with self.autocast:
                stats = self.objective.accumulate_gradients(phase, batch)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        distributed.all_reduce_grads(opt, self.world)  # only the stepping networks' gradients; no-op in one process
        opt.step()
        return stats

    def ema_beta(self, images_seen: int) -> float:
        """The EMA's decay per iteration: half-life ``train.ema_kimg``, capped at ``train.ema_rampup`` times the
        images seen so far (StyleGAN2-ADA's ramp-up: early on, when G changes fast, the average forgets fast)."""
        nimg = self.ema_nimg
        if self.ema_rampup > 0:
            nimg = min(nimg, images_seen * self.ema_rampup)
        return 0.5 ** (self.batch / max(nimg, 1e-8))  # beta ** (ema_nimg / batch) = 1/2

    def set_ema_weight(self, images_seen: int) -> None:
        if self.ema:
            self.ema_weight.fill_(1.0 - self.ema_beta(images_seen))

    def update_ema(self) -> None:
        with torch.no_grad():  # EMA of the weights; buffers (BN statistics) are copied
            for name, averaged in self.ema.items():
                net = self.networks[name]
                # avg += w * (net - avg). Not _foreach_lerp_: it has no tensor-weight overload, so the 0-dim weight
                # would be read on the host (.item()) every step: a GPU sync, and uncapturable in a CUDA graph.
                avg = list(averaged.parameters())
                delta = torch._foreach_sub(list(net.parameters()), avg)
                torch._foreach_mul_(delta, self.ema_weight)
                torch._foreach_add_(avg, delta)
                for b_ema, b in zip(averaged.buffers(), net.buffers()):
                    b_ema.copy_(b)
