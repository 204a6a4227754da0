"""Two-domain datasets: the same anatomy in every contrast, restyled digits, user folders (paired and unpaired) and
the errors for folders that are neither."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.brain_phantom import FLAIR, brain_phantom, brain_phantom_contrasts
from ganforge.data.two_domain import CONTRASTS, restyle
from ganforge.errors import DataError


def test_phantom_contrasts_share_the_anatomy_and_flair_is_unchanged():
    images, masks, labels = brain_phantom_contrasts(0, "test", (FLAIR, CONTRASTS["t1"], CONTRASTS["ct"]))
    flair, ref_masks, ref_labels = brain_phantom(0, "test")
    assert np.array_equal(images[0], flair)  # the original dataset's pixels, bit for bit
    assert np.array_equal(masks, ref_masks) and np.array_equal(labels, ref_labels)
    t1, ct = images[1], images[2]
    assert not np.allclose(t1, flair) and not np.allclose(ct, t1)
    head = flair > 0.05  # the same head outline (background stays dark) in every contrast
    for other in (t1, ct):
        assert ((other > 0.05) == head).mean() > 0.97
    tumour = masks  # T1: the tumour darker than the brain around it; CT: the skull the brightest ring
    assert t1[tumour].mean() < flair[tumour].mean()


def test_brain_contrasts_dataset_is_paired_with_masks_on_domain_a():
    data = load_dataset(DataConfig(name="brain-contrasts", domains=("flair", "t2"), resolution=32, limit=12), "train")
    assert data.paired and data.domains == ("flair", "t2") and data.mask_channels == 1
    assert data.x.shape == (12, 2, 32, 32) and data.x_b.shape == (12, 1, 32, 32)
    assert torch.equal(data.y, data.y_b)
    with pytest.raises(DataError, match="data.domains"):
        load_dataset(DataConfig(name="brain-contrasts", domains=("t1", "t1")), "train")


def test_restyled_digits():
    x = torch.tensor([[[[-1.0, -1.0, 1.0, 1.0]] * 4]])  # [1, 1, 4, 4]: a vertical edge
    assert torch.equal(restyle(x, "inverted", 0), -x)
    edges = restyle(x, "edges", 0)
    assert edges[0, 0, 1, 1] > 0 and edges[0, 0, 1, 2] > 0  # along the step
    assert edges.min() >= -1 and edges.max() <= 1
    with pytest.raises(DataError, match="unknown style"):
        restyle(x, "sepia", 0)


def _write(folder, name, pixels):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / name)


def test_paired_folder_pairs_by_name(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(10):
        a = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        _write(tmp_path / "A", f"img{i}.png", a)
        _write(tmp_path / "B", f"img{i}.png", 255 - a)  # B is A inverted: pairs must line up row by row
    cfg = DataConfig(name="two-domain-folder", path=str(tmp_path), test_fraction=0.3)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert train.paired and len(train) == 7 and len(test) == 3
    assert torch.allclose(train.x_b, -train.x, atol=1e-6) and torch.allclose(test.x_b, -test.x, atol=1e-6)
    (tmp_path / "B" / "img3.png").unlink()
    with pytest.raises(DataError, match="B/img3.png is missing"):
        load_dataset(cfg, "train")


def test_unpaired_folders_and_a_folder_of_neither_layout(tmp_path):
    rng = np.random.default_rng(1)
    for sub, n in (("trainA", 5), ("trainB", 3), ("testA", 2), ("testB", 2)):
        for i in range(n):
            _write(tmp_path / "u" / sub, f"{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    data = load_dataset(DataConfig(name="two-domain-folder", path=str(tmp_path / "u")), "train")
    assert not data.paired and len(data.x) == 5 and len(data.x_b) == 3 and data.shape_b == (3, 8, 8)
    _write(tmp_path / "flat", "0.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="trainA/ trainB/"):
        load_dataset(DataConfig(name="two-domain-folder", path=str(tmp_path / "flat")), "train")
    with pytest.raises(DataError, match="data.classes"):
        load_dataset(DataConfig(name="two-domain-folder", path=str(tmp_path / "u"), classes=(0,)), "train")
