"""Inception-style score from the class logits of any classifier.

Salimans et al. 2016, "Improved Techniques for Training GANs" (https://arxiv.org/abs/1606.03498)::

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

computed on each of ``splits`` splits of the samples (each split has its own marginal p(y)), reported
as the mean and std (ddof 0) over splits. The convention is torch-fidelity's (``metric_isc.py``), so
the same logits give the same number to round-off: the samples are first shuffled with
``np.random.RandomState(2020).permutation(N)``, then split at ``i * N // splits``, always 10 splits.
(Samples in generation order and fewer splits at small N, ganforge's earlier rule, gave 22.873
where torch-fidelity gives 22.918 on the same logits.)

It ranges from 1 (every sample gets the same prediction, or predictions are uniform) to K (confident
predictions spread evenly over K classes). With a domain classifier (e.g. an MNIST or MedMNIST
classifier) instead of Inception-v3 it is *not* comparable with published Inception Scores; record
the classifier next to the number (Barratt & Sharma 2018, "A Note on the Inception Score").
A split of few samples estimates p(y) poorly and biases IS downwards: use N >= 5,000 for papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

SHUFFLE_SEED = 2020  # torch-fidelity's rng_seed


@dataclass(frozen=True)
class InceptionScore:
    mean: float  # mean over splits of exp(E KL(p(y|x) || p(y)))
    std: float  # std over splits (ddof 0, as torch-fidelity)
    per_split: np.ndarray  # [splits]
    splits: int  # splits used
    n_classes: int
    shuffle_seed: int | None  # None: samples used in the order given


def inception_score(
    logits: ArrayLike | torch.Tensor, splits: int = 10, shuffle_seed: int | None = SHUFFLE_SEED
) -> InceptionScore:
    """IS from class logits [N, K] (pass log-probabilities if you have probabilities); needs N >= splits."""
    z = logits.detach().cpu() if isinstance(logits, torch.Tensor) else torch.from_numpy(np.asarray(logits))
    z = z.to(torch.float64)
    if z.dim() != 2 or z.shape[0] < 1:
        raise ValueError(f"inception_score needs logits [N, K], got shape {tuple(z.shape)}.")
    n = z.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"inception_score needs 1 <= splits <= N, got splits={splits} for N={n}.")
    if shuffle_seed is not None:
        z = z[torch.from_numpy(np.random.RandomState(shuffle_seed).permutation(n))]
    log_p = torch.log_softmax(z, dim=1)  # log p(y|x), [N, K]
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_py = torch.logsumexp(part, dim=0) - np.log(part.shape[0])  # log mean_x p(y|x), [K]
        p = part.exp()
        terms = torch.where(p > 0, p * (part - log_py), torch.zeros_like(p))  # 0 log 0 = 0 (logits of -inf)
        kl = terms.sum(dim=1)  # KL(p(y|x) || p(y)) per sample
        scores.append(kl.mean().exp().item())
    per_split = np.asarray(scores)
    return InceptionScore(float(per_split.mean()), float(per_split.std()), per_split, splits, z.shape[1], shuffle_seed)
