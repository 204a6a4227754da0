"""Sampling from an exported generator into files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ganforge.data.base import to_uint8
from ganforge.errors import RunDirError
from ganforge.training.export import load_generator


@dataclass
class GenerateResult:
    out: Path
    n: int


def generate_samples(run_dir: Path, n: int, out: Path, seed: int = 0) -> GenerateResult:
    gen = load_generator(run_dir)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"output folder {str(out)!r} already exists and is not empty; choose a new --out.")
    x, labels = gen.sample(n, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    if gen.kind == "image":
        imgs = to_uint8(x)  # [N, H, W, C]
        for i, img in enumerate(imgs):
            Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(out / f"{i:06d}.png")
        arrays = {"images": imgs}
    else:
        arrays = {"points": x.numpy()}
    if labels is not None:
        arrays["labels"] = labels.numpy().astype(np.int64)
    np.savez(out / "samples.npz", **arrays)
    return GenerateResult(out, n)
