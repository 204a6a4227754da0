"""The training iteration captured as CUDA graphs: the results of ``EagerStep``, one launch per iteration.

A DCGAN iteration on 28x28 images at batch 128 is a few hundred small kernels. Launched one by one
from Python, the GPU mostly waits for the host. ``GraphedStep`` records the whole iteration -- every
D repeat, the G step, both fused Adam steps and the EMA -- once, then replays it ("whole-network
capture", PyTorch docs, CUDA Graphs).

How it keeps the eager step's results:

1. Warm-up: the first ``warmup`` iterations of each phase pattern run ``EagerStep`` itself, on a side
   stream. They are ordinary training iterations; they also create Adam's state, cuDNN plans and
   cuBLAS workspaces before anything is captured.
2. Capture: the captured body is ``EagerStep.run_phase`` for each batch drawn plus ``update_ema``, the
   code the eager step runs. Real examples are gathered inside the graph from a static index tensor
   [draws, N]. Latents, labels, dropout and augmentation come from the default CUDA generator, whose
   graph-safe Philox offset advances by the graph's total at every replay, so a replay draws the
   numbers the eager iteration would have drawn. Gradients are None at capture, so backward allocates
   them in the graph's private memory pool; Adam runs with ``capturable=True`` (step counters on the
   device).
3. Each call: copy the sampler's next index batches into the static tensor (device-to-device), replay,
   and pass the graph's statistics tensors to the ``StatsAccumulator``. Nothing waits for the GPU.

One graph per phase pattern: with lazy regularisation (a phase with ``interval`` > 1) iterations with
and without that phase each get a graph, captured after their own warm-up.

Limits: shapes are fixed (the loop always draws train.batch_size). The iteration must not synchronise
with the host or copy Python values to the GPU (``torch.tensor(..., device="cuda")``, ``.item()``) and
must not have data-dependent shapes. If capture fails, the step warns once and continues eagerly,
which trains identically, only slower.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ganforge.config import Config
from ganforge.training.state import BatchSampler
from ganforge.training.stats import StatsAccumulator
from ganforge.training.step import EagerStep
from ganforge.variants import Objective, OptimizerSpec, Phase

Pattern = tuple[int, ...]  # indices of the phases that run in an iteration


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    idx: torch.Tensor  # [draws, N] static indices of the real examples, one row per phase repeat
    stats: list[dict[str, torch.Tensor]]  # static statistics, one dict per phase repeat
    shown: int  # real images shown to D per replay


class GraphedStep:
    """Drop-in for ``EagerStep`` on CUDA: ``step(iteration, images_seen) -> images shown to D``."""

    def __init__(
        self, cfg: Config, objective: Objective, opts: dict[str, torch.optim.Optimizer],
        opt_specs: dict[str, OptimizerSpec], networks: dict[str, nn.Module], ema: dict[str, nn.Module],
        sampler: BatchSampler, stats: StatsAccumulator, device: torch.device, *, warmup: int = 3,
    ) -> None:
        if device.type != "cuda":
            raise ValueError(f"GraphedStep needs a CUDA device, got {device}; use EagerStep.")
        self.eager = EagerStep(cfg, objective, opts, opt_specs, networks, ema, sampler, stats, device)
        self.sampler, self.stats, self.opts, self.device = sampler, stats, opts, device
        self.phases: list[Phase] = self.eager.phases
        self.warmup = warmup
        for opt in opts.values():
            for group in opt.param_groups:
                group["capturable"] = True  # Adam's step counters stay on the device, updated inside the graph
        self.graphs: dict[Pattern, _Captured] = {}
        self.eager_runs: dict[Pattern, int] = {}
        self.failed: str | None = None  # why capture was given up, if it was
        self.side = torch.cuda.Stream(device)

    def __call__(self, step: int, images_seen: int) -> int:
        """Run iteration ``step`` after ``images_seen`` real images; return the number of real images shown to D."""
        if self.failed is not None:
            return self.eager(step, images_seen)
        self.eager.set_ema_weight(images_seen)  # read by the captured EMA update (train.ema_rampup moves it)
        self.eager.objective.set_progress(images_seen)
        pattern = tuple(i for i, phase in enumerate(self.phases) if step % phase.interval == 0)
        cap = self.graphs.get(pattern)
        if cap is None:
            runs = self.eager_runs.get(pattern, 0)
            if runs < self.warmup:
                self.eager_runs[pattern] = runs + 1
                return self._warmup_iteration(step, images_seen)
            cap = self._capture(pattern)
            if cap is None:
                return self.eager(step, images_seen)
            self.graphs[pattern] = cap
        for row in cap.idx:  # the same draws, in the same order, as EagerStep
            row.copy_(self.sampler.next())
        cap.graph.replay()
        for s in cap.stats:
            self.stats.add(s)
        return cap.shown

    def _warmup_iteration(self, step: int, images_seen: int) -> int:
        """An eager iteration on a side stream, fenced on both sides (so no memory is used by two streams at once)."""
        main = torch.cuda.current_stream(self.device)
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side), warnings.catch_warnings():
            # Adam warns once that capturable=True runs uncaptured; these few iterations are meant to.
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            shown = self.eager(step, images_seen)
        main.wait_stream(self.side)
        return shown

    def _drop_grads(self) -> None:
        for opt in self.opts.values():
            opt.zero_grad(set_to_none=True)

    def _capture(self, pattern: Pattern) -> _Captured | None:
        draws = [self.phases[i] for i in pattern for _ in range(self.phases[i].repeats)]
        idx = torch.zeros(len(draws), self.eager.batch, dtype=torch.long, device=self.device)
        graph = torch.cuda.CUDAGraph()
        main = torch.cuda.current_stream(self.device)
        index = torch.cuda.current_device() if self.device.index is None else self.device.index
        rng = torch.cuda.default_generators[index]
        before = rng.clone_state()  # seed and offset now; capture itself does not advance them
        self._drop_grads()  # backward allocates the gradients inside the graph's pool
        try:
            # Captured on the warm-up stream, whose cuBLAS workspace already exists.
            with torch.cuda.graph(graph, stream=self.side):
                stats = [self.eager.run_phase(phase, idx[k]) for k, phase in enumerate(draws)]
                self.eager.update_ema()
        except Exception as e:  # any op that cannot be captured: keep training, eagerly
            torch.cuda.set_stream(main)  # a failed capture_end leaves the capture stream current
            del graph
            # A failed capture leaves the generator in capture mode (every later random op raises "Offset
            # increment outside graph capture"): continue from a copy of its state taken before the capture.
            # Graphs captured earlier replay the abandoned state, so they go too.
            rng.graphsafe_set_state(before)
            self.graphs.clear()
            self._drop_grads()
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.failed = f"{type(e).__name__}: {reason}"
            warnings.warn(f"train.cuda_graphs: the iteration could not be captured ({self.failed}); "
                          "training continues eagerly (same results, slower).", RuntimeWarning, stacklevel=3)
            return None
        # Outside the graph nobody reads these gradients; the graph keeps writing its own copies.
        self._drop_grads()
        shown = self.eager.batch * sum(1 for phase in draws if phase.shows_real)
        return _Captured(graph, idx, stats, shown)
