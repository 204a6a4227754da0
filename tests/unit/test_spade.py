"""SPADE: the normalisation on hand-computed values, the label maps, the generator's dependence on the map and z."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.config import DataConfig
from ganforge.data.brain_labels import BRAIN_LABELS, label_maps, load_brain_labels, one_hot
from ganforge.errors import DataError
from ganforge.models.spade import SPADE, SPADEGenerator


def _centre_tap(conv: torch.nn.Conv2d, weights: dict[tuple[int, int], float], bias: list[float]) -> None:
    """A 3x3 conv that only reads the centre pixel: out[o] = sum_i w[o, i] * in[i] + b[o]."""
    with torch.no_grad():
        conv.weight.zero_()
        for (o, i), w in weights.items():
            conv.weight[o, i, 1, 1] = w
        conv.bias.copy_(torch.tensor(bias))


def test_spade_modulates_the_normalised_map_per_pixel_by_the_mask():
    spade = SPADE(channels=1, label_nc=2, hidden=1)
    _centre_tap(spade.shared[0], {(0, 0): 1.0}, [0.0])  # actv = relu(seg[0])
    _centre_tap(spade.gamma, {(0, 0): 2.0}, [0.5])  # gamma = 2 * seg[0] + 0.5
    _centre_tap(spade.beta, {(0, 0): -1.0}, [0.25])  # beta = -seg[0] + 0.25
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # mean 2.5, biased variance 1.25
    seg0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    seg = torch.stack([seg0, 1 - seg0])[None]  # [1, 2, 2, 2]
    # By hand: norm = (x - 2.5) / sqrt(1.25 + 1e-5) = [-1.341635, -0.447212, 0.447212, 1.341635] (row-major);
    # out = norm * (1 + gamma) + beta with gamma = [2.5, 0.5, 0.5, 2.5], beta = [-0.75, 0.25, 0.25, -0.75].
    expected = torch.tensor(
        [[-1.341635 * 3.5 - 0.75, -0.447212 * 1.5 + 0.25], [0.447212 * 1.5 + 0.25, 1.341635 * 3.5 - 0.75]]
    )
    assert torch.allclose(spade(x, seg)[0, 0], expected, atol=1e-5)
    assert math.isclose(float(spade(x, seg).detach()[0, 0, 0, 0]), -5.445722, abs_tol=1e-5)

    # A map of another size is resized by nearest neighbour (no blended classes): each 2x2 block -> one pixel.
    big = seg.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # [1, 2, 4, 4]
    assert torch.allclose(spade(x, big), spade(x, seg), atol=1e-6)


def test_label_maps_take_the_most_occupied_tissue_background_and_tumour_last():
    occ = np.array([[[0.9, 0.1, 0.45, 0.0]], [[0.05, 0.8, 0.5, 0.1]]], np.float32)[:, None]  # [T=2, N=1, 1, 4]
    tumour = np.array([[[False, False, False, True]]])
    # pixel 0: tissue 0 (label 1); pixel 1: tissue 1 (2); pixel 2: tissue 1 by a hair (2) although background
    # is 0.05; pixel 3: background 0.9 but the tumour mask wins (label T + 1 = 3).
    assert label_maps(occ, tumour).tolist() == [[[1, 2, 2, 3]]]
    assert label_maps(occ, np.zeros_like(tumour))[0, 0, 3] == 0  # without the mask: background


def test_one_hot_is_plus_one_on_the_class_and_minus_one_elsewhere():
    x = one_hot(torch.tensor([[[0, 2], [1, 2]]]), 3)
    assert x.shape == (1, 3, 2, 2) and x.dtype == torch.float32
    assert x[0, :, 0, 1].tolist() == [-1.0, -1.0, 1.0]
    assert torch.equal(x.argmax(1), torch.tensor([[[0, 2], [1, 2]]]))


def test_brain_labels_are_one_hot_maps_of_every_tissue_paired_with_the_slice():
    data = load_brain_labels(DataConfig(name="brain-labels", resolution=32), "test")
    assert data.shape == (len(BRAIN_LABELS), 32, 32) and data.shape_b == (1, 32, 32) and data.paired
    assert torch.equal((data.x > 0).sum(1), torch.ones(len(data), 32, 32, dtype=torch.long))  # one class per pixel
    counts = torch.bincount(data.x.argmax(1).flatten(), minlength=len(BRAIN_LABELS))
    assert (counts > 0).all(), counts  # every tissue appears
    labels = data.x.argmax(1)
    img = data.x_b[:, 0]
    # the FLAIR-like image agrees with the map: tumour brighter than white matter, background darkest
    tumour, wm, bg = (img[labels == k].mean() for k in (5, 4, 0))
    assert tumour > wm > bg
    # the tumour channel is where the slice has a tumour (label 1), and nowhere on the others
    has = (labels == 5).flatten(1).any(1)
    assert torch.equal(has, data.y.bool())
    with pytest.raises(DataError, match="data.domains"):
        load_brain_labels(DataConfig(name="brain-labels", domains=("t1", "ct")), "test")


def test_spade_generator_follows_the_map_and_z():
    torch.manual_seed(0)
    G = SPADEGenerator(label_nc=3, out_ch=1, side=16, ngf=8, z_dim=4).eval()
    seg = one_hot(torch.randint(0, 3, (2, 16, 16)), 3)
    x = G(seg)
    assert x.shape == (2, 1, 16, 16) and x.abs().max() <= 1
    assert torch.equal(x, G(seg))  # z = None is z = 0: deterministic
    assert torch.equal(x, G(seg, torch.zeros(2, 4)))
    assert not torch.allclose(x, G(seg, torch.randn(2, 4)))  # z changes the image
    assert not torch.allclose(x[0], x[1])  # so does the map
