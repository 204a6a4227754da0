"""Adaptive discriminator augmentation: the p update rule of Karras et al. 2020 (section 3) and the pipeline."""

from __future__ import annotations

import pytest
import torch

from ganforge.objectives.ada import AdaptiveAugment, AdaptiveProbability, ada_adjust


def test_p_moves_by_images_over_ada_kimg_towards_the_target():
    p = torch.tensor(0.3)
    step = 256 / (500 * 1000)  # 4 batches of 64 images, p crossing [0, 1] in 500 kimg
    assert ada_adjust(p, torch.tensor(0.8), 0.6, 256, 500).item() == pytest.approx(0.3 + step)  # overfitting: up
    assert ada_adjust(p, torch.tensor(0.1), 0.6, 256, 500).item() == pytest.approx(0.3 - step)  # fine: down
    assert ada_adjust(p, torch.tensor(0.6), 0.6, 256, 500).item() == pytest.approx(0.3)  # on target: stays
    assert ada_adjust(torch.tensor(0.0), torch.tensor(-1.0), 0.6, 256, 500).item() == 0.0  # clipped at 0
    assert ada_adjust(torch.tensor(0.9999), torch.tensor(1.0), 0.6, 256, 1).item() == 1.0  # and at 1


def test_p_updates_every_interval_steps_from_the_sign_of_d_on_reals():
    aug = AdaptiveAugment(target=0.6, interval=4, ada_kimg=1.0, batch=10)
    confident = torch.tensor([3.0] * 9 + [-1.0])  # r_t = (9 - 1) / 10 = 0.8 > 0.6
    for _ in range(3):
        aug.accumulate(confident)
        assert aug.p.item() == 0.0  # nothing until the 4th D step
    aug.accumulate(confident)
    assert aug.p.item() == pytest.approx(40 / 1000)  # 4 steps x 10 images, p crosses [0, 1] in 1 kimg
    assert aug.r_t.item() == pytest.approx(0.8)
    unsure = torch.tensor([1.0] * 5 + [-1.0] * 5)  # r_t = 0 < 0.6
    for _ in range(4):
        aug.accumulate(unsure)
    assert aug.p.item() == pytest.approx(0.0, abs=1e-7) and aug.r_t.item() == 0.0
    fixed = AdaptiveAugment(p=0.25, adaptive=False)
    for _ in range(8):
        fixed.accumulate(confident)
    assert fixed.p.item() == 0.25


def test_the_state_is_in_the_state_dict():
    aug = AdaptiveAugment(interval=1, ada_kimg=1.0, batch=100)
    aug.accumulate(torch.ones(100))
    state = aug.state_dict()
    assert set(state) == {"p", "sign_sum", "sign_count", "steps", "r_t"} and state["p"].item() == pytest.approx(0.1)
    other = AdaptiveAugment()
    other.load_state_dict(state)
    assert other.p.item() == pytest.approx(0.1) and other.steps.item() == 1


def test_p_zero_is_the_identity_and_p_one_transforms_every_image():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    aug = AdaptiveAugment()
    assert torch.allclose(aug(x), x, atol=1e-5)
    aug.p.fill_(1.0)
    y = aug(x)
    assert y.shape == x.shape
    assert ((y - x).abs().flatten(1).amax(1) > 0.05).all()


def test_masks_move_with_the_image_and_keep_their_colour():
    torch.manual_seed(0)
    img = torch.zeros(8, 1, 16, 16)
    img[:, :, 4:8, 4:8] = 1.0
    mask = img * 2 - 1  # the mask covers exactly the bright square
    aug = AdaptiveAugment(p=1.0)
    y = aug(torch.cat([img, mask], 1), mask_channels=1)
    moved_mask = y[:, 1]
    assert moved_mask.min() >= -1 - 1e-5 and moved_mask.max() <= 1 + 1e-5  # no brightness/contrast on the mask
    # geometry is shared: the brightest pixels of each image lie inside its mask
    for n in range(8):
        peak = y[n, 0].flatten().argmax()
        assert moved_mask[n].flatten()[peak] > 0


def test_the_pipeline_is_differentiable_and_draws_the_same_randomness_whatever_p():
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    aug = AdaptiveAugment(p=0.5)
    aug(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    torch.manual_seed(1)
    AdaptiveAugment(p=0.0)(x)
    after_zero = torch.rand(1)
    torch.manual_seed(1)
    AdaptiveAugment(p=0.9)(x)
    assert torch.equal(torch.rand(1), after_zero)  # exact resume does not depend on p's value


def test_r_t_counts_logits_against_the_loss_threshold():
    """Least squares scores real as 1 and fake as 0: a real logit of 0.3 is on the fake side of its boundary 0.5."""
    ls = AdaptiveProbability(target=0.6, interval=1, ada_kimg=1.0, batch=4, threshold=0.5)
    ls.accumulate(torch.tensor([0.3, 0.3, 0.3, 0.9]))
    assert ls.r_t.item() == pytest.approx(-0.5) and ls.p.item() == 0.0
    hinge = AdaptiveProbability(target=0.6, interval=1, ada_kimg=1.0, batch=4)  # boundary 0
    hinge.accumulate(torch.tensor([0.3, 0.3, 0.3, 0.9]))
    assert hinge.r_t.item() == pytest.approx(1.0) and hinge.p.item() == pytest.approx(0.004)
