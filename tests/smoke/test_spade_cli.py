"""A mask-to-image run end to end through the CLI: train SPADE (brain-spade, shrunk), then ``generate --masks``
from a folder of label-map PNGs and from an .npz, with the pairs and manifest; and the user errors: one line,
exit code 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ganforge.errors import DataError, GanforgeError
from ganforge.generate import npz_bytes
from ganforge.mask_to_image import generate_from_masks
from ganforge.translate import translate_images
from tests.conftest import run_cli, run_cli_in_process

TINY = [
    "--set",
    "data.resolution=16",
    "--set",
    "data.limit=128",
    "--set",
    "model.g_channels=8",
    "--set",
    "model.d_channels=8",
    "--set",
    "train.kimg=0.1",
    "--set",
    "train.batch_size=16",
    "--no-progress",
]


@pytest.fixture(scope="module")
def spade_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "spade"
    result = run_cli("train", "brain-spade", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    return out


def _maps(tmp_path):
    """Three 16 px label maps (a disc of white matter with a tumour) and a 32 px one (resized by nearest)."""
    yy, xx = np.mgrid[:16, :16]
    disc = ((yy - 8) ** 2 + (xx - 8) ** 2 < 36).astype(np.uint8) * 4
    folder = tmp_path / "maps"
    (folder / "sub").mkdir(parents=True)
    for name, (r, c) in {"a": (6, 6), "b": (9, 9), "sub/c": (7, 10)}.items():
        m = disc.copy()
        m[r : r + 3, c : c + 3] = 5
        Image.fromarray(m).save(folder / f"{name}.png")
    Image.fromarray(np.kron(disc, np.ones((2, 2), np.uint8))).save(folder / "big.png")
    npz = tmp_path / "maps.npz"
    npz.write_bytes(npz_bytes({"masks": np.stack([disc, disc])}))
    return folder, npz


@pytest.mark.slow
def test_generate_masks_writes_an_image_per_map_with_the_map_and_manifest(spade_run, tmp_path):
    folder, npz = _maps(tmp_path)
    out = tmp_path / "g1"
    result = run_cli("generate", str(spade_run), "--masks", str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == [
        "a.png",
        "a_mask.png",
        "b.png",
        "b_mask.png",
        "big.png",
        "big_mask.png",
        "sub/c.png",
        "sub/c_mask.png",
    ]
    arrays = np.load(out / "samples.npz")
    assert arrays["images"].shape == (4, 16, 16, 1) and list(arrays["sources"]) == ["a", "b", "big", "sub/c"]
    assert np.array_equal(np.asarray(Image.open(out / "a_mask.png")), arrays["masks"][0])  # the map it was drawn for
    disc = np.load(npz)["masks"][0]
    assert arrays["masks"].max() == 5 and np.array_equal(arrays["masks"][2], disc)  # 32 px map: nearest to 16
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n"] == 4 and manifest["classes"] == 6 and manifest["label_names"][5] == "tumour"
    assert manifest["generator_run_dir"] == str(spade_run) and len(manifest["content_sha256"]) == 64
    assert manifest["config"] == json.loads((spade_run / "generator.json").read_text())["config"]

    # the same maps and seed: the same bytes; another seed: other images for the same maps (the library call
    # the command makes, without a process start each)
    again = tmp_path / "g2"
    assert run_cli("generate", str(spade_run), "--masks", str(npz), "--out", str(again)).returncode == 0
    generate_from_masks(spade_run, npz, tmp_path / "g3", seed=1)
    generate_from_masks(spade_run, npz, tmp_path / "g4")
    assert (again / "samples.npz").read_bytes() == (tmp_path / "g4" / "samples.npz").read_bytes()
    a, b = np.load(again / "samples.npz")["images"], np.load(tmp_path / "g3" / "samples.npz")["images"]
    assert a.shape == (2, 16, 16, 1) and not np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # the same map with two z's: two images


@pytest.mark.slow
def test_generate_masks_user_errors_exit_2_and_write_nothing(spade_run, tmp_path):
    folder, npz = _maps(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.full((16, 16), 9, np.uint8)).save(bad / "x.png")  # class 9 of 6
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(rgb / "x.png")
    for args, message in [(["--masks", str(bad)], "classes 0..5"), ([], "--masks")]:  # [] : no maps given
        out = tmp_path / "out"
        result = run_cli_in_process("generate", str(spade_run), *args, "--out", str(out))
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not out.exists()
    for masks, message in [(rgb, "one channel of class indices"), (tmp_path / "missing", "does not exist")]:
        with pytest.raises(DataError, match=message):
            generate_from_masks(spade_run, masks, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    with pytest.raises(GanforgeError, match="--masks"):  # translate points a SPADE run to generate --masks
        translate_images(spade_run, folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = run_cli_in_process("generate", str(spade_run), "--masks", str(npz), "--n", "3", "--out",
                                str(tmp_path / "out"))
    assert result.returncode == 2 and "drop --n" in result.stderr and not (tmp_path / "out").exists()
