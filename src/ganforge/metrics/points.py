"""The 2D point metrics as protocols: raw coordinates, no extractor.

Generated points are compared with a *fresh* real sample (the test split, drawn independently of
the training points); the real-vs-real floor is the training split against that same fresh sample.
Curve datasets add the mean distance to the true curve; Gaussian mixtures the modes covered and
the high-quality fraction (Metz et al. 2017; Srivastava et al. 2017). The math is in ``toy2d``.
"""

from __future__ import annotations

import numpy as np

from ganforge.metrics.bootstrap import bootstrap_ci
from ganforge.metrics.protocol import EvalContext, Interval, Outcome, from_ci, register_metric, wilson
from ganforge.metrics.toy2d import curve_distance, energy_distance, median_heuristic, mmd2, mode_coverage

POINTS = ("points",)


def _points(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference = fresh real [N, 2], floor = training points [M, 2], generated [n, 2]) as float64."""
    return (ctx.reference.x.double().numpy(), ctx.floor_data.x.double().numpy(),
            ctx.fake()[0].double().flatten(1).numpy())


@register_metric("energy", kinds=POINTS, cheap=True, higher_is_better=False,
                 help="energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| to fresh real points (Székely & Rizzo 2013)")
def energy_metric(ctx: EvalContext) -> Outcome:
    ref, floor_pts, gen = _points(ctx)
    value = energy_distance(ref, gen)
    ci = None
    if ctx.n_boot >= 2:
        ci = from_ci(bootstrap_ci(energy_distance, ref, gen, n_boot=ctx.n_boot, rng=ctx.seed, method="spread"))
    floor = ctx.real_memo("energy:floor", lambda: energy_distance(ref, floor_pts))
    return Outcome(value, ci, floor)


@register_metric("mmd", kinds=POINTS, cheap=True, higher_is_better=False,
                 help="unbiased Gaussian-kernel MMD^2 to fresh real points; bandwidth fixed from real data")
def mmd_metric(ctx: EvalContext) -> Outcome:
    ref, floor_pts, gen = _points(ctx)
    # The bandwidth comes from the real data alone, so every run on this data uses the same kernel.
    sigma = ctx.real_memo("mmd:bandwidth", lambda: median_heuristic(ref, floor_pts, rng=0))
    value = mmd2(ref, gen, bandwidth=sigma).mmd2
    ci = None
    if ctx.n_boot >= 2:
        stat = lambda a, b: mmd2(a, b, bandwidth=sigma).mmd2  # noqa: E731
        ci = from_ci(bootstrap_ci(stat, ref, gen, n_boot=ctx.n_boot, rng=ctx.seed, method="spread"))
    floor = ctx.real_memo("mmd:floor", lambda: mmd2(ref, floor_pts, bandwidth=sigma).mmd2)
    return Outcome(value, ci, floor, params={"kernel": "gaussian", "bandwidth": round(sigma, 6)})


@register_metric("curve_distance", kinds=POINTS, requires=("curve",), cheap=True, higher_is_better=False,
                 help="mean distance from generated points to the true curve (sine, parametric-curve)")
def curve_distance_metric(ctx: EvalContext) -> Outcome:
    from ganforge.data.toy2d import curve_y

    meta = ctx.train.meta
    name, x_range = meta["curve"], tuple(meta.get("x_range", (0.0, 2 * np.pi)))
    f = lambda x: curve_y(name, x)  # noqa: E731
    ref, _, gen = _points(ctx)
    res = curve_distance(gen, f, x_range)
    ci = None
    if ctx.n_boot >= 2:
        ci = from_ci(bootstrap_ci(np.mean, res.per_point, n_boot=max(ctx.n_boot, 200), rng=ctx.seed))
    floor = ctx.real_memo("curve:floor", lambda: curve_distance(ref, f, x_range).mean)
    details = {"median": res.median, "resolution": res.resolution, "noise": meta.get("noise")}
    return Outcome(res.mean, ci, floor, params={"curve": name}, details=details)


def _coverage(ctx: EvalContext):
    meta = ctx.train.meta
    centres, std = np.asarray(meta["modes"], dtype=np.float64), float(meta["mode_std"])
    ref, _, gen = _points(ctx)
    value = ctx.memo("modes", lambda: mode_coverage(gen, centres, std))
    floor = ctx.real_memo("modes:floor", lambda: mode_coverage(ref, centres, std))
    return value, floor, gen, centres, std


@register_metric("modes_covered", kinds=POINTS, requires=("modes",), cheap=True, higher_is_better=True,
                 help="mixtures (ring8, grid25): modes holding >= 0.8% of samples within 3 std")
def modes_covered_metric(ctx: EvalContext) -> Outcome:
    value, floor, gen, centres, std = _coverage(ctx)
    ci = None
    if ctx.n_boot >= 2:
        ci = from_ci(bootstrap_ci(lambda g: mode_coverage(g, centres, std).modes_covered, gen,
                                  n_boot=ctx.n_boot, rng=ctx.seed))
    details = {"n_modes": value.n_modes, "counts": value.counts.tolist(), "min_count": value.min_count}
    return Outcome(value.modes_covered, ci, floor.modes_covered, params={"n_std": 3.0, "min_fraction": 0.008},
                   details=details)


@register_metric("high_quality", kinds=POINTS, requires=("modes",), cheap=True, higher_is_better=True,
                 help="mixtures (ring8, grid25): share of generated points within 3 std of a mode centre")
def high_quality_metric(ctx: EvalContext) -> Outcome:
    value, floor, gen, _, _ = _coverage(ctx)
    ci = wilson(value.high_quality_fraction * len(gen), len(gen))
    return Outcome(value.high_quality_fraction, Interval(ci.low, ci.high, "wilson"), floor.high_quality_fraction,
                   params={"n_std": 3.0})
