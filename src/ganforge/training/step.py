"""One training iteration: every phase the objective declares, the optimiser steps and the EMA update.

Kept apart from the loop so that a faster implementation of the *same* iteration (e.g. a CUDA-graph
captured one) can replace it without touching the loop. It consumes randomness in a fixed order
(data permutation from the sampler's own generator, then latents/labels/augmentation from torch's
global generator), which is what makes kill-and-resume bit-exact.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganforge.config import Config
from ganforge.objectives import GANObjective
from ganforge.objectives.augment import classic_augment, uses_classic
from ganforge.objectives.objective import Phase
from ganforge.training.precision import autocast_for
from ganforge.training.state import BatchSampler
from ganforge.training.stats import StatsAccumulator


class EagerStep:
    def __init__(
        self, cfg: Config, objective: GANObjective, opts: dict[str, torch.optim.Optimizer], G: nn.Module,
        G_ema: nn.Module | None, sampler: BatchSampler, real_x: torch.Tensor, real_y: torch.Tensor | None,
        stats: StatsAccumulator, device: torch.device,
    ) -> None:
        self.cfg, self.objective, self.opts, self.G, self.G_ema = cfg, objective, opts, G, G_ema
        self.sampler, self.real_x, self.real_y, self.stats, self.device = sampler, real_x, real_y, stats, device
        self.batch = cfg.train.batch_size
        self.phases = objective.phases()
        self.ema_beta = 0.5 ** (self.batch / (cfg.train.ema_kimg * 1000)) if G_ema is not None else 0.0
        self.autocast: Any = autocast_for(cfg.train.amp, device)  # bf16 where the device runs it natively
        self.d_params = [p for p in objective.D.parameters() if p.requires_grad]

    def __call__(self, step: int) -> int:
        """Run iteration ``step``; return the number of real images shown to D."""
        shown = 0
        for phase in self.phases:
            if step % phase.interval != 0:
                continue
            for _ in range(phase.repeats):
                self.stats.add(self.run_phase(phase, self.sampler.next()))
                if phase.name == "D":
                    shown += self.batch
        self.update_ema()
        return shown

    def run_phase(self, phase: Phase, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimiser step of ``phase`` on the real examples ``idx`` [N]; returns its statistics.

        Also the body that ``GraphedStep`` captures, so both implementations run the same code.
        """
        real_img = self.real_x[idx]  # [N, C, H, W] or [N, D]
        real_c = self.real_y[idx] if self.real_y is not None else None
        if phase.name == "D" and uses_classic(self.cfg.augment):
            real_img = classic_augment(real_img, self.cfg.augment)
        gen_z = torch.randn(self.batch, self.G.z_dim, device=self.device)
        gen_c = real_c  # D: generated labels follow the real batch's labels
        if phase.name == "G" and self.real_y is not None:  # G: labels from the data's label distribution
            gen_c = self.real_y[torch.randint(0, len(self.real_y), (self.batch,), device=self.device)]
        opt = self.opts[phase.module]
        opt.zero_grad(set_to_none=True)
        # G phases need D's input gradients only: D's weight gradients would be discarded by the next
        # D phase's zero_grad, so skip computing them (same result, less work).
        frozen = self.d_params if phase.module == "G" else []
        for p in frozen:
            p.requires_grad_(False)
        try:
            with self.autocast:
                stats = self.objective.accumulate_gradients(phase.name, real_img, real_c, gen_z, gen_c)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        opt.step()
        return stats

    def update_ema(self) -> None:
        if self.G_ema is not None:
            with torch.no_grad():  # EMA of G's weights; buffers (BN statistics) are copied
                torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1.0 - self.ema_beta)
                for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                    b_ema.copy_(b)
