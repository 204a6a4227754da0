"""Pictures of samples: image grids (Pillow) and 2D scatters of real against generated points."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.data.base import to_uint8
from ganforge.training.checkpoint import atomic_write_bytes


def pair_view(x: torch.Tensor, mask_channels: int) -> torch.Tensor:
    """Image + mask pairs [N, C + M, H, W] -> [N, C, H, 2W + 1]: the image, a white line, the mask (white
    foreground, black background; several masks are shown as their union)."""
    img, mask = x[:, :-mask_channels], x[:, -mask_channels:].amax(1, keepdim=True)  # [N, C, H, W], [N, 1, H, W]
    line = torch.ones_like(img[..., :1])  # [N, C, H, 1]
    return torch.cat([img, line, mask.expand_as(img)], dim=3)


def image_grid(
    x: torch.Tensor, nrow: int | None = None, pad: int = 2, scale: int | None = None, mask_channels: int = 0
) -> Image.Image:
    """x [N, C, H, W] in [-1, 1] -> one RGB/L image, rows of ``nrow``; small images are upscaled.

    With ``mask_channels`` (paired segmentation data) each cell shows the image and its mask side by side.
    """
    if mask_channels:
        x = pair_view(x, mask_channels)
    imgs = to_uint8(x)  # [N, H, W, C]
    n, h, w, c = imgs.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol_rows = int(math.ceil(n / nrow))
    canvas = np.full((ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top : top + h, left : left + w] = imgs[i]
    img = Image.fromarray(canvas[:, :, 0] if c == 1 else canvas, "L" if c == 1 else "RGB")
    scale = scale or max(1, 256 // max(h, 1) // 2)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_image_grid(x: torch.Tensor, path: Path, nrow: int | None = None, mask_channels: int = 0) -> None:
    img = image_grid(x, nrow, mask_channels=mask_channels)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))


def save_scatter(real: torch.Tensor, fake: torch.Tensor, path: Path, title: str = "") -> None:
    """Real [N, 2] against generated [M, 2] points, like the studies' figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.scatter(real[:, 0].numpy(), real[:, 1].numpy(), s=6, alpha=0.5, label="real", color="tab:blue")
    ax.scatter(fake[:, 0].numpy(), fake[:, 1].numpy(), s=6, alpha=0.6, label="generated", color="tab:red")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))
