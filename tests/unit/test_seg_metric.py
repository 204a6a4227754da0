"""The segmentation usefulness metric ("train on synthetic, test on real"): Dice on hand-made masks, the
U-Net's shapes and gradients, a deterministic segmenter that learns an easy task, and seg_dice end to end
through EvalContext on bright discs: a replay sampler scores near the real-data floor, masks shuffled away
from their images or left empty score far below it, and data without masks is skipped with a reason."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from ganforge.data.base import Dataset
from ganforge.metrics import METRICS, segmentation
from ganforge.metrics.extractors import RawExtractor
from ganforge.metrics.protocol import EvalContext
from ganforge.metrics.segmentation import (
    SegRecipe,
    SegUNet,
    dice_per_image,
    predict_masks,
    score_masks,
    train_segmenter,
)


def discs(n: int, size: int, seed: int, empty_fraction: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright discs on noise: images [n, 1, size, size] in [-1, 1], masks [n, 1, size, size] in {-1, +1}.

    A share ``empty_fraction`` of the images has no disc (an empty mask); labels: 1 = has a disc."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    cy, cx = (torch.rand(2, n, 1, 1, generator=g) * 0.6 + 0.2) * size
    r = (torch.rand(n, 1, 1, generator=g) * 0.15 + 0.12) * size
    has = (torch.rand(n, 1, 1, generator=g) >= empty_fraction).float()
    fg = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).float() * has  # [n, size, size] in {0, 1}
    img = (0.25 * torch.randn(n, size, size, generator=g) + 1.2 * fg - 0.5).clamp(-1, 1)
    return img[:, None], (2 * fg - 1)[:, None]


# ----------------------------------------------------------------------------------------------
# pure math


def test_dice_per_image_on_hand_made_masks():
    pred = np.zeros((5, 4, 4), bool)
    true = np.zeros((5, 4, 4), bool)
    pred[0, 0, :2] = True  # 2 pixels
    true[0, 0, 1:4] = True  # 3 pixels, 1 shared: 2 * 1 / (2 + 3)
    pred[1, 1:3, 1:3] = true[1, 1:3, 1:3] = True  # identical
    # 2: both empty
    true[3, 2, 2] = True  # 3: only the truth has foreground
    pred[4, 0, 0] = True  # 4: only the prediction has foreground
    np.testing.assert_allclose(dice_per_image(pred, true), [0.4, 1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(dice_per_image(torch.from_numpy(pred), torch.from_numpy(true)),
                               [0.4, 1.0, 1.0, 0.0, 0.0])  # tensors too
    with pytest.raises(ValueError, match="differ in shape"):
        dice_per_image(pred, true[:, :3])


def test_score_masks_averages_channels_and_counts_empty_slice_false_positives():
    true = torch.zeros(3, 2, 4, 4, dtype=torch.bool)
    pred = torch.zeros_like(true)
    true[0, 0, :2, :2] = pred[0, 0, :2, :2] = True  # image 0: channel 0 perfect, channel 1 both empty
    true[1, 1, 0, 0] = True  # image 1: missed entirely on channel 1
    pred[2, 0, 3, 3] = True  # image 2: empty truth, a false positive
    s = score_masks(pred, true)
    np.testing.assert_allclose(s.dice, [1.0, 0.5, 0.5])
    assert s.lesion.tolist() == [True, True, False] and s.false_positive.tolist() == [False, False, True]
    assert s.summary() == {"dice": pytest.approx(2 / 3), "dice_on_lesion_slices": 0.75,
                           "empty_slice_false_positive_rate": 1.0}


# ----------------------------------------------------------------------------------------------
# the network and its training


@pytest.mark.parametrize(("size", "c_in", "c_out"), [(16, 1, 1), (28, 1, 1), (30, 3, 2), (32, 3, 2), (64, 1, 1)])
def test_unet_keeps_the_input_size_and_every_parameter_gets_a_gradient(size, c_in, c_out):
    torch.manual_seed(0)
    net = SegUNet(c_in, c_out)
    x = torch.randn(2, c_in, size, size)
    logits = net(x)
    assert logits.shape == (2, c_out, size, size)  # 30: odd sizes at depth 2 (15 -> 7) pad back to the skip
    logits.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_segmenter_is_deterministic_and_learns_bright_squares():
    recipe = SegRecipe(steps=80)
    size, g = 16, torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(700, 1, size, size, generator=g) - 0.5
    masks = -torch.ones_like(x)
    corner = torch.randint(1, size - 6, (700, 2), generator=g)
    for i, (a, b) in enumerate(corner.tolist()):  # a bright 5x5 square per image, anywhere
        x[i, :, a : a + 5, b : b + 5] += 1.0
        masks[i, :, a : a + 5, b : b + 5] = 1.0
    train, test = slice(0, 500), slice(500, 700)

    torch.manual_seed(123)
    net = train_segmenter(x[train], masks[train], recipe)
    torch.manual_seed(456)  # the global RNG must not matter
    again = train_segmenter(x[train], masks[train], recipe)
    other = train_segmenter(x[train], masks[train], SegRecipe(steps=80, seed=1))
    state, state_again = net.state_dict(), again.state_dict()
    assert all(torch.equal(state[k], state_again[k]) for k in state)
    assert not torch.equal(state["head.weight"], other.state_dict()["head.weight"])

    true = masks[test] > 0
    learned = score_masks(predict_masks(net, x[test], "cpu"), true).dice.mean()
    torch.manual_seed(0)
    untrained = score_masks(predict_masks(SegUNet(1, 1), x[test], "cpu"), true).dice.mean()
    assert learned > 0.8 and untrained < 0.3, (learned, untrained)


# ----------------------------------------------------------------------------------------------
# the metrics, end to end


SIZE, N_TRAIN, N_TEST, STEPS = 16, 400, 200, 80


@pytest.fixture(scope="module")
def seg_data() -> tuple[Dataset, Dataset]:
    def make(n: int, seed: int) -> Dataset:
        img, mask = discs(n, SIZE, seed)
        y = (mask.flatten(1) > 0).any(1).long()  # class 1: the image holds a disc
        return Dataset("discs", torch.cat([img, mask], 1), y, num_classes=2, mask_channels=1)

    return make(N_TRAIN, 0), make(N_TEST, 1)


def context(train: Dataset, test: Dataset, sample, shared: dict, *, conditional: bool = False,
            n_boot: int = 20) -> EvalContext:
    return EvalContext(train, test, RawExtractor(), sample, conditional=conditional, num_classes=2, n=N_TRAIN,
                       seed=0, n_boot=n_boot, log=lambda _: None, shared=shared)


@pytest.fixture(scope="module")
def seg_results(seg_data):
    """seg_dice and seg_aug_gain for three samplers, sharing one real-data cache (the real U-Net trains once)."""
    train, test = seg_data
    calls: list[tuple[int, int, torch.Tensor | None]] = []

    def replay(n, seed, labels):  # real training pairs with the requested labels, drawn with replacement
        calls.append((n, seed, labels))
        g = torch.Generator().manual_seed(seed)
        idx = torch.empty(n, dtype=torch.long)
        for k in (0, 1):
            pool, where = (train.y == k).nonzero().flatten(), (labels == k).nonzero().flatten()
            idx[where] = pool[torch.randint(0, len(pool), (len(where),), generator=g)]
        return train.x[idx].clone(), labels

    def shuffled_masks(n, seed, labels):  # real images, each with another image's mask
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return torch.cat([train.x[:n, :1], train.x[perm, 1:]], 1), labels

    def background(n, seed, labels):  # real images, masks all background
        return torch.cat([train.x[:n, :1], -torch.ones_like(train.x[:n, 1:])], 1), labels

    shared: dict = {}
    out = {}
    with pytest.MonkeyPatch.context() as mp:  # a shorter recipe than the metric's (240 steps): 16x16 discs are easy
        mp.setattr(segmentation, "SegRecipe", functools.partial(SegRecipe, steps=STEPS))
        for name, sample, kw in (("replay", replay, {"conditional": True}), ("shuffled", shuffled_masks, {}),
                                 ("background", background, {"n_boot": 0})):
            ctx = context(train, test, sample, shared, **kw)
            out[name] = {m: METRICS.get(m).run(ctx) for m in ("seg_dice", "seg_aug_gain")}
    return out, calls, shared


def test_replay_scores_near_the_floor_and_broken_pairs_far_below(seg_data, seg_results):
    out, calls, shared = seg_results
    replay, shuffled, background = (out[k]["seg_dice"] for k in ("replay", "shuffled", "background"))
    floor = replay.floor
    assert floor is not None and floor > 0.85, floor
    assert shuffled.floor == background.floor == floor  # one real U-Net, cached across evaluations
    assert sum("seg:real:" in k for k in shared) == 1
    assert abs(replay.value - floor) < 0.07, (replay.value, floor)
    assert shuffled.value < floor - 0.3 and background.value < floor - 0.3, (shuffled.value, background.value)
    # all-background training predicts nothing: Dice 1 on the empty test images (the convention), 0 on every disc
    d = background.details
    assert d["synthetic_dice_on_lesion_slices"] < 0.05 and d["synthetic_empty_slice_false_positive_rate"] < 0.05
    empty_share = float((seg_data[1].x[:, 1:] <= 0).flatten(1).all(1).double().mean())
    assert background.value == pytest.approx(empty_share, abs=0.03)
    assert abs(out["replay"]["seg_aug_gain"].value) < 0.07  # more of the same data: about no gain
    # the conditional sampler was asked for the real subset's labels, with seed + 1
    n, seed, labels = calls[0]
    assert n == N_TRAIN and seed == 1 and labels is not None and torch.equal(labels, seg_data[0].y[:N_TRAIN])


def test_seg_dice_records_its_protocol_details_and_intervals(seg_data, seg_results):
    out, _, _ = seg_results
    replay = out["replay"]["seg_dice"]
    assert replay.ci is not None and replay.ci.low <= replay.value <= replay.ci.high
    assert "bootstrap-percentile(n=1000" in replay.ci.method
    gain = out["replay"]["seg_aug_gain"]
    assert gain.ci is not None and gain.ci.low <= gain.value <= gain.ci.high and "paired" in gain.ci.method
    assert out["background"]["seg_dice"].ci is None and out["background"]["seg_aug_gain"].ci is None  # n_boot=0
    p = replay.protocol
    assert p["segmenter"] == "unet" and len(p["segmenter_recipe"]) == 12 and p["n_train_per_set"] == N_TRAIN
    assert p["eval_split"] == "test" and p["n_eval"] == N_TEST and "both empty -> 1" in p["dice"]
    assert p["n_generated"] == p["n_reference"] == N_TRAIN and p["metric"] == "seg_dice"
    assert replay.protocol_id == out["shuffled"]["seg_dice"].protocol_id  # same protocol, other generator
    d = replay.details
    for prefix in ("real", "synthetic", "real_plus_synthetic"):
        for key in ("dice", "dice_on_lesion_slices", "empty_slice_false_positive_rate"):
            assert 0.0 <= d[f"{prefix}_{key}"] <= 1.0, (prefix, key)
    assert d["real_dice"] == replay.floor and d["synthetic_dice"] == replay.value
    assert d["synthetic_over_real"] == pytest.approx(replay.value / replay.floor)


def test_seg_metrics_are_skipped_without_masks(seg_data):
    train, test = seg_data
    plain = Dataset("discs-images", train.x[:, :1].clone(), train.y, num_classes=2)
    ctx = context(plain, Dataset("discs-images", test.x[:, :1].clone()), lambda *a: None, {})
    for name in ("seg_dice", "seg_aug_gain"):
        reason = METRICS.get(name).missing(ctx)
        assert reason is not None and "mask" in reason
        assert METRICS.get(name).missing(context(train, test, lambda *a: None, {})) is None
