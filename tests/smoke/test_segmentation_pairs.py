"""Paired image + mask data end to end: post-processing keeps masks binary, grids show pairs, every export
format writes the masks and reloads through ganforge's own loaders, and the CLI trains, evaluates (seg_dice)
and reports a brain-phantom run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.errors import GanforgeError
from ganforge.generate import generate_dataset
from ganforge.presets import load_config
from ganforge.training.export import export_generator, load_generator
from ganforge.training.grids import image_grid
from ganforge.variants import VARIANTS
from tests.conftest import run_cli

RES = 16
SMALL = ["model.g_channels=16", "model.d_channels=8", f"data.resolution={RES}"]


def test_post_processing_keeps_masks_binary_and_channels_on_the_image_part():
    data = load_dataset(DataConfig(name="brain-phantom", resolution=RES, channels=3), "train")
    assert data.x.shape[1:] == (4, RES, RES) and data.mask_channels == 1 and data.image_channels == 3
    img, mask = data.x[:, :3], data.x[:, 3]
    assert torch.equal(img[:, 0], img[:, 1]) and torch.equal(img[:, 0], img[:, 2])  # gray -> RGB on the image only
    assert set(mask.unique().tolist()) == {-1.0, 1.0}
    # a resized lesion never vanishes: the label "tumour" still means a non-empty mask
    assert torch.equal((mask > 0).flatten(1).any(1).long(), data.y)


def test_rebinarize_keeps_a_lesion_too_small_to_survive():
    from ganforge.data import rebinarize_masks

    soft = torch.full((2, 1, 4, 4), -1.0)
    soft[0, 0, 1, 2] = -0.5  # the most covered pixel of a vanished lesion
    soft[1, 0, 3, 3] = 0.2  # survives on its own
    out = rebinarize_masks(soft, torch.tensor([[True], [False]]))
    assert out[0, 0, 1, 2] == 1 and (out[0] > 0).sum() == 1
    assert out[1, 0, 3, 3] == 1 and (out[1] > 0).sum() == 1
    assert torch.equal(rebinarize_masks(soft, torch.tensor([[False], [False]]))[0], torch.full((1, 4, 4), -1.0))
    cropped_away = torch.full((1, 1, 4, 4), -1.0)  # the lesion was outside the centre crop: nothing to keep
    assert (rebinarize_masks(cropped_away, torch.tensor([[True]])) == -1).all()


def test_grid_shows_each_image_beside_its_mask():
    x = torch.full((2, 2, 8, 8), -1.0)
    x[:, 1] = 1.0  # black image, all-foreground mask
    grid = np.asarray(image_grid(x, nrow=2, pad=0, scale=1, mask_channels=1))
    assert grid.shape == (8, 2 * (8 + 1 + 8))
    assert (grid[:, :8] == 0).all() and (grid[:, 9:17] == 255).all()  # image | separator | mask
    assert np.asarray(image_grid(x[:, :1], nrow=2, pad=0, scale=1)).shape[1] == 16  # plain images: plain cells


@pytest.fixture(scope="module")
def pair_gen(tmp_path_factory):
    """An exported (untrained) conditional image + mask generator on the phantom at 16x16."""
    cfg = load_config("brain-cwgan-gp", SMALL)
    variant = VARIANTS.get(cfg.variant)
    torch.manual_seed(0)
    shape = (2, RES, RES)
    G = variant.build_generator(cfg.model, shape, 2)
    info = {"shape": list(shape), "num_classes": 2, "class_names": ["no tumour", "tumour"], "kind": "image",
            "mask_channels": 1, **variant.export_info(),
            "variant": cfg.variant, "ema": False, "kimg": 0.0}
    run_dir = tmp_path_factory.mktemp("g") / "brain"
    run_dir.mkdir()
    export_generator(run_dir, G, cfg, info)
    return run_dir


def test_png_pairs_reload_as_seg_folder(pair_gen, tmp_path):
    out = tmp_path / "png"
    generate_dataset(pair_gen, out, per_class=4, seed=3)
    images, masks = sorted(out.glob("??????.png")), sorted(out.glob("*_mask.png"))
    assert len(images) == len(masks) == 8
    x, _ = load_generator(pair_gen).sample(8, seed=3, labels=torch.arange(2).repeat_interleave(4))
    for i, path in enumerate(masks):
        m = np.asarray(Image.open(path))
        assert set(np.unique(m)) <= {0, 255}
        assert np.array_equal(m == 255, (x[i, 1] > 0).numpy())  # the mask is G's mask channel thresholded at 0
    npz = np.load(out / "samples.npz")
    assert npz["masks"].shape == (8, RES, RES) and set(np.unique(npz["masks"])) <= {0, 1}
    back = load_dataset(DataConfig(name="seg-folder", path=str(out), test_fraction=0.25), "train")
    assert back.mask_channels == 1 and back.x.shape[1:] == (2, RES, RES)


def test_seg_npz_is_synthetic_train_and_real_test(pair_gen, tmp_path):
    generate_dataset(pair_gen, tmp_path / "s", per_class=5, seed=0, fmt="seg-npz")
    path = tmp_path / "s" / "synthetic-seg.npz"
    train = load_dataset(DataConfig(name="seg-npz", path=str(path)), "train")
    test = load_dataset(DataConfig(name="seg-npz", path=str(path)), "test")
    real_test = load_dataset(DataConfig(name="brain-phantom", resolution=RES), "test")
    assert len(train) == 10 and train.class_names == ("no tumour", "tumour") and train.mask_channels == 1
    assert len(test) == len(real_test)
    assert torch.equal(test.x[:, 1], real_test.x[:, 1]) and torch.equal(test.y, real_test.y)  # masks exact
    assert (test.x[:, 0] - real_test.x[:, 0]).abs().max() <= 1 / 127.5 + 1e-6  # images: uint8 rounding only
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["format"] == "seg-npz" and manifest["splits"]["test"].startswith("real: 600")


def test_formats_that_cannot_hold_pairs_are_refused(pair_gen, tmp_path):
    with pytest.raises(GanforgeError, match="seg-npz"):
        generate_dataset(pair_gen, tmp_path / "m", per_class=1, fmt="medmnist-npz")
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_cli_trains_evaluates_and_reports_a_paired_run(tmp_path):
    run = tmp_path / "brain"
    r = run_cli("train", "brain-cwgan-gp", *[a for s in SMALL for a in ("--set", s)], "--set", "train.kimg=0.64",
                "--set", "train.tick_kimg=0.32", "--out", str(run))
    assert r.returncode == 0, r.stderr
    spec = json.loads((run / "generator.json").read_text())
    assert spec["mask_channels"] == 1 and spec["shape"] == [2, RES, RES]
    grid = Image.open(run / "samples.png")
    assert grid.width > 2 * grid.height  # two class rows of image | mask pairs
    r = run_cli("evaluate", str(run), "--n", "64", "--metrics", "seg_dice,seg_aug_gain,fid")
    assert r.returncode == 0, r.stderr
    assert "seg_dice: U-Net trained on synthetic pairs" in r.stdout
    metrics = {m["name"]: m for m in json.loads((run / "eval.json").read_text())["metrics"]}
    seg = metrics["seg_dice"]
    assert 0 <= seg["value"] <= 1 and seg["floor"] > 0.5  # a U-Net trained on 64 real pairs finds the tumours
    assert seg["protocol"]["segmenter"] == "unet" and seg["protocol"]["n_train_per_set"] == 64
    r = run_cli("evaluate", str(run), "--n", "64", "--extractor", "inception")
    assert r.returncode != 0 and "mask" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("report", str(run))
    assert r.returncode == 0, r.stderr
