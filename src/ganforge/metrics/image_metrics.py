"""The image metrics as protocols: which features, which reference, which floor, which interval.

Reference and floor (see ``EvalContext``): generated samples are compared with the real *training*
split; the real-vs-real floor is the same metric between the real *test* split and the training
split, i.e. what an independent real sample reaches. FID and KID are biased by the sample counts,
so when n_generated differs from the test split's size the value at the floor's count is reported
too (``details.value_at_floor_n``).

The math is in ``fid``, ``kid``, ``prdc``, ``inception_score``, ``diversity`` and ``memorization``;
this module only decides what goes in and records how.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganforge.metrics.bootstrap import bootstrap_ci, ci_from_replicates
from ganforge.metrics.diversity import INPUT_CONVENTION, ssim_diversity
from ganforge.metrics.fid import fid_from_features
from ganforge.metrics.inception_score import SHUFFLE_SEED, inception_score
from ganforge.metrics.kid import kid, standardise
from ganforge.metrics.memorization import MemorizationAudit, memorization_audit
from ganforge.metrics.prdc import PRDC, kth_neighbour_distances, prdc
from ganforge.metrics.protocol import EvalContext, Interval, Outcome, from_ci, normal_mean, register_metric, wilson

IMAGE = ("image",)
# One k for all four, as the `prdc` package that defines density and coverage (Naeem et al. 2020) computes
# them (nearest_k=5). torch-fidelity's precision/recall default is k=3 (Kynkäänniemi et al. 2019): those
# differ by up to 0.2, so k is in every protocol (and so in every table's protocol line).
K_PR, K_DC = 5, 5
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
DENSITY_BOOT = 200
IS_SPLITS = 10
SSIM_PAIRS = 1000
PER_CLASS_BOOT = 10


def nonnegative(ci: Interval) -> Interval:
    """A distance cannot be negative: clip the interval's low end at 0."""
    return Interval(max(ci.low, 0.0), max(ci.high, 0.0), ci.method, ci.level)


def _features(ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(reference [N_ref, D], floor [N_floor, D], generated [n, D]) features."""
    return ctx.real_features(ctx.reference_split).feats, ctx.real_features(ctx.floor_split).feats, \
        ctx.fake_features().feats


# ---------------------------------------------------------------------------------------------- FID


@register_metric("fid", kinds=IMAGE, cheap=True, higher_is_better=False,
                 help="Fréchet distance of extractor features, generated vs real train split (Heusel et al. 2017)")
def fid_metric(ctx: EvalContext) -> Outcome:
    ref, floor_feats, gen = _features(ctx)
    value = fid_from_features(ref, gen)
    ci = None
    if ctx.n_boot >= 2:
        # spread, not percentile: resampled sets have duplicated rows, which biases bootstrap FIDs upwards
        ci = nonnegative(from_ci(bootstrap_ci(fid_from_features, ref, gen, n_boot=ctx.n_boot, rng=ctx.seed,
                                              method="spread")))
    floor = ctx.real_memo("fid:floor", lambda: fid_from_features(ref, floor_feats))
    details: dict[str, Any] = {}
    if len(gen) > len(floor_feats):
        details["value_at_floor_n"] = fid_from_features(ref, gen[: len(floor_feats)])
    return Outcome(value, ci, floor, details=details)


# ---------------------------------------------------------------------------------------------- KID


@register_metric("kid", kinds=IMAGE, cheap=True, higher_is_better=False, display_scale=1e3,
                 help="kernel (cubic polynomial) MMD^2 of features, mean over 100 subsets (Bińkowski et al. 2018); "
                      "printed as KID x 10^3, stored unscaled; non-Inception features standardised first")
def kid_metric(ctx: EvalContext) -> Outcome:
    ref, floor_feats, gen = _features(ctx)
    zscore = not ctx.extractor.name.startswith("inception")
    if zscore:
        # The cubic kernel (x.y/d + 1)^3 was made for Inception's pool features. In other feature spaces (the
        # domain classifier's: mean 0.6, mean square 14 on MNIST) x.y/d is ~10, the kernel ~10^3 and KID's
        # spread over subsets 40x its value (demo: 0.067 +- 2.9, real-vs-real -2.3). Standardising each
        # feature by the real reference set's mean and std puts x.y/d in Inception's range: demo 0.011 +- 0.004,
        # real-vs-real -0.003, the old demo (FID 30) 0.079.
        ref, floor_feats, gen = standardise(ref, floor_feats, gen)
    res = kid(ref, gen, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, rng=ctx.seed)
    ci = from_ci(ci_from_replicates(res.mean, res.per_subset),
                 label=f"subset-percentile(m={res.subset_size}, subsets={res.subsets})")
    floor = ctx.real_memo(f"kid:floor:{ctx.seed}", lambda: kid(ref, floor_feats, subsets=KID_SUBSETS,
                                                   subset_size=KID_SUBSET_SIZE, rng=ctx.seed).mean)
    params = {"kid_subsets": KID_SUBSETS, "kid_subset_size": res.subset_size, "kernel": "(x.y/d+1)^3",
              "features": "standardised by the real reference set's mean and std" if zscore
              else "as extracted (Inception convention)"}
    return Outcome(res.mean, ci, floor, params=params, details={"std_over_subsets": res.std})


# ----------------------------------------------------------------------------- precision, recall, ...


def _prdc(ctx: EvalContext) -> tuple[PRDC, PRDC]:
    ref, floor_feats, gen = _features(ctx)
    value = ctx.memo("prdc", lambda: prdc(ref, gen, k_pr=K_PR, k_dc=K_DC))
    floor = ctx.real_memo("prdc:floor", lambda: prdc(ref, floor_feats, k_pr=K_PR, k_dc=K_DC))
    return value, floor


def _fraction(ctx: EvalContext, field: str, n_of: str) -> Outcome:
    value, floor = _prdc(ctx)
    p = getattr(value, field)
    n = value.n_gen if n_of == "gen" else value.n_real
    ci = wilson(p * n, n)
    ci = Interval(ci.low, ci.high, "wilson(balls fixed)")  # sampling error of the radii is not included
    k = value.k_pr if field in ("precision", "recall") else value.k_dc
    return Outcome(p, ci, getattr(floor, field), params={"k": k})


@register_metric("precision", kinds=IMAGE, cheap=True, higher_is_better=True,
                 help="share of generated samples inside the real k-NN manifold, k=5 as prdc (Kynkäänniemi+ 2019)")
def precision_metric(ctx: EvalContext) -> Outcome:
    return _fraction(ctx, "precision", "gen")


@register_metric("recall", kinds=IMAGE, cheap=True, higher_is_better=True,
                 help="share of real samples inside the generated k-NN manifold, k=5 as prdc (Kynkäänniemi+ 2019)")
def recall_metric(ctx: EvalContext) -> Outcome:
    return _fraction(ctx, "recall", "real")


@register_metric("coverage", kinds=IMAGE, cheap=True, higher_is_better=True,
                 help="share of real k-NN balls (k=5) holding a generated sample (Naeem et al. 2020)")
def coverage_metric(ctx: EvalContext) -> Outcome:
    return _fraction(ctx, "coverage", "real")


@register_metric("density", kinds=IMAGE, cheap=True, higher_is_better=None,
                 help="mean count of real k-NN balls (k=5) holding a generated sample / k; ~1 when matched")
def density_metric(ctx: EvalContext) -> Outcome:
    value, floor = _prdc(ctx)
    ci = None
    if ctx.n_boot >= 2:
        per_sample = _balls_per_generated_sample(ctx) / K_DC
        if not np.isclose(per_sample.mean(), value.density, rtol=1e-4, atol=1e-6):  # same radii, same rule as prdc
            raise AssertionError(f"density per sample {per_sample.mean()} != prdc density {value.density}")
        ci = from_ci(bootstrap_ci(np.mean, per_sample, n_boot=DENSITY_BOOT, rng=ctx.seed),
                     label=f"bootstrap-percentile(n={DENSITY_BOOT}, generated samples; balls fixed)")
    return Outcome(value.density, ci, floor.density, params={"k": value.k_dc})


def _balls_per_generated_sample(ctx: EvalContext) -> np.ndarray:
    """[n_gen] number of real k_dc-balls holding each generated sample (density's summands, for its interval).

    ``prdc`` returns only the mean; the interval needs the per-sample terms, recomputed here with
    the same radii (``kth_neighbour_distances``) and the same strict rule; checked equal above.
    """
    ref, _, gen = _features(ctx)
    radii = ctx.real_memo(f"radii:{K_DC}", lambda: torch.from_numpy(kth_neighbour_distances(ref, [K_DC])[K_DC]))
    radii = radii.float()
    counts = []
    with torch.no_grad():
        for chunk in gen.float().split(max(1, 2**24 // max(len(ref), 1))):
            d = torch.cdist(chunk, ref.float(), compute_mode="use_mm_for_euclid_dist")  # [c, N_ref]
            counts.append((d < radii[None, :]).sum(dim=1))
    return torch.cat(counts).double().numpy()


# ------------------------------------------------------------------------------ Inception-style score


@register_metric("is", kinds=IMAGE, requires=("logits",), higher_is_better=True,
                 help="Inception-style score exp(E KL(p(y|x)||p(y))) from the extractor's class head (torch-fidelity's "
                      "convention: shuffled with seed 2020, 10 splits)")
def is_metric(ctx: EvalContext) -> Outcome:
    logits = ctx.fake_features().logits
    assert logits is not None
    res = inception_score(logits, splits=min(IS_SPLITS, len(logits)))
    ci = normal_mean(res.mean, res.std, res.splits, f"normal(splits={res.splits})") if res.splits > 1 else None
    floor_logits = ctx.real_features(ctx.floor_split).logits
    assert floor_logits is not None
    floor = ctx.real_memo("is:floor",
                          lambda: inception_score(floor_logits, splits=min(IS_SPLITS, len(floor_logits))).mean)
    pred = logits.argmax(1)
    k = logits.shape[1]
    details = {"splits": res.splits, "n_classes": k}
    if k <= 100:  # predicted-class shares of the generated samples: a collapsed class shows here
        shares = torch.bincount(pred, minlength=k) / len(pred)
        details["predicted_class_fractions"] = [round(float(v), 4) for v in shares]
    params = {"is_splits": res.splits, "is_shuffle": f"numpy RandomState({SHUFFLE_SEED}).permutation"}
    return Outcome(res.mean, ci, floor, params=params, details=details)


# ---------------------------------------------------------------------------------- per-class FID


@register_metric("fid_per_class", kinds=IMAGE, requires=("conditional", "labels"), higher_is_better=False,
                 help="conditional runs: FID of each class's samples vs real images of that class, averaged")
def fid_per_class_metric(ctx: EvalContext) -> Outcome:
    ref, floor_feats, gen = _features(ctx)
    y_ref, y_floor = ctx.reference.y, ctx.floor_data.y
    _, y_gen = ctx.fake()
    assert y_ref is not None and y_floor is not None and y_gen is not None
    names = ctx.train.class_names or tuple(str(k) for k in range(ctx.num_classes))
    groups = []  # (class, ref rows, floor rows, generated rows)
    for k in range(ctx.num_classes):
        r, f, g = ref[y_ref == k], floor_feats[y_floor == k], gen[y_gen == k]
        if min(len(r), len(f), len(g)) >= 2:
            groups.append((k, r, f, g))
    if not groups:
        raise ValueError("no class has >= 2 real and generated samples; evaluate with a larger --n")
    per_class = {names[k]: fid_from_features(r, g) for k, r, _, g in groups}
    floors = ctx.real_memo("fid_per_class:floor",
                           lambda: {names[k]: fid_from_features(r, f) for k, r, f, _ in groups})
    value = float(np.mean(list(per_class.values())))
    ci = None
    if ctx.n_boot >= 2:
        rng = np.random.default_rng(ctx.seed)
        reps = []
        for _ in range(min(ctx.n_boot, PER_CLASS_BOOT)):  # resample within each class, average the FIDs
            reps.append(np.mean([fid_from_features(r[rng.integers(0, len(r), len(r))],
                                                   g[rng.integers(0, len(g), len(g))]) for _, r, _, g in groups]))
        ci = nonnegative(from_ci(ci_from_replicates(value, np.asarray(reps), method="spread")))
    details = {"per_class": per_class, "per_class_floor": floors, "classes_used": len(groups),
               "n_generated_per_class": int(round(len(gen) / ctx.num_classes))}
    return Outcome(value, ci, float(np.mean(list(floors.values()))), details=details)


# -------------------------------------------------------------------------------------- diversity


@register_metric("diversity", kinds=IMAGE, higher_is_better=None,
                 help="mean SSIM between random pairs of generated images; beside real pairs (lower: more diverse)")
def diversity_metric(ctx: EvalContext) -> Outcome:
    x_gen, y_gen = ctx.fake()
    real = ctx.floor_data
    g = ssim_diversity(x_gen, n_pairs=SSIM_PAIRS, rng=ctx.seed)
    r = ctx.real_memo(f"diversity:floor:{ctx.seed}", lambda: ssim_diversity(real.x, n_pairs=SSIM_PAIRS, rng=ctx.seed))
    details: dict[str, Any] = {"kind": g.kind, "win_size": g.win_size, "std_over_pairs": g.std,
                               "real_split": ctx.floor_split}
    if ctx.conditional and y_gen is not None and real.y is not None:
        # Within-class diversity: mode collapse inside a class hides in the overall number.
        names = ctx.train.class_names or tuple(str(k) for k in range(ctx.num_classes))
        per = {}
        for k in range(ctx.num_classes):
            xg, xr = x_gen[y_gen == k], real.x[real.y == k]
            if len(xg) >= 2 and len(xr) >= 2:
                per[names[k]] = {"generated": ssim_diversity(xg, n_pairs=200, rng=ctx.seed).mean,
                                 "real": ssim_diversity(xr, n_pairs=200, rng=ctx.seed).mean}
        details["per_class"] = per
    ci = normal_mean(g.mean, g.std, g.n_pairs, f"normal(pairs={g.n_pairs})")
    params = {"ssim": g.kind, "ssim_win_size": g.win_size, "ssim_input": INPUT_CONVENTION, "ssim_pairs": SSIM_PAIRS}
    return Outcome(g.mean, ci, r.mean, params=params, details=details)


# ---------------------------------------------------------------------------------- memorisation


def _audit_details(a: MemorizationAudit) -> dict[str, Any]:
    return {"near_copy_fraction": a.near_copy_fraction, "test_near_copy_fraction": a.test_near_copy_fraction,
            "median_ratio": a.median_ratio, "threshold": a.threshold, "threshold_rule": a.threshold_rule,
            "data_copying_zu": a.data_copying_zu, "flagged": a.flagged,
            "closest_pairs": a.closest_pairs[:8].tolist(), "closest_dist": [float(d) for d in a.closest_dist[:8]]}


@register_metric("memorization", kinds=IMAGE, higher_is_better=False,
                 help="share of generated samples nearer a training image than 99% of test images are; flagged")
def memorization_metric(ctx: EvalContext) -> Outcome:
    if ctx.reference_split != "train":
        raise ValueError("the memorisation audit compares with the training split")
    ref, floor_feats, gen = _features(ctx)
    x_gen, _ = ctx.fake()
    feat = memorization_audit(ref, floor_feats, gen)
    pixel = memorization_audit(ctx.train.x, ctx.test.x, x_gen)
    n = len(gen)
    ci = wilson(feat.near_copy_fraction * n, n)
    details: dict[str, Any] = {"feature_space": _audit_details(feat), "pixel_space": _audit_details(pixel),
                               "rule": "flagged when > 5% of generated samples are near-copies in feature or "
                                       "pixel space (a test image is one with 1% chance)"}
    if ctx.run_dir is not None:
        details["pictures"] = [str(p) for p in _save_pairs(ctx, x_gen, feat, pixel)]
    return Outcome(feat.near_copy_fraction, ci, feat.test_near_copy_fraction, flagged=feat.flagged or pixel.flagged,
                   params={"near_copy_rule": feat.threshold_rule, "flag_fraction": 0.05}, details=details)


def _save_pairs(ctx: EvalContext, x_gen: torch.Tensor, *audits: MemorizationAudit) -> list:
    """eval/closest_pairs.png (feature space) and eval/closest_pairs_pixel.png: generated row over nearest-train row."""
    from ganforge.training.grids import save_image_grid

    assert ctx.run_dir is not None
    paths = []
    for audit, name in zip(audits, ("closest_pairs.png", "closest_pairs_pixel.png")):
        pairs = audit.closest_pairs[:16]
        rows = []
        for start in range(0, len(pairs), 8):
            chunk = pairs[start : start + 8]
            rows += [x_gen[chunk[:, 0]], ctx.train.x[chunk[:, 1]]]
            pad = 8 - len(chunk)
            if pad:
                rows[-2:] = [torch.cat([r, torch.ones(pad, *r.shape[1:])]) for r in rows[-2:]]
        path = ctx.run_dir / "eval" / name
        save_image_grid(torch.cat(rows), path, nrow=8, mask_channels=ctx.train.mask_channels)
        paths.append(path)
    return paths
