"""In-memory figures for the HTML report: PNG/GIF bytes, never files (the report embeds them)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from PIL import Image

MAX_GIF_FRAMES = 40
MAX_GIF_SIDE = 480


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def evenly_spaced(items: list[Any], k: int) -> list[Any]:
    """``k`` items spread over the list, always including the first and the last."""
    if len(items) <= k:
        return list(items)
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def progression_gif(paths: list[Path], frame_ms: int = 250) -> bytes | None:
    """Animated GIF of the per-tick grids (at most 40 frames, at most 480 px; the last frame holds)."""
    paths = evenly_spaced(paths, MAX_GIF_FRAMES)
    if not paths:
        return None
    frames = []
    for p in paths:
        with Image.open(p) as im:
            gray = im.mode in ("L", "LA", "I", "I;16")
            im = im.convert("L" if gray else "RGB")
            # Grids are upscaled by whole factors with nearest neighbour: shrinking by a whole factor the
            # same way keeps them sharp and costs the GIF nothing in detail.
            factor = math.ceil(max(im.size) / MAX_GIF_SIDE)
            if factor > 1:
                im = im.resize((max(1, im.width // factor), max(1, im.height // factor)), Image.NEAREST)
            frames.append(im.convert("P") if gray else im.quantize(colors=128, method=Image.Quantize.MEDIANCUT))
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 8]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   optimize=False)
    return buf.getvalue()


def _fig_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def d_scores_plot(records: list[dict[str, Any]], title: str = "") -> bytes | None:
    """Mean D(x) and mean D(G(z)) per tick: where they meet, D cannot tell real from generated."""
    records = [r for r in records if r.get("type") != "eval" and "D_real" in r]
    if not records:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2), dpi=100)
    kimg = [r["kimg"] for r in records]
    ax.plot(kimg, [r["D_real"] for r in records], label="mean D(x) (real)", color="tab:blue")
    ax.plot(kimg, [r.get("D_fake", math.nan) for r in records], label="mean D(G(z)) (generated)", color="tab:red")
    ax.set_xlabel("kimg")
    ax.set_title(title or "discriminator outputs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _fig_bytes(fig)


def ada_plot(records: list[dict[str, Any]]) -> bytes | None:
    """ADA's augmentation probability p and the overfitting heuristic r_t per tick (None: the run has no ADA)."""
    records = [r for r in records if r.get("type") != "eval" and "ada_p" in r]
    if not records:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2), dpi=100)
    kimg = [r["kimg"] for r in records]
    ax.plot(kimg, [r["ada_p"] for r in records], label="p (augmentation probability)", color="tab:green")
    ax.plot(kimg, [r.get("ada_rt", math.nan) for r in records], label="r_t = E[sign(D(real))]", color="tab:gray")
    ax.set_xlabel("kimg")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("adaptive discriminator augmentation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _fig_bytes(fig)


def scatter_plot(real: Any, fake: Any, title: str = "") -> bytes:
    """Real [N, 2] vs generated [M, 2] points, side by side on shared axes."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100, sharex=True, sharey=True)
    axes[0].scatter(real[:, 0], real[:, 1], s=5, alpha=0.6, color="tab:blue")
    axes[0].set_title("real")
    axes[1].scatter(fake[:, 0], fake[:, 1], s=5, alpha=0.6, color="tab:red")
    axes[1].set_title("generated")
    if title:
        fig.suptitle(title)
    return _fig_bytes(fig)


def interval_plot(labels: list[str], means: list[float], lows: list[float], highs: list[float], metric: str,
                  floor: float | None = None) -> bytes:
    """One metric across configurations: mean over seeds with its 95% interval (and the real floor)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(labels) + 1.2), dpi=100)
    ys = list(range(len(labels)))[::-1]
    for y, m, lo, hi in zip(ys, means, lows, highs):
        if math.isfinite(lo) and math.isfinite(hi):
            ax.errorbar([m], [y], xerr=[[m - lo], [hi - m]], fmt="o", color="tab:blue", capsize=3)
        else:
            ax.plot([m], [y], "o", color="tab:blue")
    if floor is not None and math.isfinite(floor):
        ax.axvline(floor, color="tab:gray", linestyle="--", label=f"real-vs-real floor {floor:.4g}")
        ax.legend(fontsize=8, loc="best")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(f"{metric} (mean over seeds, 95% t-interval)")
    ax.grid(alpha=0.3, axis="x")
    return _fig_bytes(fig)
