"""NVIDIA's real TorchScript networks, when a copy is named: GANFORGE_INCEPTION_WEIGHTS=.../inception-2015-12-05.pt,
GANFORGE_VGG16_WEIGHTS=.../vgg16.pt (``ganforge weights fetch inception|vgg16``, then point the variables at the
files). Skipped otherwise: the test machines have no network. Checks the published interface (shapes, the
class head, probabilities) and properties any correct copy has; the stand-in tests cover ganforge's code paths.
No reference *value* is stored here: none was computed with the real files when this was written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data.base import Dataset
from ganforge.metrics.extractors import build_extractor
from ganforge.metrics.lpips import load_lpips, lpips_paired

INCEPTION = os.environ.get("GANFORGE_INCEPTION_WEIGHTS")
VGG16 = os.environ.get("GANFORGE_VGG16_WEIGHTS")


def _photos(n: int, side: int = 64) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 127.5 - 1  # [3, 512, 512] in [-1, 1]
    return torch.stack([img[:, 40 * k : 40 * k + side, 50 + 30 * k : 50 + 30 * k + side] for k in range(n)])


@pytest.mark.skipif(not INCEPTION, reason="set GANFORGE_INCEPTION_WEIGHTS to NVIDIA's inception-2015-12-05.pt")
@pytest.mark.parametrize("mode", ["legacy_tensorflow", "clean"])
def test_real_inception_interface_and_features(mode):
    net = torch.jit.load(str(Path(INCEPTION)))
    assert tuple(net.output.weight.shape) == (1008, 2048)
    probs = net(torch.full((2, 3, 64, 64), 128.0), no_output_bias=True)
    assert probs.shape == (2, 1008) and torch.allclose(probs.sum(1), torch.ones(2), atol=1e-4)
    x = _photos(4)
    ex = build_extractor(f"inception:{mode}", Dataset("photos", x), device="cpu")
    feats, logits = ex.features_and_logits(x)
    assert feats.shape == (4, 2048) and logits.shape == (4, 1008)
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # pool3 follows ReLUs and average pooling
    assert np.linalg.matrix_rank(feats.numpy()) == 4  # different photos, different features


@pytest.mark.skipif(not VGG16, reason="set GANFORGE_VGG16_WEIGHTS to NVIDIA's vgg16.pt")
def test_real_vgg16_lpips():
    net = load_lpips(VGG16)
    x = _photos(4)
    assert lpips_paired(net, x, x).mean == pytest.approx(0.0, abs=1e-8)
    d = lpips_paired(net, x[:2], x[2:])
    assert 0.05 < d.mean < 1.5  # LPIPS of unrelated natural patches lies well inside (0, 1.5)
