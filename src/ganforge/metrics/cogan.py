"""Metrics of a coupled run (CoGAN): n pairs are drawn (one z each, through both domains' generators) and measured.

- ``fid_A`` / ``fid_B``: each domain's generated images against its training images, in the features of the
  ``domain`` extractor trained on that domain (its classifier when labelled); floor: the domain's real test split;
- ``label_agreement`` (labelled domains): the share of pairs whose A image and B image get the same class from the
  two domains' classifiers: is a pair the same digit? ``details.chance`` is the agreement of independent images with
  the same class frequencies (sum_k p_A(k) p_B(k)); the floor is the agreement on the real test pairs when the data
  has pairs (the classifiers' own errors bound it);
- ``pair_ssim`` (``mnist-styles`` with ``edges`` or ``inverted``, whose B is a fixed function of A): SSIM between each
  generated B and the ground-truth restyling of its generated A; ``details.unpaired`` is the same with the A images
  shuffled (what a pair of unrelated images scores). Not for ``textured`` (a random photograph behind each digit) nor
  the brain phantom (its contrasts are rendered from tissue maps that a generated image does not come with).

``eval/pairs.png`` shows the first pairs, A beside B.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ganforge
from ganforge.config import Config
from ganforge.data.two_domain import restyle
from ganforge.metrics.extractors import build_extractor, pick_device
from ganforge.metrics.features import extract, split_features
from ganforge.metrics.fid import fid_from_features
from ganforge.metrics.protocol import PROTOCOL_VERSION, MetricValue, normal_mean, protocol_id, wilson
from ganforge.metrics.translation import Domains, TwoDomainEval, match_channels, ssim_per_image

HISTORY_LABEL = "pairs"


@torch.no_grad()
def sample_pairs(G: Any, n: int, seed: int, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs (x_A [n, C_A, H, W], x_B [n, C_B, H, W]) from z ~ N(0, I) drawn with ``seed``, as generate does."""
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    G.eval()
    pairs = [G.pair(z[i : i + batch]) for i in range(0, n, batch)]
    return tuple(torch.cat([p[k].float() for p in pairs]).clamp(-1, 1) for k in (0, 1))  # type: ignore[return-value]


def agreement(pred_a: torch.Tensor, pred_b: torch.Tensor) -> tuple[float, float]:
    """(share of pairs with the same predicted class, the share independent draws of the same class frequencies
    would agree on: sum_k p_A(k) p_B(k))."""
    k = max(int(pred_a.max()), int(pred_b.max())) + 1
    p_a, p_b = (torch.bincount(p, minlength=k).double() / len(p) for p in (pred_a, pred_b))
    return float((pred_a == pred_b).double().mean()), float((p_a * p_b).sum())


def pair_ssim(x_a: torch.Tensor, x_b: torch.Tensor, style: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """SSIM of each B against the restyling of its own A, and against that of the next pair's A (unrelated)."""
    truth = restyle(x_a, style, seed)  # [N, C_B, H, W]: the B this A would have
    return ssim_per_image(x_b, truth), ssim_per_image(x_b, truth.roll(1, 0))


def evaluate_pairs(
    run_dir: Path | None,
    gen: Any,
    *,
    n: int,
    seed: int = 0,
    extractor: str = "domain",
    device: str | None = None,
    log: Callable[[str], None] = print,
) -> TwoDomainEval:
    t0 = time.perf_counter()
    dev = pick_device(device)
    cfg: Config = gen.config
    dom = Domains.of(cfg)
    x = dict(zip("AB", sample_pairs(gen.G, n, seed)))
    values: dict[str, MetricValue] = {}
    skipped: dict[str, str] = {}
    base = {
        "protocol_version": PROTOCOL_VERSION,
        "dataset": cfg.data.name,
        "n_pairs": n,
        "seed": seed,
        "sampling": "z ~ N(0, I) from torch.Generator().manual_seed(seed); one z per pair",
        "ganforge_version": ganforge.__version__,
    }

    def record(
        name: str,
        value: float,
        ci: Any,
        floor: float | None,
        higher: bool,
        params: dict[str, Any],
        details: dict[str, Any] | None = None,
    ) -> None:
        protocol = {**base, "metric": name, **params}
        values[name] = MetricValue(
            name, float(value), ci, floor, protocol, protocol_id(protocol), higher, None, details or {}
        )
        log(f"  {name}: {value:.6g}")

    logits: dict[str, torch.Tensor | None] = {}
    exs = {}
    for d in "AB":
        ex = exs[d] = build_extractor(extractor, dom.train[d], dom.test[d], device=dev, log=log)
        ref, fake, real = split_features(ex, dom.train[d]), extract(ex, x[d]), split_features(ex, dom.test[d])
        logits[d] = fake.logits if ex.has_logits else None
        logits[f"real_{d}"] = real.logits if ex.has_logits else None
        record(
            f"fid_{d}",
            fid_from_features(ref.feats, fake.feats),
            None,
            fid_from_features(ref.feats, real.feats),
            False,
            {
                "domain": dom.names[d],
                "extractor": ex.name,
                "extractor_hash": ex.short_hash,
                "preprocessing": ex.preprocessing,
                "reference_split": "train",
                "n_reference": len(dom.train[d]),
                "reference_fingerprint": dom.train[d].fingerprint()[:16],
            },
        )

    if logits["A"] is not None and logits["B"] is not None:
        pred_a, pred_b = logits["A"].argmax(1), logits["B"].argmax(1)
        share, chance = agreement(pred_a, pred_b)
        same, k = round(share * n), max(int(pred_a.max()), int(pred_b.max())) + 1
        floor = None
        if dom.paired and logits["real_A"] is not None and logits["real_B"] is not None:
            floor = float((logits["real_A"].argmax(1) == logits["real_B"].argmax(1)).float().mean())
        record(
            "label_agreement",
            same / n,
            wilson(same, n),
            floor,
            True,
            {
                "classifiers": "each domain's extractor class head, trained on that domain",
                "extractor_hashes": {d: exs[d].short_hash for d in "AB"},
            },
            {
                "chance": chance,
                "classes_A": np.bincount(pred_a.numpy(), minlength=k).tolist(),
                "classes_B": np.bincount(pred_b.numpy(), minlength=k).tolist(),
            },
        )
    else:
        skipped["label_agreement"] = "the domains have no labels to train the classifiers on"

    style = dom.names["B"]
    if cfg.data.name == "mnist-styles" and style in ("edges", "inverted"):
        per, shuffled = pair_ssim(x["A"], x["B"], style, cfg.data.seed)
        record(
            "pair_ssim",
            per.mean(),
            normal_mean(float(per.mean()), float(per.std(ddof=1)) if n > 1 else 0.0, n, "normal-mean"),
            None,
            True,
            {"ground_truth": f"restyle(generated A, {style!r})", "scale": "[0, 1] intensities, window 7"},
            {"unpaired": float(shuffled.mean())},
        )
    else:
        skipped["pair_ssim"] = (
            f"domain B ({style}) is no fixed function of domain A: no ground-truth pair to compare"
            " (mnist-styles with edges or inverted has one)"
        )

    if run_dir is not None:
        from ganforge.training.grids import save_image_grid

        k = min(16, n)
        channels = max(x["A"].shape[1], x["B"].shape[1])
        cells = torch.stack([match_channels(x["A"][:k], channels), match_channels(x["B"][:k], channels)], 1)
        (run_dir / "eval").mkdir(parents=True, exist_ok=True)
        save_image_grid(cells.flatten(0, 1), run_dir / "eval" / "pairs.png", nrow=8)
    ex0 = exs["A"]
    return TwoDomainEval(
        values,
        skipped,
        {
            "name": ex0.name,
            "hash": ex0.short_hash,
            "identity": ex0.identity,
            "preprocessing": ex0.preprocessing,
            "per_domain": True,
        },
        n,
        time.perf_counter() - t0,
        str(dev),
        [dom.names["A"], dom.names["B"]],
    )


__all__ = ["agreement", "evaluate_pairs", "pair_ssim", "sample_pairs"]
