"""ganforge's metrics against the reference implementations the field reports numbers with, on fixed inputs.

- ``prdc`` (Naeem et al. 2020, clovaai/generative-evaluation-prdc) is installed (dev extra) and called.
- torch-fidelity, clean-fid and pytorch-fid cannot be imported here (they import torchvision at package
  import, and there is no torchvision for this torch build), so their pure formulas are reproduced
  below, each with the file it comes from, and run on the same arrays.
- SSIM: skimage's ``structural_similarity`` on natural images skimage ships, in the usual convention.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from ganforge.metrics.diversity import ssim_diversity
from ganforge.metrics.fid import fid_from_features
from ganforge.metrics.inception_score import inception_score
from ganforge.metrics.kid import kid
from ganforge.metrics.prdc import prdc

# --------------------------------------------------------------------------------------------- prdc


@pytest.mark.parametrize("seed, n_real, n_fake, shift", [(0, 400, 300, 0.0), (1, 300, 500, 0.7), (2, 250, 250, 2.0)])
def test_prdc_matches_the_prdc_package_with_one_k(seed, n_real, n_fake, shift):
    from prdc import compute_prdc

    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, 16))
    fake = rng.normal(size=(n_fake, 16)) * 1.2 + shift
    ref = compute_prdc(real, fake, nearest_k=5)
    got = prdc(real, fake, k_pr=5, k_dc=5)
    # float32 distances here vs float64 there: at most one sample may fall on the other side of a radius
    assert got.precision == pytest.approx(ref["precision"], abs=1.0 / n_fake + 1e-12)
    assert got.recall == pytest.approx(ref["recall"], abs=1.0 / n_real + 1e-12)
    assert got.density == pytest.approx(ref["density"], abs=1.0 / (5 * n_fake) + 1e-12)
    assert got.coverage == pytest.approx(ref["coverage"], abs=1.0 / n_real + 1e-12)


def test_precision_recall_k_matters_so_it_is_recorded():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) * 1.5
    k3, k5 = prdc(real, fake, k_pr=3, k_dc=5), prdc(real, fake, k_pr=5, k_dc=5)
    assert k5.precision - k3.precision > 0.03  # larger balls: the k=3 and k=5 conventions differ visibly


# ------------------------------------------------------------------------------------ Inception score


def _isc_torch_fidelity(logits: torch.Tensor, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """torch_fidelity/metric_isc.py ``isc_features_to_metric`` (v0.3), reproduced."""
    n = logits.shape[0]
    feature = logits[np.random.RandomState(seed).permutation(n), :].double()
    p, log_p = feature.softmax(dim=1), feature.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        p_chunk = p[(i * n // splits) : ((i + 1) * n // splits), :]
        log_p_chunk = log_p[(i * n // splits) : ((i + 1) * n // splits), :]
        q_chunk = p_chunk.mean(dim=0, keepdim=True)
        kl = p_chunk * (log_p_chunk - q_chunk.log())
        scores.append(kl.sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_torch_fidelity_shuffle_and_splits():
    g = torch.Generator().manual_seed(4)
    # Class-ordered logits (as a conditional generator produces them): the order matters without shuffling.
    labels = torch.arange(1003) * 7 // 1003
    logits = 4.0 * torch.nn.functional.one_hot(labels, 7).float() + torch.randn(1003, 7, generator=g)
    mean, std = _isc_torch_fidelity(logits)
    got = inception_score(logits)
    assert got.mean == pytest.approx(mean, rel=1e-12) and got.std == pytest.approx(std, rel=1e-10)
    assert got.splits == 10 and got.shuffle_seed == 2020
    unshuffled = inception_score(logits, shuffle_seed=None)
    assert abs(unshuffled.mean - mean) > 0.1  # the convention changes the number: the test has power


# ---------------------------------------------------------------------------------------------- KID


def _kid_torch_fidelity(x: np.ndarray, y: np.ndarray) -> float:
    """torch_fidelity/metric_kid.py ``mmd2`` (unbiased) with sklearn's polynomial_kernel(degree 3, gamma 1/d,
    coef0 1), reproduced, on one subset of all rows."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    k_xx, k_yy, k_xy = k(x, x), k(y, y), k(x, y)
    m = k_xx.shape[0]
    kt_xx_sum = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    return float((kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2 * k_xy.sum(axis=0).sum() / (m * m))


def _kid_clean_fid(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """cleanfid/fid.py ``kernel_distance`` (from stylegan2-ada's metrics/kernel_inception_distance.py),
    reproduced with one subset of all rows (the subset draw is then a permutation: no effect)."""
    n, m = feats1.shape[1], feats1.shape[0]
    x, y = feats2, feats1
    a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
    b = (x @ y.T / n + 1) ** 3
    t = (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / m)


def test_kid_matches_torch_fidelity_and_clean_fid_formulas():
    rng = np.random.default_rng(5)
    real, gen = rng.normal(size=(200, 32)), rng.normal(size=(200, 32)) * 1.1 + 0.2
    got = kid(real, gen, subsets=1, subset_size=200, rng=0).mean
    assert got == pytest.approx(_kid_torch_fidelity(gen, real), rel=1e-10)
    assert got == pytest.approx(_kid_clean_fid(real, gen), rel=1e-10)
    assert got > 0.05


# ---------------------------------------------------------------------------------------------- FID


def _fid_pytorch_fid(mu1, sigma1, mu2, sigma2, eps=1e-6) -> float:
    """pytorch_fid/fid_score.py ``calculate_frechet_distance`` (same code in clean-fid's fid.py), reproduced."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))  # theirs passes disp=False (deprecated): the same root
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def test_fid_matches_pytorch_fid_formula():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(600, 24))
    b = rng.normal(size=(500, 24)) @ rng.normal(scale=0.3, size=(24, 24)) + 0.5
    ref = _fid_pytorch_fid(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid_from_features(a, b) == pytest.approx(ref, rel=1e-9)


# --------------------------------------------------------------------------------------------- SSIM


def _natural_crops(side: int) -> list[np.ndarray]:
    """Crops in [0, 1], [3, side, side], from photographs skimage ships (no download)."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), np.repeat(data.camera()[..., None], 3, axis=2)]
    crops = []
    for k, img in enumerate(photos):
        for r, c in ((40, 60), (150 + 10 * k, 90), (200, 200 + 5 * k)):
            crops.append(img[r : r + side, c : c + side].astype(np.float64).transpose(2, 0, 1) / 255.0)
    return crops


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    # Wang et al.'s settings, the ones pytorch_msssim implements: 11-tap Gaussian (sigma 1.5), population moments.
    return float(
        structural_similarity(
            a, b, data_range=1.0, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def test_ssim_diversity_matches_skimage_on_natural_images():
    crops = _natural_crops(64)
    pairs = [(0, 1), (2, 5), (3, 7), (4, 10), (6, 11), (8, 9)]
    for i, j in pairs:
        pair = torch.from_numpy(np.stack([crops[i], crops[j]])).float() * 2 - 1  # ganforge's [-1, 1] input
        got = ssim_diversity(pair, n_pairs=4, rng=0)  # two images: every pair is (i, j) or (j, i)
        assert got.kind == "ssim" and got.win_size == 11
        assert got.mean == pytest.approx(_skimage_ssim(crops[i], crops[j]), abs=2e-4)
    # The example: an image against 0.7x itself, 0.892-ish in the usual convention.
    a = crops[0]
    pair = torch.from_numpy(np.stack([a, 0.7 * a])).float() * 2 - 1
    expected = _skimage_ssim(a, 0.7 * a)
    assert ssim_diversity(pair, n_pairs=4, rng=0).mean == pytest.approx(expected, abs=2e-4)
    assert expected > 0.8
