"""Fréchet distance between Gaussians fitted to feature sets (FID when the features are Inception's).

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium" (https://arxiv.org/abs/1706.08500)::

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))

Features -> statistics -> value are separate pure functions, so statistics can be cached and a
number is reproducible from its inputs:

- ``feature_stats(feats) -> (mu, sigma)``: mean and unbiased covariance (N - 1), float64.
- ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float``: the distance, with the matrix square
  root handled as in the reference implementations (TTUR ``fid.py``, pytorch-fid, clean-fid):
  ``scipy.linalg.sqrtm``; if the product is singular (non-finite or inaccurate root), retry with
  ``eps * I`` added to both covariances; drop a negligible imaginary part, raise on a large one.
- ``fid_from_features(feats1, feats2) -> float``: the two composed, e.g. for ``bootstrap_ci``.

FID is biased upwards at finite N (Chong & Forsyth 2020), so only compare values computed with
the same extractor, preprocessing and sample counts.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch
from numpy.typing import ArrayLike


def _as_float64(x: ArrayLike | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def feature_stats(feats: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] (float64) of features [N, D]; same as np.cov(rowvar=False)."""
    x = _as_float64(feats)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"feature_stats needs features of shape [N >= 2, D], got {x.shape}; flatten samples first.")
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)  # one matmul: fast enough to recompute inside a bootstrap
    return mu, sigma


def _sqrtm_residual(root: np.ndarray, a: np.ndarray) -> float:
    """||root @ root - a||_F / ||a||_F: how well sqrtm did."""
    denom = np.linalg.norm(a) or 1.0
    return float(np.linalg.norm(root @ root - a) / denom)


def frechet_distance(
    mu1: ArrayLike,
    sigma1: ArrayLike,
    mu2: ArrayLike,
    sigma2: ArrayLike,
    eps: float = 1e-6,
    max_imag: float = 1e-3,
) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``eps`` is the diagonal offset tried when sigma1 @ sigma2 is singular (e.g. fewer samples than
    dimensions); ``max_imag`` is the largest imaginary part on the diagonal of the root accepted as
    round-off (larger means the covariances are not PSD: a bug upstream, so it raises).
    """
    mu1, mu2 = np.atleast_1d(_as_float64(mu1)), np.atleast_1d(_as_float64(mu2))
    sigma1, sigma2 = np.atleast_2d(_as_float64(sigma1)), np.atleast_2d(_as_float64(sigma2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"statistics do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 "
            f"{sigma2.shape}; both sets must come from the same feature extractor (same D)."
        )
    diff = mu1 - mu2

    product = sigma1 @ sigma2
    with warnings.catch_warnings():  # a singular product is expected (N < D) and handled just below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(product)
    if not np.isfinite(covmean).all() or _sqrtm_residual(covmean, product) > 1e-3:
        # Singular product: the standard fix is a small offset on both diagonals (TTUR / pytorch-fid).
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > max_imag:
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has an imaginary component of {imag:.3g} on its diagonal; the covariances "
                "are not positive semi-definite. Check the features for NaN/inf or use more samples than dimensions."
            )
        covmean = covmean.real

    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)


def fid_from_features(feats1: ArrayLike | torch.Tensor, feats2: ArrayLike | torch.Tensor) -> float:
    """frechet_distance(*feature_stats(feats1), *feature_stats(feats2)) for features [N1, D], [N2, D]."""
    return frechet_distance(*feature_stats(feats1), *feature_stats(feats2))
