"""Numeric tests of the pure metric math: closed forms, hand-computed values and known limits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import torch

from ganforge.metrics.bootstrap import bootstrap_ci, ci_from_replicates, subset_ci
from ganforge.metrics.diversity import default_win_size, ssim_diversity
from ganforge.metrics.fid import feature_stats, fid_from_features, frechet_distance, trace_sqrt_product
from ganforge.metrics.inception_score import inception_score
from ganforge.metrics.kid import kid, mmd2_unbiased, polynomial_kernel, standardise
from ganforge.metrics.memorization import memorization_audit
from ganforge.metrics.prdc import kth_neighbour_distances, nearest_neighbours, prdc
from ganforge.metrics.threads import small_blas
from ganforge.metrics.toy2d import curve_distance, energy_distance, mmd2, mode_coverage

# ---------------------------------------------------------------------------------------------- FID


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    s1, s2 = rng.uniform(0.1, 3.0, 16), rng.uniform(0.1, 3.0, 16)  # variances
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_symmetric_form_for_full_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(12, 12)), rng.normal(size=(12, 12))
    s1, s2 = a @ a.T + 0.1 * np.eye(12), b @ b.T + 0.1 * np.eye(12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    # Independent route: Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), both roots from eigh.
    w, v = scipy.linalg.eigh(s1)
    r1 = (v * np.sqrt(w)) @ v.T
    inner = scipy.linalg.eigvalsh(r1 @ s2 @ r1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(inner))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_feature_stats_and_fid_of_a_set_with_itself():
    feats = np.random.default_rng(2).normal(size=(500, 32))
    mu, sigma = feature_stats(feats)
    np.testing.assert_allclose(mu, feats.mean(0))
    np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False))
    assert abs(fid_from_features(feats, torch.from_numpy(feats).float())) < 1e-4


def test_fid_with_fewer_samples_than_dimensions_is_finite_and_near_zero_for_same_set():
    feats = np.random.default_rng(3).normal(size=(10, 32))  # singular covariances -> eps fallback path
    value = fid_from_features(feats, feats)
    assert np.isfinite(value) and abs(value) < 1e-2


def test_trace_sqrt_product_equals_scipy_sqrtm_trace_also_for_singular_products():
    rng = np.random.default_rng(11)
    for n, d in ((400, 16), (10, 32)):  # well-conditioned, and rank-deficient (fewer samples than dimensions)
        a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        if n > d:
            expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
        else:  # sqrtm of a singular product is inaccurate; the eps-regularised reference converges to the trace
            offset = np.eye(d) * 1e-10
            expected = np.trace(scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))).real
        assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-6 if n < d else 1e-10)


def test_metric_linear_algebra_runs_on_one_blas_thread_for_small_matrices():
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    outside = blas_threads()
    with small_blas(128):
        assert blas_threads() == {1}
    assert blas_threads() == outside  # restored
    with small_blas(2048):  # large problems keep the library's own setting
        assert blas_threads() == outside


def test_frechet_distance_rejects_non_psd_covariance():
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(np.zeros(3), -np.eye(3), np.zeros(3), np.eye(3))


def test_frechet_distance_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="same feature extractor"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------------------------------------- KID


def test_mmd2_unbiased_matches_brute_force_sums():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)) + 0.5
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = 7
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert mmd2_unbiased(x, y) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-10)


def test_kid_is_unbiased_for_same_distribution():
    rng = np.random.default_rng(5)
    unbiased, biased = [], []
    for _ in range(400):  # each trial: two fresh samples of 40; one subset = the full sets
        x, y = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
        unbiased.append(kid(x, y, subsets=1, subset_size=40, rng=0).mean)
        biased.append(
            polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean() - 2 * polynomial_kernel(x, y).mean()
        )
    unbiased, biased = np.array(unbiased), np.array(biased)
    stderr = unbiased.std() / np.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 4 * stderr
    # The V-statistic (diagonal included) is clearly positive at this size: the test has power.
    assert biased.mean() > 10 * stderr


def test_kid_from_full_kernels_equals_the_per_subset_computation(monkeypatch):
    import ganforge.metrics.kid as kid_module

    rng = np.random.default_rng(12)
    real, gen = rng.normal(size=(300, 8)), rng.normal(size=(250, 8)) * 1.2 + 0.1
    fast = kid(real, gen, subsets=20, subset_size=100, rng=3)
    monkeypatch.setattr(kid_module, "FULL_KERNELS", 0)  # force the per-subset path
    slow = kid(real, gen, subsets=20, subset_size=100, rng=3)
    np.testing.assert_allclose(fast.per_subset, slow.per_subset, rtol=1e-9, atol=1e-12)
    assert np.ptp(fast.per_subset) > 0  # the subsets really differ


def test_kid_positive_for_shifted_distribution_and_adapts_subset_size():
    rng = np.random.default_rng(6)
    real, gen = rng.normal(size=(300, 16)), rng.normal(size=(200, 16)) + 1.0
    result = kid(real, gen, subsets=20, subset_size=1000, rng=0)
    assert result.subset_size == 200
    assert result.mean > 10 * result.std > 0
    assert (result.per_subset > 0).all()
    same = kid(real[:150], real[150:], subsets=20, subset_size=100, rng=0)
    assert abs(same.mean) < 0.05 * result.mean


# --------------------------------------------------------------------------------------------- PRDC


def _prdc_reference(real, fake, k_pr, k_dc):
    """Naeem et al.'s reference formulas on full numpy distance matrices."""
    d_rr = scipy.spatial.distance.cdist(real, real)
    d_ff = scipy.spatial.distance.cdist(fake, fake)
    d_rf = scipy.spatial.distance.cdist(real, fake)
    r_pr, r_dc = np.sort(d_rr, 1)[:, k_pr], np.sort(d_rr, 1)[:, k_dc]
    f_pr = np.sort(d_ff, 1)[:, k_pr]
    return (
        (d_rf < r_pr[:, None]).any(0).mean(),
        (d_rf < f_pr[None, :]).any(1).mean(),
        (d_rf < r_dc[:, None]).sum(0).mean() / k_dc,
        (d_rf.min(1) < r_dc).mean(),
    )


def test_prdc_matches_reference_formulas_with_many_chunks():
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(300, 6)), rng.normal(size=(250, 6)) * 1.3 + 0.3
    got = prdc(real, fake, k_pr=3, k_dc=5, max_elements=4000)  # ~16 rows per chunk
    ref = _prdc_reference(real, fake, 3, 5)
    np.testing.assert_allclose([got.precision, got.recall, got.density, got.coverage], ref, atol=1e-2)
    assert 0.3 < got.precision < 1.0 and got.density > 0.2  # a real, nontrivial configuration


def test_prdc_on_identical_sets():
    x = np.random.default_rng(8).normal(size=(500, 8))
    r = prdc(x, x)
    assert (r.precision, r.recall, r.coverage) == (1.0, 1.0, 1.0)
    assert r.density == pytest.approx(1.0, abs=0.02)


def test_prdc_coverage_on_independent_draws_is_near_one_minus_two_to_minus_k():
    rng = np.random.default_rng(9)
    r = prdc(rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8)), k_pr=3, k_dc=5)
    assert r.coverage == pytest.approx(1 - 2**-5, abs=0.02)
    assert r.density == pytest.approx(1.0, abs=0.1)
    assert r.precision > 0.7 and r.recall > 0.7


def test_prdc_on_far_apart_sets_is_zero():
    rng = np.random.default_rng(10)
    r = prdc(rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 100.0)
    assert (r.precision, r.recall, r.density, r.coverage) == (0.0, 0.0, 0.0, 0.0)


def test_knn_helpers_on_a_line():
    x = np.arange(10.0)[:, None] ** 2  # 0, 1, 4, 9, ...: neighbour gaps grow
    radii = kth_neighbour_distances(x, [1, 2])
    np.testing.assert_allclose(radii[1][:4], [1, 1, 3, 5], atol=1e-5)
    np.testing.assert_allclose(radii[2][:4], [4, 3, 4, 7], atol=1e-5)
    dist, idx = nearest_neighbours(np.array([[3.9], [50.0]]), x)
    np.testing.assert_array_equal(idx, [2, 7])
    np.testing.assert_allclose(dist, [0.1, 1.0], atol=1e-6)


# ------------------------------------------------------------------------------------ memorisation


def test_memorization_flags_a_generator_that_returns_training_images():
    rng = np.random.default_rng(11)
    train, test = rng.normal(size=(1000, 1, 8, 8)), rng.normal(size=(400, 1, 8, 8))  # pixel space, flattened
    pick = rng.choice(1000, 300, replace=False)
    audit = memorization_audit(train, test, train[pick])
    assert audit.flagged and audit.near_copy_fraction == 1.0
    assert audit.median_ratio == 0.0 and audit.data_copying_zu < -10
    np.testing.assert_array_equal(audit.gen_nn_index, pick)
    gen_i, train_i = audit.closest_pairs[0]
    assert audit.closest_dist[0] == 0.0 and pick[gen_i] == train_i


def test_memorization_does_not_flag_an_independent_sample():
    rng = np.random.default_rng(12)
    train, test, gen = rng.normal(size=(1000, 16)), rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    audit = memorization_audit(train, test, gen)
    assert not audit.flagged and audit.near_copy_fraction < 0.05
    assert 0.9 < audit.median_ratio < 1.1 and abs(audit.data_copying_zu) < 4
    assert audit.test_near_copy_fraction == pytest.approx(0.01, abs=0.005)


def test_memorization_flags_a_partial_copier():
    rng = np.random.default_rng(19)
    train, test = rng.normal(size=(1000, 16)), rng.normal(size=(400, 16))
    gen = np.concatenate([train[:40], rng.normal(size=(360, 16))])  # 10% copies
    audit = memorization_audit(train, test, gen)
    assert audit.flagged and audit.near_copy_fraction == pytest.approx(0.1 + 0.9 * 0.01, abs=0.015)
    assert set(audit.closest_pairs[:16, 0]) <= set(range(40))  # the copies are the closest pairs


# ------------------------------------------------------------------------------------------ SSIM


def test_ssim_diversity_of_identical_images_is_one():
    img = torch.rand(1, 1, 28, 28) * 2 - 1
    d = ssim_diversity(img.repeat(16, 1, 1, 1), n_pairs=64, rng=0)
    assert d.mean == pytest.approx(1.0, abs=1e-5)
    assert (d.kind, d.win_size) == ("ssim", 7)


def test_ssim_of_two_constant_images_matches_hand_value():
    # Constant images: sigma = 0, so SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 * 1)^2,
    # on [0, 1] (data_range 1): 0.1 and 0 in [-1, 1] are 0.55 and 0.5.
    imgs = torch.stack([torch.full((1, 8, 8), 0.1), torch.zeros(1, 8, 8)])
    c1, a, b = 0.01**2, 0.55, 0.5
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    assert ssim_diversity(imgs, n_pairs=8, rng=0).mean == pytest.approx(expected, rel=1e-5)


def test_ssim_diversity_of_independent_noise_is_near_zero():
    g = torch.Generator().manual_seed(0)
    d = ssim_diversity(torch.rand(64, 3, 32, 32, generator=g) * 2 - 1, n_pairs=200, rng=0)
    assert abs(d.mean) < 0.03


def test_ssim_window_and_ms_ssim_selection():
    assert [default_win_size(s, s) for s in (8, 16, 28, 32, 64)] == [3, 3, 7, 7, 11]
    big = (torch.rand(1, 1, 176, 176) * 2 - 1).repeat(3, 1, 1, 1)
    d = ssim_diversity(big, n_pairs=4, rng=0)
    assert d.kind == "ms_ssim" and d.mean == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="MS-SSIM"):
        ssim_diversity(torch.zeros(4, 1, 28, 28), kind="ms_ssim")


# ---------------------------------------------------------------------------------------- toy 2-D


def test_curve_distance_on_and_off_the_curve():
    x = np.random.default_rng(13).uniform(0, 2 * np.pi, 500)
    on = curve_distance(np.stack([x, np.sin(x)], 1), np.sin, (0, 2 * np.pi))
    assert on.mean <= on.resolution < 1e-3
    xl = np.linspace(0, 1, 50)  # y = x shifted up by 0.3: distance 0.3 / sqrt(2)
    off = curve_distance(np.stack([xl, xl + 0.3], 1), lambda t: t, (-1, 2))
    assert off.mean == pytest.approx(0.3 / np.sqrt(2), abs=off.resolution + 1e-9)


def _ring(n_modes=8, radius=2.0):
    angle = 2 * np.pi * np.arange(n_modes) / n_modes
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)


def test_mode_coverage_counts_a_collapsed_and_a_full_generator():
    rng = np.random.default_rng(14)
    centres, std = _ring(), 0.02
    collapsed = centres[0] + std * rng.normal(size=(2500, 2))
    c = mode_coverage(collapsed, centres, std)
    assert c.modes_covered == 1 and c.covered[0] and c.high_quality_fraction > 0.95
    full = centres[rng.integers(0, 8, 2500)] + std * rng.normal(size=(2500, 2))
    f = mode_coverage(full, centres, std)
    assert f.modes_covered == 8 and f.high_quality_fraction == pytest.approx(1 - np.exp(-4.5), abs=0.01)
    junk = mode_coverage(rng.uniform(-3, 3, size=(2500, 2)), centres, std)
    assert junk.modes_covered == 0 and junk.high_quality_fraction < 0.02


def test_energy_distance_and_mmd_hand_values():
    x, y = np.zeros((2, 2)), np.array([[1.0, 0.0], [1.0, 0.0]])
    assert energy_distance(x, y) == pytest.approx(2.0)  # 2 * 1 - 0 - 0
    assert mmd2(x, y, bandwidth=1.0).mmd2 == pytest.approx(2 - 2 * np.exp(-0.5))


def test_energy_distance_and_mmd_same_vs_shifted():
    rng = np.random.default_rng(15)
    a, b = rng.normal(size=(800, 2)), rng.normal(size=(800, 2))
    shifted = b + np.array([1.5, 0.0])
    assert abs(energy_distance(a, b)) < 0.02 and energy_distance(a, shifted) > 0.5
    same, far = mmd2(a, b), mmd2(a, shifted)
    assert abs(same.mmd2) < 0.01 < 0.1 < far.mmd2 and same.bandwidth > 0


# ------------------------------------------------------------------------------------- Inception


def test_inception_score_limits():
    k, n = 10, 1000
    confident = 50.0 * torch.nn.functional.one_hot(torch.arange(n) % k, k).double()
    r = inception_score(confident, shuffle_seed=None)  # in order: every split holds each class equally often
    assert r.splits == 10 and r.mean == pytest.approx(k, rel=1e-6) and r.std < 1e-6
    shuffled = inception_score(confident)  # torch-fidelity's shuffle: splits are no longer balanced, IS a bit lower
    assert 9.0 < shuffled.mean < k and shuffled.shuffle_seed == 2020
    same = inception_score(np.tile(np.random.default_rng(16).normal(size=(1, k)), (n, 1)))
    assert same.mean == pytest.approx(1.0, abs=1e-9)
    # Hand value: two equiprobable confident classes in one split -> exp(log 2) = 2.
    assert inception_score(np.array([[30.0, 0.0], [0.0, 30.0]]), splits=1).mean == pytest.approx(2.0, rel=1e-9)
    # Two confident + two uniform samples: KLs log 2, log 2, 0, 0 -> exp(mean) = sqrt(2).
    mixed = np.array([[30.0, 0.0], [0.0, 30.0], [0.0, 0.0], [0.0, 0.0]])
    assert inception_score(mixed, splits=1).mean == pytest.approx(np.sqrt(2.0), rel=1e-9)


# ------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_covers_a_known_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(17)
    hits = [bootstrap_ci(np.mean, rng.normal(3.0, 1.0, 100), n_boot=200, rng=rng).contains(3.0) for _ in range(200)]
    assert 0.88 <= np.mean(hits) <= 0.99
    ci = bootstrap_ci(np.mean, rng.normal(3.0, 1.0, 400), n_boot=400, rng=0)
    assert ci.contains(3.0) and ci.high - ci.low == pytest.approx(2 * 1.96 / 20, rel=0.3)


def test_bootstrap_two_samples_with_tensors_and_fid():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g) + 0.5
    diff = bootstrap_ci(lambda x, y: (y.mean() - x.mean()).item(), a, b, n_boot=100, rng=0)
    assert diff.contains(0.5) and diff.method == "bootstrap-percentile"
    fid = bootstrap_ci(fid_from_features, a, b, n_boot=20, rng=0, method="basic")
    assert fid.low < fid.value < fid.high and fid.contains(8 * 0.25)  # true FID = ||0.5 * 1||^2 = 2


def test_subset_ci_and_replicate_summary():
    x = np.random.default_rng(18).normal(5.0, 1.0, 5000)
    ci = subset_ci(np.mean, x, subset_size=500, n_subsets=50, rng=0)
    assert ci.method == "subsets(m=500)" and ci.contains(5.0) and ci.value == pytest.approx(5.0, abs=0.05)
    basic = ci_from_replicates(1.0, np.linspace(0.0, 4.0, 101), alpha=0.5, method="basic")
    assert (basic.low, basic.high) == pytest.approx((2 - 3.0, 2 - 1.0))  # reflected quartiles


def test_spread_interval_is_centred_on_the_value_and_fid_intervals_are_nonnegative():
    spread = ci_from_replicates(1.0, np.linspace(2.0, 6.0, 101), alpha=0.5, method="spread")
    assert (spread.low, spread.high) == pytest.approx((0.0, 2.0))  # quartiles 3, 5 around median 4, moved to 1
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 8))
    fid = bootstrap_ci(fid_from_features, a, a.copy(), n_boot=10, rng=0, method="spread")
    assert fid.low <= fid.value <= fid.high


def test_kid_on_standardised_features_sees_a_shift_that_a_few_large_features_hide():
    """Features far from Inception's scale (a few features 20x larger than the rest, as in the domain
    classifier's space): on the raw features the cubic kernel's spread over subsets swamps a real shift in the
    small features; standardised, the shift stands out and the same distribution stays near 0."""
    g = torch.Generator().manual_seed(0)
    scale = torch.ones(64)
    scale[:4] = 20.0

    def draw(n: int) -> torch.Tensor:
        return torch.randn(n, 64, generator=g) * scale

    real, same, shifted = draw(2000), draw(1000), draw(1000)
    shifted[:, 8:16] += 0.5
    raw = kid(real, shifted, subsets=50, subset_size=500, rng=0)
    assert raw.std > raw.mean  # the raw kernel: the spread swamps the shift
    z_real, z_same, z_shifted = standardise(real, same, shifted)
    assert z_real.mean(0).abs().max() < 1e-5 and (z_real.std(0) - 1).abs().max() < 1e-4
    moved = kid(z_real, z_shifted, subsets=50, subset_size=500, rng=0)
    still = kid(z_real, z_same, subsets=50, subset_size=500, rng=0)
    assert moved.mean > 3 * moved.std and abs(still.mean) < still.std


def test_mann_whitney_z_counts_u_like_scipy_with_ties():
    from scipy.stats import mannwhitneyu

    from ganforge.metrics.memorization import mann_whitney_z

    rng = np.random.default_rng(0)
    gen, test = rng.normal(0.3, 1, 400).round(1), rng.normal(0, 1, 300).round(1)  # rounding makes ties
    m, n = len(gen), len(test)
    u = mannwhitneyu(gen, test, alternative="two-sided", method="asymptotic").statistic  # U of gen
    assert mann_whitney_z(gen, test) == pytest.approx((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12), rel=1e-12)
    assert mann_whitney_z(gen, test) > 2  # gen's distances are larger: positive z
    assert mann_whitney_z(test, test) == pytest.approx(0.0)
