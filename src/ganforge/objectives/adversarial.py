"""Adversarial losses on D's logits. Each is registered in ``LOSSES`` by name.

All take raw logits (never probabilities: applying a sigmoid or softmax before a cross-entropy
is a bug widely copied in GAN code) and return a mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganforge.registry import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    d_loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (real_logits, gen_logits, smoothing)
    g_loss: Callable[[torch.Tensor], torch.Tensor]  # (gen_logits)
    logit_threshold: float = 0.0  # D's decision boundary between "real" and "fake" (for the D accuracy statistic)
    probabilities: bool = False  # D's score reads as a probability through a sigmoid (bce, minimax)
    smoothing: bool = False  # the loss has a real target that one-sided label smoothing can soften


LOSSES: Registry[AdversarialLoss] = Registry("loss")


def _bce_d(real_logits: torch.Tensor, gen_logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    # Real targets 1 - s (one-sided label smoothing, Salimans et al. 2016), fake targets 0:
    #   t * -log(sigmoid(real)) + (1 - t) * -log(1 - sigmoid(real)) + -log(1 - sigmoid(gen))
    target = 1.0 - smoothing
    real = target * F.softplus(-real_logits) + (1.0 - target) * F.softplus(real_logits)
    return real.mean() + F.softplus(gen_logits).mean()


LOSSES.add(
    "bce",
    AdversarialLoss(
        d_loss=_bce_d,
        g_loss=lambda gen_logits: F.softplus(-gen_logits).mean(),  # -log(sigmoid(gen))
        probabilities=True,
        smoothing=True,
    ),
    help="binary cross-entropy; G uses the non-saturating loss -log D(G(z)) (Goodfellow et al. 2014)",
)
LOSSES.add(
    "minimax",
    AdversarialLoss(
        d_loss=_bce_d,
        g_loss=lambda gen_logits: -F.softplus(gen_logits).mean(),  # log(1 - sigmoid(gen))
        probabilities=True,
        smoothing=True,
    ),
    help="the original minimax form: G minimises log(1 - D(G(z))) (saturates early in training)",
)


def _ls_d(real_logits: torch.Tensor, gen_logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    # 0.5 * (D(x) - b)^2 + 0.5 * (D(G(z)) - a)^2 with a = 0, b = 1 - s
    return 0.5 * ((real_logits - (1.0 - smoothing)) ** 2).mean() + 0.5 * (gen_logits**2).mean()


LOSSES.add(
    "ls",
    AdversarialLoss(
        d_loss=_ls_d,
        g_loss=lambda gen_logits: 0.5 * ((gen_logits - 1.0) ** 2).mean(),  # 0.5 * (D(G(z)) - c)^2, c = 1
        logit_threshold=0.5,
        smoothing=True,
    ),
    help="least squares (LSGAN, Mao et al. 2017), targets a=0, b=c=1",
)
LOSSES.add(
    "hinge",
    AdversarialLoss(
        # max(0, 1 - D(x)) + max(0, 1 + D(G(z))); no real target to smooth
        d_loss=lambda real, gen, s: F.relu(1.0 - real).mean() + F.relu(1.0 + gen).mean(),
        g_loss=lambda gen_logits: -gen_logits.mean(),  # -D(G(z))
    ),
    help="hinge loss (Lim & Ye 2017; SNGAN, BigGAN)",
)
LOSSES.add(
    "wasserstein",
    AdversarialLoss(
        d_loss=lambda real, gen, s: gen.mean() - real.mean(),  # critic maximises E[D(x)] - E[D(G(z))]
        g_loss=lambda gen_logits: -gen_logits.mean(),
    ),
    help="Wasserstein critic loss (Arjovsky et al. 2017); pair with objective.gp_weight=10 (WGAN-GP)",
)
