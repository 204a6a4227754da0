"""Does a conditional generator draw the class it is asked for? The extractor's classifier decides.

``class_acc``: the share of generated samples (balanced over the classes asked for) that the extractor's class
head (the ``domain`` classifier, trained on the real training split) assigns to the requested class; the
lowest class is in the details, since one class drawn wrong hides in a mean over ten. The floor is the same
classifier on the real test split (its test accuracy): a generator cannot be expected to do better. AC-GAN
style collapse to easy prototypes scores high here and low on recall and diversity: read it beside them.
"""

from __future__ import annotations

import torch

from ganforge.metrics.protocol import EvalContext, Interval, Outcome, register_metric, wilson


def class_accuracy(logits: torch.Tensor, asked: torch.Tensor, num_classes: int) -> tuple[float, list[float]]:
    """(share of rows whose argmax is the asked class, per-class shares [K] (nan for a class never asked))."""
    hit = (logits.argmax(1) == asked).double()  # [N]
    per_class = [
        float(hit[asked == k].mean()) if bool((asked == k).any()) else float("nan") for k in range(num_classes)
    ]
    return float(hit.mean()), per_class


@register_metric(
    "class_acc",
    kinds=("image",),
    requires=("conditional", "labels", "logits"),
    cheap=True,
    higher_is_better=True,
    help="conditional runs: share of samples the extractor's classifier assigns to the requested class",
)
def class_acc_metric(ctx: EvalContext) -> Outcome:
    logits = ctx.fake_features().logits
    _, asked = ctx.fake()
    assert logits is not None and asked is not None
    value, per_class = class_accuracy(logits, asked, ctx.num_classes)
    ci = wilson(value * len(asked), len(asked))

    def floor() -> float:
        real = ctx.real_features(ctx.floor_split).logits
        assert real is not None and ctx.floor_data.y is not None
        return class_accuracy(real, ctx.floor_data.y, ctx.num_classes)[0]

    names = ctx.train.class_names or tuple(str(k) for k in range(ctx.num_classes))
    asked_classes = [k for k in range(ctx.num_classes) if per_class[k] == per_class[k]]  # not nan
    worst = min(asked_classes, key=lambda k: per_class[k])
    details = {
        "per_class": {names[k]: round(per_class[k], 4) for k in asked_classes},
        "lowest_class": names[worst],
        "lowest": per_class[worst],
    }
    return Outcome(value, Interval(ci.low, ci.high, "wilson"), ctx.real_memo("class_acc:floor", floor), details=details)
