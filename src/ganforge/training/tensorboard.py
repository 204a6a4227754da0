"""Optional TensorBoard sink for the per-tick records (``train.tensorboard=true``).

TensorBoard is an optional extra (``pip install ganforge[tensorboard]``). When it is missing the sink
prints one warning and does nothing, so training goes on. Events go to ``RUN_DIR/tensorboard``::

    sink = TensorBoardSink(run_dir)
    sink.log({"loss_D": 0.7, "loss_G": 1.2, "D_real": 0.6}, step=images_seen)  # scalars; other values skipped
    sink.close()
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Bookkeeping fields of a metrics.jsonl record that are not curves worth plotting.
SKIP = ("tick", "step", "type")


class TensorBoardSink:
    def __init__(self, run_dir: Path | str, warn: Callable[[str], None] | None = None) -> None:
        self.log_dir = Path(run_dir) / "tensorboard"
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # lazy: optional dependency
        except ImportError:  # torch raises ImportError (or ModuleNotFoundError) when tensorboard is absent
            (warn or _stderr)(
                "warning: train.tensorboard=true but TensorBoard is not installed "
                "(pip install 'ganforge[tensorboard]'); training continues without it."
            )
            return
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    @property
    def active(self) -> bool:
        return self.writer is not None

    def log(self, record: dict[str, Any], step: int) -> None:
        """Every finite number in ``record`` as a scalar; eval records go under ``eval/``."""
        if self.writer is None:
            return
        prefix = "eval/" if record.get("type") == "eval" else "train/"
        for key, value in record.items():
            if key in SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(prefix + key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
