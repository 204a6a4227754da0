"""The simplest mask-to-image baseline for SPADE on ``brain-labels``: paint every pixel with the mean training
intensity of its class (no texture, no noise, no partial volume), scored like ``ganforge evaluate`` scores a SPADE
run (SSIM, PSNR, MAE against the real slice of each test map). Prints one table row.

    python benchmarks/spade_class_mean_baseline.py [--resolution 32] [--target flair]
"""

from __future__ import annotations

import argparse

import torch

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.metrics.translation import mae_per_image, psnr_per_image, ssim_per_image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--target", default="flair")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = DataConfig(name="brain-labels", domains=("labels", args.target), resolution=args.resolution)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    k = train.x.shape[1]
    train_labels, test_labels = train.x.argmax(1), test.x.argmax(1)  # [N, H, W]
    means = torch.stack([train.x_b[:, 0][train_labels == c].mean() for c in range(k)])  # [K]
    painted = means[test_labels][:, None]  # [N, 1, H, W]
    ssim, psnr, mae = (f(painted, test.x_b).mean() for f in (ssim_per_image, psnr_per_image, mae_per_image))
    print(f"| class-mean painting | {ssim:.3f} | {psnr:.1f} | {mae:.4f} |")


if __name__ == "__main__":
    main()
