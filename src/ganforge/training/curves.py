"""Training curves from ``metrics.jsonl``: losses, mean D(x) / D(G(z)), and D accuracy (labelled as no
measure of sample quality: a discriminator can be 100% right while the images are garbage)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ganforge.training.checkpoint import atomic_write_bytes


def save_loss_plot(records: list[dict[str, Any]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kimg = [r["kimg"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=100)
    for key in ("loss_D", "loss_G", "gp", "loss_aux", "r1"):
        if any(key in r for r in records):
            axes[0].plot(kimg, [r.get(key, float("nan")) for r in records], label=key)
    axes[0].set_title("losses")
    for key, label in (("D_real", "mean D(x)"), ("D_fake", "mean D(G(z))")):
        if any(key in r for r in records):
            axes[1].plot(kimg, [r.get(key, float("nan")) for r in records], label=label)
    axes[1].set_title("discriminator scores")
    if any("D_acc" in r for r in records):
        axes[2].plot(kimg, [r.get("D_acc", float("nan")) for r in records], color="tab:gray")
        axes[2].set_ylim(-0.02, 1.02)
    axes[2].set_title("D accuracy (NOT a measure of sample quality)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("kimg (thousands of real images shown to D)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))
