"""Paired image + mask datasets (ganforge.data.segmentation): the brain phantom's anatomy and determinism, the
.npz and folder loaders' round trips, the patient-grouped split, and every user-facing DataError."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.brain_phantom import PHANTOM_NAMES
from ganforge.data.segmentation import FILE_NAMES, grouped_split
from ganforge.errors import DataError


def load(split: str = "train", **fields):
    return load_dataset(DataConfig(**fields), split)


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


def nonempty(masks: torch.Tensor) -> torch.Tensor:
    """[N, H, W] masks in {-1, 1} -> [N] int64, 1 where any pixel is foreground."""
    return (masks > 0).flatten(1).any(1).long()


# ---------------------------------------------------------------------------------------------------------------
# brain-phantom


@pytest.fixture(scope="module")
def phantom():
    cfg = DataConfig(name="brain-phantom")  # the default-argument dataset: no path, no download
    return load_dataset(cfg, "train"), load_dataset(cfg, "test")


def test_phantom_shapes_labels_and_meta(phantom):
    train, test = phantom
    assert train.x.shape == (2400, 2, 64, 64) and test.x.shape == (600, 2, 64, 64)
    for data in (train, test):
        assert data.mask_channels == 1 and data.image_channels == 1 and data.kind == "image"
        assert data.num_classes == 2 and data.class_names == PHANTOM_NAMES == ("no tumour", "tumour")
        assert data.meta["generator"] == "procedural brain phantom v1" and data.meta["native_size"] == [64, 64]
        masks = data.x[:, 1]
        assert ((masks == -1) | (masks == 1)).all()  # binary, before any resize
        assert torch.equal(data.y, nonempty(masks))  # label 1 <=> the mask has a tumour
        assert abs(data.y.float().mean().item() - 0.5) < 0.05  # about half carry a tumour
        assert data.x[:, 0].min() >= -1 and data.x[:, 0].max() <= 1
        assert data.x[:, 0].std() > 0.3  # a head on a dark background, not a flat image
    assert 0 < train.y[:100].sum() < 100  # shuffled: data.limit keeps both classes


def test_phantom_is_deterministic_in_the_seed_and_splits_are_disjoint(phantom):
    train, test = phantom
    again = load("test", name="brain-phantom")
    assert torch.equal(again.x, test.x) and torch.equal(again.y, test.y)
    other = load("test", name="brain-phantom", seed=1)
    assert not torch.equal(other.x, test.x)
    assert not (rows(train.x[:, 0]) & rows(test.x[:, 0]))  # no slice is in both splits
    assert len(rows(train.x[:, 0])) == len(train)  # and no slice is repeated


def test_phantom_tumours_are_bright_blobs_of_plausible_size(phantom):
    train, _ = phantom
    img, mask = train.x[train.y == 1, 0].numpy(), train.x[train.y == 1, 1].numpy() > 0  # [M, 64, 64]
    brighter, fractions = [], []
    for image, m in zip(img, mask):
        ring = ndimage.binary_dilation(m, iterations=3) & ~m  # brain around the tumour (and maybe some CSF)
        brighter.append(image[m].mean() > image[ring].mean() + 0.15)
        head = ndimage.binary_fill_holes(image > -0.5)
        fractions.append(m.sum() / head.sum())
    assert np.mean(brighter) > 0.97
    assert 0.02 < np.median(fractions) < 0.12 and np.percentile(fractions, 95) < 0.25  # ~3-15% of the brain
    healthy = train.x[train.y == 0, 0]
    assert train.x[train.y == 1, 0][torch.from_numpy(mask)].mean() > healthy[healthy > -0.5].mean() + 0.4


def test_phantom_resizes_with_binary_masks():
    data = load("train", name="brain-phantom", resolution=32, limit=50)
    assert data.x.shape == (50, 2, 32, 32)
    assert ((data.x[:, 1] == -1) | (data.x[:, 1] == 1)).all()


# ---------------------------------------------------------------------------------------------------------------
# seg-npz


def seg_arrays(n_train: int = 12, n_test: int = 6, rgb: bool = False, fg: int = 255) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        shape = (n, 12, 12, 3) if rgb else (n, 12, 12)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        masks = np.zeros((n, 12, 12), np.uint8)
        masks[1::2, 2:6, 3:9] = fg  # odd images have a lesion
        arrays[f"{split}_masks"] = masks
    return arrays


def save(tmp_path: Path, arrays: dict, name: str = "seg.npz") -> str:
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("fg, rgb", [(255, False), (1, True)])
def test_seg_npz_round_trip_derives_labels_from_masks(tmp_path, fg, rgb):
    arrays = seg_arrays(rgb=rgb, fg=fg)
    path = save(tmp_path, arrays)
    for split in ("train", "test"):
        data = load(split, name="seg-npz", path=path)
        c = 3 if rgb else 1
        assert data.x.shape == (len(arrays[f"{split}_images"]), c + 1, 12, 12) and data.mask_channels == 1
        images = torch.from_numpy(arrays[f"{split}_images"]).float() / 127.5 - 1
        torch.testing.assert_close(data.x[:, :c], images.permute(0, 3, 1, 2) if rgb else images[:, None])
        expected = torch.from_numpy(arrays[f"{split}_masks"] != 0).float() * 2 - 1
        assert torch.equal(data.x[:, c], expected)  # {0, 255} and {0, 1} masks alike
        assert torch.equal(data.y, nonempty(data.x[:, c])) and data.y.tolist() == [0, 1] * (len(data) // 2)
        assert data.class_names == FILE_NAMES and data.num_classes == 2 and data.meta["labels"] == "mask non-empty"


def test_seg_npz_uses_the_files_labels_and_class_names(tmp_path):
    arrays = seg_arrays()
    arrays["train_labels"] = np.array([[k % 3] for k in range(12)], np.uint8)  # [N, 1], like MedMNIST
    arrays["test_labels"] = np.zeros(6, np.int64)
    arrays["class_names"] = np.array(["grade II", "grade III", "grade IV"])
    path = save(tmp_path, arrays)
    train, test = load("train", name="seg-npz", path=path), load("test", name="seg-npz", path=path)
    assert train.y.tolist() == [k % 3 for k in range(12)] and test.y.tolist() == [0] * 6
    assert train.class_names == test.class_names == ("grade II", "grade III", "grade IV")
    assert train.num_classes == test.num_classes == 3 and train.meta["labels"] == "file"
    del arrays["class_names"]
    assert load("test", name="seg-npz", path=save(tmp_path, arrays, "plain.npz")).class_names == ("0", "1", "2")


def broken(arrays: dict, **changes) -> dict:
    out = {**arrays, **changes}
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"test_masks": None}, r"missing the key\(s\) test_masks; it has test_images, train_images, train_masks"),
        ({"train_masks": np.zeros((12, 12, 11), np.uint8)}, r"train_images are 12x12 but train_masks are 12x11"),
        ({"train_masks": np.zeros((11, 12, 12), np.uint8)}, r"train_images has 12 images but train_masks has 11"),
        ({"train_masks": np.zeros((12, 12, 12), np.float32)}, r"train_masks has dtype float32; masks must be uint8"),
        ({"train_images": np.zeros((12, 12, 12), np.float32)}, r"train_images has dtype float32; expected uint8"),
        ({"train_masks": np.zeros((12, 12, 12, 2), np.uint8)}, r"train_masks has shape \(12, 12, 12, 2\)"),
        ({"train_labels": np.zeros(12, np.int64)}, r"has train_labels but no test_labels"),
        ({"train_labels": np.zeros(11), "test_labels": np.zeros(6)}, r"12 images but train_labels has 11"),
        ({"class_names": np.array(["a", "b", "c"])}, r"class_names has 3 names, but without train_labels"),
        ({"train_images": np.zeros((0, 12, 12), np.uint8), "train_masks": np.zeros((0, 12, 12), np.uint8)},
         r"train_images is empty"),
    ],
)  # fmt: skip
def test_seg_npz_errors_name_the_file_problem_and_fix(tmp_path, changes, message):
    path = save(tmp_path, broken(seg_arrays(), **changes))
    with pytest.raises(DataError, match=message) as info:
        load("train", name="seg-npz", path=path)
    assert path in str(info.value)


def test_seg_npz_path_errors(tmp_path):
    with pytest.raises(DataError, match=r"needs data.path: --set data.path=/path/to/seg.npz"):
        load(name="seg-npz")
    with pytest.raises(DataError, match=r"nope.npz' does not exist; point it at a segmentation .npz"):
        load(name="seg-npz", path=str(tmp_path / "nope.npz"))
    with pytest.raises(DataError, match=r"is a folder; point it at the .npz file, or use --set data.name=seg-folder"):
        load(name="seg-npz", path=str(tmp_path))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"junk.npz is not a readable .npz file"):
        load(name="seg-npz", path=str(tmp_path / "junk.npz"))
    obj = {**seg_arrays(), "class_names": np.array(["a", None], dtype=object)}
    np.savez(tmp_path / "obj.npz", **obj)
    with pytest.raises(DataError, match=r"class_names must be a 1-D array of strings"):
        load(name="seg-npz", path=str(tmp_path / "obj.npz"))


# ---------------------------------------------------------------------------------------------------------------
# seg-folder

PATIENTS = 6
SLICES = 8


def lgg_folder(root: Path, patients: int = PATIENTS, slices: int = SLICES, size: int = 12) -> Path:
    """kaggle_3m-like tree: <patient>/<patient>_<k>.tif (gray) + <patient>_<k>_mask.tif; pixel [0, 0] encodes
    patient * 32 + slice, so a loaded row tells where it came from. Slices 3..5 of each patient have a tumour."""
    for p in range(patients):
        folder = root / f"TCGA_{p:02d}"
        folder.mkdir(parents=True)
        for k in range(slices):
            image = np.full((size, size), 200, np.uint8)
            image[0, 0] = p * 32 + k
            Image.fromarray(image).save(folder / f"TCGA_{p:02d}_{k}.tif")
            mask = np.zeros((size, size), np.uint8)
            if 3 <= k <= 5:
                mask[4:9, 3:8] = 255
            Image.fromarray(mask).save(folder / f"TCGA_{p:02d}_{k}_mask.tif")
    return root


def origin(data) -> np.ndarray:
    """[N, 2] (patient, slice) of each loaded pair, decoded from pixel [0, 0]."""
    code = ((data.x[:, 0, 0, 0] + 1) * 127.5).round().long().numpy()
    return np.stack([code // 32, code % 32], 1)


def test_seg_folder_split_keeps_each_patient_on_one_side(tmp_path):
    root = lgg_folder(tmp_path / "kaggle_3m")
    cfg = DataConfig(name="seg-folder", path=str(root))
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    train_pat, test_pat = set(origin(train)[:, 0]), set(origin(test)[:, 0])
    assert not (train_pat & test_pat) and train_pat | test_pat == set(range(PATIENTS))
    assert len(train) + len(test) == PATIENTS * SLICES and len(test) == SLICES  # 0.2 * 48 = 9.6: one patient
    assert set(test.y.tolist()) == {0, 1}  # both classes in test
    assert sorted(test.meta["test_folders"]) == [f"TCGA_{p:02d}" for p in sorted(test_pat)]
    assert train.meta["split"] == "grouped by folder" and train.meta["folders"] == PATIENTS
    for data in (train, test):
        assert data.x.shape[1:] == (2, 12, 12) and data.class_names == FILE_NAMES and data.mask_channels == 1
        slices = origin(data)[:, 1]
        assert data.y.tolist() == ((slices >= 3) & (slices <= 5)).astype(int).tolist()
        assert torch.equal(data.y, nonempty(data.x[:, 1]))
    assert torch.equal(load_dataset(cfg, "test").x, test.x)  # deterministic
    moved = [set(origin(load("test", name="seg-folder", path=str(root), seed=s))[:, 0]) for s in range(1, 6)]
    assert any(m != test_pat for m in moved)  # the seed chooses the held-out patients


def test_grouped_split_properties():
    rng = np.random.default_rng(3)
    groups = [f"p{g}" for g in rng.integers(0, 40, size=600)]
    labels = rng.integers(0, 2, size=600)
    for seed in range(3):
        train_idx, test_idx = grouped_split(groups, labels, 0.2, seed)
        assert sorted(np.concatenate([train_idx, test_idx]).tolist()) == list(range(600))
        assert not ({groups[i] for i in train_idx} & {groups[i] for i in test_idx})
        assert abs(len(test_idx) - 120) <= 10 and set(labels[test_idx]) == {0, 1}
    # one class only in few patients: the split still puts some of it in the test side
    rare = np.array([1 if g in ("p1", "p2") else 0 for g in groups])
    _, test_idx = grouped_split(groups, rare, 0.2, 0)
    assert set(rare[test_idx]) == {0, 1}


def test_seg_folder_single_folder_falls_back_to_a_stratified_split(tmp_path):
    root = lgg_folder(tmp_path / "flat", patients=1, slices=20)
    train, test = load("train", name="seg-folder", path=str(root)), load("test", name="seg-folder", path=str(root))
    assert train.meta["split"] == "stratified" and len(test) == 4 and len(train) == 16
    assert not (rows(train.x) & rows(test.x)) and set(test.y.tolist()) == {0, 1}


def test_seg_folder_resolution_channels_and_label_maps(tmp_path):
    root = lgg_folder(tmp_path / "kaggle_3m", patients=2, slices=4, size=12)
    odd = tmp_path / "kaggle_3m" / "TCGA_01"
    Image.fromarray(np.zeros((20, 16), np.uint8)).save(odd / "big.png")  # another size: refused without resolution
    Image.fromarray(np.ones((20, 16), np.uint8)).save(odd / "big_mask.png")  # a 0/1 label map
    with pytest.raises(DataError, match=r"2 different sizes \(.*big.png is 16x20, most are 12x12\).*data.resolution"):
        load(name="seg-folder", path=str(root))
    tiny = np.zeros((12, 12), np.uint8)
    tiny[5, 6] = 255  # a one-pixel lesion: it must survive downsampling 12 -> 4
    for p in root.rglob("TCGA_*_3_mask.tif"):
        Image.fromarray(tiny).save(p)
    for data in [load(s, name="seg-folder", path=str(root), resolution=4, channels=3) for s in ("train", "test")]:
        assert data.x.shape[1:] == (4, 4, 4) and data.mask_channels == 1
        assert ((data.x[:, 3] == -1) | (data.x[:, 3] == 1)).all()
        assert torch.equal(data.y, nonempty(data.x[:, 3]))
    (odd / "big.png").unlink()
    (odd / "big_mask.png").unlink()
    for p in root.rglob("*_mask.tif"):  # all masks as 0/1 label maps: foreground is then anything above 0
        Image.fromarray((np.asarray(Image.open(p)) > 0).astype(np.uint8)).save(p)
    both = [load(s, name="seg-folder", path=str(root), test_fraction=0.5) for s in ("train", "test")]
    assert sum(int(d.y.sum()) for d in both) == 2 and both[0].meta["mask_threshold"] == 0  # slice 3 of each


def test_seg_folder_ignores_images_without_masks(tmp_path):
    root = lgg_folder(tmp_path / "kaggle_3m", patients=2, slices=4)
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(root / "TCGA_00" / "extra.png")
    both = [load(s, name="seg-folder", path=str(root), test_fraction=0.5) for s in ("train", "test")]
    assert sum(len(d) for d in both) == 8 and both[0].meta["pairs"] == 8


def test_seg_folder_errors(tmp_path):
    root = lgg_folder(tmp_path / "kaggle_3m", patients=2, slices=3)
    orphan = root / "TCGA_01" / "TCGA_01_9_mask.tif"
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(orphan)
    with pytest.raises(DataError, match=rf"mask {orphan} has no image: expected .*TCGA_01_9.tif next to it"):
        load(name="seg-folder", path=str(root))
    orphan.unlink()
    corrupt = root / "TCGA_00" / "TCGA_00_1.tif"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match=rf"cannot read image {corrupt}: .*Remove or replace the file"):
        load(name="seg-folder", path=str(root))
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(corrupt, format="TIFF")
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(root / "TCGA_00" / "TCGA_00_1_mask.tif")
    with pytest.raises(DataError, match=r"TCGA_00_1_mask.tif is 10x12 but its image TCGA_00_1.tif is 12x12"):
        load(name="seg-folder", path=str(root))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no masks found in .*empty \(no images\)"):
        load(name="seg-folder", path=str(tmp_path / "empty"))
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(plain / "a.png")
    with pytest.raises(DataError, match=r"\(1 images, none named <name>_mask.<ext>\).*use --set data.name=folder"):
        load(name="seg-folder", path=str(plain))
    with pytest.raises(DataError, match=r"does not exist; point it at a folder"):
        load(name="seg-folder", path=str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"seg-folder needs data.path"):
        load(name="seg-folder")


def test_seg_folder_empty_split_is_an_error(tmp_path):
    root = lgg_folder(tmp_path / "kaggle_3m", patients=2, slices=3)
    cfg = DataConfig(name="seg-folder", path=str(root), test_fraction=0.0)
    assert len(load_dataset(cfg, "train")) == 6
    with pytest.raises(DataError, match=r"the test split of .* is empty .*raise data.test_fraction"):
        load_dataset(cfg, "test")
    with pytest.raises(DataError, match=r"data.test_fraction must be in \[0, 1\)"):
        load_dataset(dataclasses.replace(cfg, test_fraction=1.0), "train")
