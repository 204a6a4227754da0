"""Does a GAN-family run's discriminator overfit its training images? (Zhao et al. 2020; Karras et al. 2020)

Loads the run's last checkpoint and prints D's mean output (a probability for bce/minimax losses, the raw
logit otherwise) on its own training images, on held-out real images (the dataset's test split) and on G's
samples. A D that memorised its training set scores training images high and held-out real images as low as
generated ones: the regime DiffAugment and ADA are meant for. D runs in training mode on batches of the training
batch size, as it does while training (its batch norm uses batch statistics); the images are not augmented.

    python benchmarks/d_overfit.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ganforge.data import load_dataset
from ganforge.objectives.adversarial import LOSSES
from ganforge.training.checkpoint import load_checkpoint
from ganforge.training.rundir import read_config
from ganforge.training.setup import prepare
from ganforge.variants.gan import GAN


@torch.no_grad()
def mean_score(D: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None, batch: int, prob: bool) -> float:
    scores = []
    for i in range(0, len(x) - batch + 1, batch):  # whole batches only, as in training
        logits = D(x[i:i + batch].float(), None if y is None else y[i:i + batch]).logits.float().flatten()
        scores.append(torch.sigmoid(logits) if prob else logits)
    return torch.cat(scores).mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=1024, help="images per set (at most)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("| run | D on training images | D on held-out images | D on generated images |")
    print("| --- | ---: | ---: | ---: |")
    for run in args.runs:
        cfg = read_config(run)
        setup = prepare(cfg)
        if not (isinstance(setup.family, GAN) and setup.family.uses_model_arch):  # D(x, c) -> DOut, from ARCHS
            raise SystemExit(f"{run}: variant {cfg.variant} has its own networks; this probe reads ARCHS Ds only")
        nets = setup.build_networks()
        state = load_checkpoint(run / "checkpoints" / "latest.pt")
        G, D = nets["G"], nets["D"]
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G.train(), D.train()
        cond = setup.family.conditioning
        prob = LOSSES.get(cfg.objective.loss).probabilities
        b = cfg.train.batch_size
        test = load_dataset(cfg.data, "test")
        row = []
        for ds in (setup.train_set, test):
            y = ds.y[: args.n] if cond.d.conditional else None
            row.append(mean_score(D, ds.x[: args.n], y, b, prob))
        c = setup.train_set.y[torch.randint(0, len(setup.train_set.y), (args.n,))] if cond.g.conditional else None
        with torch.no_grad():
            fake = torch.cat([G(torch.randn(b, G.z_dim), None if c is None else c[i:i + b])
                              for i in range(0, args.n - b + 1, b)])
        row.append(mean_score(D, fake, c[: len(fake)] if cond.d.conditional else None, b, prob))
        print(f"| {run} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


if __name__ == "__main__":
    main()
