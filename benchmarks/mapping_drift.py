"""How far did a run's mapping network (``model.g_mapping_layers``) learn, and what does it do to the latent?

Rebuilds the run's networks at its seed (the initial weights), loads its last checkpoint, and prints for each
mapping layer how far the weights moved (|W - W0| / |W0|). Then, for the trained mapping and for the same layers at
their initial weights, the participation ratio of the mapped latent w over 20,000 draws of z (the number of
dimensions its variance effectively spreads over: z_dim for an isotropic latent), the share of the top ten
principal directions, and the mean cosine between two independent draws.

    python benchmarks/mapping_drift.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.training.checkpoint import load_checkpoint
from ganforge.training.rundir import read_config
from ganforge.training.setup import prepare
from ganforge.training.state import seed_everything


@torch.no_grad()
def shape_of(mapping: torch.nn.Module, z: torch.Tensor) -> str:
    w = mapping(z)
    share = torch.linalg.svdvals(w - w.mean(0)) ** 2
    share = share / share.sum()
    half = len(z) // 2
    cos = F.cosine_similarity(w[:half], w[half:2 * half]).mean().item()
    return (f"participation ratio {(1 / share.square().sum()).item():5.1f} of {w.shape[1]}, top-10 share "
            f"{share[:10].sum().item():.2f}, mean cos {cos:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    for run in args.runs:
        cfg = read_config(run)
        if not cfg.model.g_mapping_layers:
            print(f"{run}: model.g_mapping_layers is 0, no mapping network")
            continue
        setup = prepare(cfg)
        seed_everything(cfg.train.seed)  # the trainer builds the networks right after this
        initial = setup.build_networks()["G"].mapping
        trained = copy.deepcopy(initial)
        state = load_checkpoint(run / "checkpoints" / "latest.pt")["G"]
        trained.load_state_dict({k.removeprefix("mapping."): v for k, v in state.items() if k.startswith("mapping.")})
        print(f"{run}: {cfg.model.g_mapping_layers} layers at {cfg.model.g_mapping_lr_mul} of G's rate")
        moved = [((a.weight - b.weight).norm() / b.weight.norm()).item()
                 for a, b in zip(trained.layers, initial.layers, strict=True)]
        print("  weights moved (|W - W0| / |W0|, layer by layer): " + " ".join(f"{m:.4f}" for m in moved))
        z = torch.randn(20_000, cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
        print(f"  w at the initial weights: {shape_of(initial, z)}")
        print(f"  w at the trained weights: {shape_of(trained, z)}")


if __name__ == "__main__":
    main()
