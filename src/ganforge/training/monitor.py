"""A check the loop runs once per tick on the network ``generate`` samples from, and keeping its best copy.

The loop knows only this protocol; what is checked lives above training (``metrics.health`` measures the
samples in the domain extractor's features and is handed to the loop by the runner). A monitor runs after the
tick's generator is exported and before its checkpoint is written, and its state (best value so far, ...) goes
into that checkpoint: a run killed at any moment and resumed makes the same checks, the same warnings and the
same ``best/`` generator as one that was never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from ganforge.training.rundir import SPEC, WEIGHTS, atomic_write_bytes

BEST_DIR = "best"  # RUN/best/generator.safetensors + generator.json: the kept generator (evaluate/generate read it)


@dataclass
class TickCheck:
    record: dict[str, Any]  # one metrics.jsonl line ({"type": ..., "tick": ..., "kimg": ...})
    line: str  # what the log shows
    improved: bool = False  # this tick's generator is the best so far: keep a copy in RUN/best/
    warnings: list[str] = field(default_factory=list)


class Monitor(Protocol):
    def check(self, tick: int, kimg: float, net: nn.Module, spec: dict[str, Any]) -> TickCheck | None:
        """Measure ``net`` (the sampled network, EMA copy when kept) at this tick, as ``generate`` samples it
        (``spec``: the fields of the ``generator.json`` just exported); None when not this tick.
        Must leave the network's mode and training randomness as it found them."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers and strings (checkpoints load with weights_only=True)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def summary(self) -> dict[str, Any]:
        """What summary.json records about the checks (e.g. the kept generator's tick and value)."""
        ...


def keep_best(run_dir: Path) -> Path:
    """Copy the generator just exported into RUN/best/ (each file atomically; weights first, so a kill in
    between leaves the previous spec beside new weights only until the resumed tick rewrites both)."""
    best = Path(run_dir) / BEST_DIR
    best.mkdir(exist_ok=True)
    for name in (WEIGHTS, SPEC):
        data = (Path(run_dir) / name).read_bytes()
        atomic_write_bytes(best / name, lambda f, data=data: f.write(data))
    return best
