"""Mixed precision for the training step: which autocast a run gets on which device (``train.amp``).

- ``off``: fp32 everywhere.
- ``bf16``: convolutions and matmuls in bfloat16 under ``torch.autocast`` (weights, optimiser state,
  EMA and batch-norm statistics stay fp32). On CUDA always; on a CPU only where it runs bf16 natively
  (AVX512-BF16 or AMX: Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later). Elsewhere
  oneDNN emulates bf16 and the step gets slower, so the run warns once and stays fp32.
- ``auto``: ``bf16`` where the device runs it natively, silently fp32 elsewhere. The demo uses it.

Measured on 2 shared cores of an AMD EPYC with AVX512-BF16 (``benchmarks/train_speed.py``): the
PathMNIST DCGAN step is about 1.7x faster in bf16 than fp32 at batch 64-128, and the demo's conditional
MNIST GAN reaches the same FID (see README, Speed). The losses of a short run stay within a few percent
of fp32 (``tests/numerics/test_fast_path.py``).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Literal

import torch

Amp = Literal["off", "bf16", "auto"]


def cpu_runs_bf16_natively() -> bool:
    """True when this CPU has bf16 instructions (AVX512-BF16 or AMX tiles) that oneDNN uses for bf16 convs."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch build without these probes: assume emulation, which is slower than fp32
        return False


def bf16_is_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_runs_bf16_natively()
    return False


def resolve_amp(amp: Amp, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` on ``device``, or None for fp32 (warns when bf16 was asked for in vain)."""
    if amp == "off":
        return None
    if device.type == "cuda" and amp == "bf16":
        return torch.bfloat16  # as before: the user asked for it on a GPU
    if bf16_is_native(device):
        return torch.bfloat16
    if amp == "bf16":
        warnings.warn(
            f"train.amp=bf16: this {device.type.upper()} has no native bfloat16 (AVX512-BF16/AMX), where bf16 is "
            "slower than fp32; training in fp32. Set train.amp=auto (or off) to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
    return None


def autocast_for(amp: Amp, device: torch.device) -> contextlib.AbstractContextManager:
    """A reusable context manager for the step's forward passes: bf16 autocast, or a no-op."""
    dtype = resolve_amp(amp, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
