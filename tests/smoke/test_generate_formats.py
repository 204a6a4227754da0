"""Synthetic datasets: every format reloads (numpy, Pillow, ganforge's own loaders), same seed -> same
bytes, per-class counts, provenance manifest, and the refusals (unconditional + --label, non-empty --out)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import load_dataset
from ganforge.errors import GanforgeError, RunDirError
from ganforge.generate import generate_dataset
from ganforge.presets import load_config
from ganforge.training.export import export_generator
from ganforge.variants import VARIANTS
from tests.conftest import run_cli

SMALL = ["model.g_channels=16", "model.d_channels=8", "train.kimg=1"]


def _export(run_dir, preset, overrides, shape, num_classes, kind="image"):
    """An exported (untrained) generator: formats and determinism do not need a trained one."""
    cfg = load_config(preset, overrides)
    variant = VARIANTS.get(cfg.variant)
    torch.manual_seed(0)
    G = variant.build_generator(cfg.model, shape, num_classes)
    info = {"shape": list(shape), "num_classes": num_classes, "class_names": [str(k) for k in range(num_classes)],
            "kind": kind, **variant.export_info(),
            "variant": cfg.variant, "ema": False, "kimg": 0.0}
    run_dir.mkdir(parents=True)
    export_generator(run_dir, G, cfg, info)
    return run_dir


@pytest.fixture(scope="module")
def cgan(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("g") / "cgan", "mnist-cgan", SMALL, (1, 28, 28), 10)


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("g") / "dcgan", "mnist-dcgan", SMALL, (1, 28, 28), 10)


def _data_files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@pytest.mark.parametrize("fmt", ["png", "npz", "imagefolder", "medmnist-npz"])
def test_same_seed_same_bytes_and_manifest(cgan, tmp_path, fmt):
    a = generate_dataset(cgan, tmp_path / "a", per_class=2, seed=5, fmt=fmt)
    generate_dataset(cgan, tmp_path / "b", per_class=2, seed=5, fmt=fmt)
    c = generate_dataset(cgan, tmp_path / "c", per_class=2, seed=6, fmt=fmt)
    fa, fb = _data_files(tmp_path / "a"), _data_files(tmp_path / "b")
    assert fa and fa == fb  # byte for byte
    assert _data_files(tmp_path / "c") != fa
    ma, mb = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in "ab")
    assert ma.pop("created") and mb.pop("created")
    assert ma == mb and a.manifest["content_sha256"] != c.manifest["content_sha256"]
    assert ma["format"] == fmt and ma["seed"] == 5 and ma["n"] == 20 and ma["truncation"] is None
    assert ma["counts_per_class"] == {str(k): 2 for k in range(10)} and ma["ema"] is False
    assert len(ma["generator_sha256"]) == 64 and ma["config"]["variant"] == "cgan" and ma["ganforge_version"]


def test_every_format_reloads_with_the_same_pixels_and_labels(cgan, tmp_path):
    for fmt in ("png", "npz", "imagefolder", "medmnist-npz"):
        generate_dataset(cgan, tmp_path / fmt, per_class=3, seed=1, fmt=fmt)
    ref = np.load(tmp_path / "npz" / "samples.npz")
    images, labels = ref["images"], ref["labels"]  # [30, 28, 28, 1] uint8, [30]
    assert images.shape == (30, 28, 28, 1) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [3] * 10 and list(ref["class_names"]) == [str(k) for k in range(10)]

    assert np.array_equal(np.load(tmp_path / "png" / "samples.npz")["images"], images)  # PNGs plus one .npz
    rows = list(csv.DictReader(open(tmp_path / "png" / "labels.csv")))
    assert len(rows) == 30
    for i, row in enumerate(rows):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "png" / row["file"])), images[i, :, :, 0])
        assert int(row["label"]) == labels[i]

    # medmnist-npz through ganforge's medmnist loader: synthetic train split, real test split.
    cfg = load_config("mnist-dcgan", ["data.name=medmnist", f"data.path={tmp_path / 'medmnist-npz' / 'synthetic.npz'}"])
    train = load_dataset(cfg.data, "train")
    assert torch.equal(train.y, torch.from_numpy(labels)) and train.num_classes == 10
    assert np.array_equal(((train.x + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy(), images)
    assert len(load_dataset(cfg.data, "test")) == 1000  # the real mnist5k test digits

    # imagefolder through ganforge's folder loader (class folders -> labels); no train/test split folders.
    cfg = load_config("mnist-dcgan", ["data.name=folder", f"data.path={tmp_path / 'imagefolder'}",
                                      "data.test_fraction=0.5"])
    both = [load_dataset(cfg.data, s) for s in ("train", "test")]
    assert sum(len(d) for d in both) == 30 and both[0].class_names == tuple(str(k) for k in range(10))
    got = sorted(torch.cat([d.y for d in both]).tolist())
    assert got == sorted(labels.tolist())


def test_imagefolder_loads_in_torchvision(cgan, tmp_path):
    datasets = pytest.importorskip("torchvision.datasets")
    generate_dataset(cgan, tmp_path / "f", per_class=2, fmt="imagefolder")
    ds = datasets.ImageFolder(str(tmp_path / "f"))
    assert len(ds) == 20 and ds.classes == [str(k) for k in range(10)]
    assert sorted(ds.targets) == sorted(list(range(10)) * 2)


def test_label_and_balanced_defaults(cgan, tmp_path):
    one = generate_dataset(cgan, tmp_path / "seven", n=12, label=7, fmt="npz")
    assert one.counts["7"] == 12 and sum(one.counts.values()) == 12
    assert set(np.load(tmp_path / "seven" / "samples.npz")["labels"].tolist()) == {7}
    balanced = generate_dataset(cgan, tmp_path / "bal", n=25, fmt="npz")
    assert sorted(balanced.counts.values()) == [2] * 5 + [3] * 5


def test_refusals(cgan, dcgan, tmp_path):
    with pytest.raises(GanforgeError, match="unconditional"):
        generate_dataset(dcgan, tmp_path / "x", n=4, label=1)
    with pytest.raises(GanforgeError, match="unconditional"):
        generate_dataset(dcgan, tmp_path / "x", n=4, fmt="imagefolder")
    with pytest.raises(GanforgeError, match="not a class"):
        generate_dataset(cgan, tmp_path / "x", n=4, label=10)
    with pytest.raises(GanforgeError, match="not both"):
        generate_dataset(cgan, tmp_path / "x", label=1, per_class=2)
    assert not (tmp_path / "x").exists()  # nothing written by a refusal
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty"):
        generate_dataset(cgan, busy, n=4)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    plain = generate_dataset(dcgan, tmp_path / "plain", n=6)  # unconditional: flat PNGs, no labels
    assert plain.format == "png" and plain.counts == {}
    assert sorted(p.name for p in (tmp_path / "plain").iterdir())[:2] == ["000000.png", "000001.png"]


def test_cli_generate(cgan, tmp_path):
    out = tmp_path / "cli"
    result = run_cli("generate", str(cgan), "--per-class", "2", "--format", "imagefolder", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 20 samples (imagefolder)" in result.stdout and (out / "manifest.json").is_file()
    again = run_cli("generate", str(cgan), "--n", "3", "--label", "2", "--per-class", "1", "--out", str(tmp_path / "y"))
    assert again.returncode == 2 and "not both" in again.stderr and "Traceback" not in again.stderr
