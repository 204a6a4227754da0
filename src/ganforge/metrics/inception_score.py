"""Inception-style score from the class logits of any classifier.

Salimans et al. 2016, "Improved Techniques for Training GANs" (https://arxiv.org/abs/1606.03498)::

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

computed on each of ``splits`` contiguous splits of the samples (each split has its own marginal
p(y)), reported as the mean and std over splits, as in the reference code and torch-fidelity.
It ranges from 1 (every sample gets the same prediction, or predictions are uniform) to K (confident
predictions spread evenly over K classes). With a domain classifier (e.g. an MNIST or MedMNIST
classifier) instead of Inception-v3 it is *not* comparable with published Inception Scores; record
the classifier next to the number (Barratt & Sharma 2018, "A Note on the Inception Score").

Small N: the split marginal p(y) is estimated from N / splits samples, which biases IS downwards
when a split is small, so the number of splits used is min(splits, N // min_split_size) (at least
1; std is 0 with one split). It is returned in the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class InceptionScore:
    mean: float  # mean over splits of exp(E KL(p(y|x) || p(y)))
    std: float  # std over splits (0 with one split)
    per_split: np.ndarray  # [splits]
    splits: int  # splits actually used
    n_classes: int


def inception_score(logits: ArrayLike | torch.Tensor, splits: int = 10, min_split_size: int = 100) -> InceptionScore:
    """IS from class logits [N, K] (pass log-probabilities if you have probabilities)."""
    z = logits.detach().cpu() if isinstance(logits, torch.Tensor) else torch.from_numpy(np.asarray(logits))
    z = z.to(torch.float64)
    if z.dim() != 2 or z.shape[0] < 1:
        raise ValueError(f"inception_score needs logits [N, K], got shape {tuple(z.shape)}.")
    n = z.shape[0]
    n_splits = max(1, min(splits, n // min_split_size))
    log_p = torch.log_softmax(z, dim=1)  # log p(y|x), [N, K]
    scores = []
    for part in torch.tensor_split(log_p, n_splits):
        log_py = torch.logsumexp(part, dim=0) - np.log(part.shape[0])  # log mean_x p(y|x), [K]
        p = part.exp()
        terms = torch.where(p > 0, p * (part - log_py), torch.zeros_like(p))  # 0 log 0 = 0 (logits of -inf)
        kl = terms.sum(dim=1)  # KL(p(y|x) || p(y)) per sample
        scores.append(kl.mean().exp().item())
    per_split = np.asarray(scores)
    return InceptionScore(float(per_split.mean()), float(per_split.std()), per_split, n_splits, z.shape[1])
