"""Usefulness of synthetic data for a downstream classifier (conditional runs only).

- ``cas``: Classification Accuracy Score (Ravuri & Vinyals 2019, "Classification Accuracy Score for
  Conditional Generative Models", https://arxiv.org/abs/1905.10887): a fresh classifier trained on N
  labelled *synthetic* samples, tested on the real test split. Shown beside the same classifier
  (architecture, recipe, seed) trained on N *real* training samples (the ``floor`` field: what real
  data reaches under this protocol).
- ``aug_gain``: test accuracy of that classifier trained on the N real + N synthetic samples minus
  trained on the N real alone; its interval is a paired bootstrap over test images.

The synthetic set uses exactly the real subset's labels, so both sets have the same class balance.
The classifier is the domain extractor's network (``extractors.DomainNet``, ``DomainRecipe``).
Intervals cover the test-set sampling error for one classifier seed, not seed-to-seed variation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ganforge.metrics.bootstrap import bootstrap_ci
from ganforge.metrics.domain_extractor import DomainRecipe, DomainSpec, run_net, train_domain_net
from ganforge.metrics.features import sha256_json
from ganforge.metrics.protocol import EvalContext, Interval, Outcome, from_ci, register_metric, wilson
from ganforge.metrics.threads import concurrently

IMAGE = ("image",)
GAIN_BOOT = 1000


@dataclass(frozen=True)
class Usefulness:
    n_per_set: int
    correct_real: np.ndarray  # [N_test] bool: classifier trained on N real samples
    correct_synthetic: np.ndarray  # [N_test] bool: trained on N synthetic samples
    correct_mixed: np.ndarray  # [N_test] bool: trained on N real + N synthetic
    recipe_hash: str


def _usefulness(ctx: EvalContext) -> Usefulness:
    def compute() -> Usefulness:
        train, test = ctx.train, ctx.test
        assert train.y is not None and test.y is not None
        n = min(ctx.n, len(train))
        x_real, y_real = train.x[:n], train.y[:n]  # loaders shuffle with a fixed seed: a class-mixed subset
        x_syn, _ = ctx.sample(n, ctx.seed + 1, y_real.clone())
        c, h, _ = train.shape
        spec, recipe = DomainSpec(c, h, ctx.num_classes), DomainRecipe(seed=ctx.seed)

        def fit_and_test(x: torch.Tensor, y: torch.Tensor, cache: bool) -> np.ndarray:
            net = train_domain_net(x, y, spec, recipe, device=ctx.device, cache=cache).net
            _, logits = run_net(net, test.x, ctx.device)
            return (logits.argmax(1) == test.y).numpy()

        ctx.log(f"usefulness: training 3 classifiers (real, synthetic, real+synthetic; {n} images each set)")
        real, syn, mixed = concurrently([  # the real one usually comes from the cache
            lambda: ctx.real_memo(f"cas:real:{n}:{ctx.seed}", lambda: fit_and_test(x_real, y_real, True)),
            lambda: fit_and_test(x_syn, y_real, False),
            lambda: fit_and_test(torch.cat([x_real, x_syn]), torch.cat([y_real, y_real]), False),
        ], ctx.device)
        return Usefulness(n, real, syn, mixed, sha256_json({"spec": asdict(spec), "recipe": asdict(recipe)})[:12])

    return ctx.memo("usefulness", compute)


def _params(ctx: EvalContext, u: Usefulness) -> dict:
    return {"classifier": "domain-cnn", "classifier_recipe": u.recipe_hash, "n_train_per_set": u.n_per_set,
            "eval_split": "test", "n_eval": len(ctx.test)}


@register_metric("cas", kinds=IMAGE, requires=("conditional", "labels"), higher_is_better=True,
                 help="accuracy on real test data of a classifier trained on N synthetic samples; beside N real")
def cas_metric(ctx: EvalContext) -> Outcome:
    u = _usefulness(ctx)
    n_test = len(u.correct_synthetic)
    acc_syn, acc_real, acc_mix = (float(c.mean()) for c in (u.correct_synthetic, u.correct_real, u.correct_mixed))
    ci = wilson(acc_syn * n_test, n_test)
    details = {"real_accuracy": acc_real, "synthetic_accuracy": acc_syn, "real_plus_synthetic_accuracy": acc_mix,
               "cas_over_real": acc_syn / acc_real if acc_real > 0 else None}
    return Outcome(acc_syn, Interval(ci.low, ci.high, "wilson(test images; one classifier seed)"), acc_real,
                   params=_params(ctx, u), details=details, n_generated=u.n_per_set, n_reference=u.n_per_set)


@register_metric("aug_gain", kinds=IMAGE, requires=("conditional", "labels"), higher_is_better=True,
                 help="test accuracy gain from adding N synthetic to N real training samples (same classifier)")
def aug_gain_metric(ctx: EvalContext) -> Outcome:
    u = _usefulness(ctx)
    diff = u.correct_mixed.astype(np.float64) - u.correct_real.astype(np.float64)  # paired, per test image
    value = float(diff.mean())
    ci = from_ci(bootstrap_ci(np.mean, diff, n_boot=GAIN_BOOT, rng=ctx.seed), label=f"paired-bootstrap(n={GAIN_BOOT})")
    details = {"real_accuracy": float(u.correct_real.mean()),
               "real_plus_synthetic_accuracy": float(u.correct_mixed.mean())}
    return Outcome(value, ci, None, params=_params(ctx, u), details=details, n_generated=u.n_per_set,
                   n_reference=u.n_per_set)
