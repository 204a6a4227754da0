"""An image-to-image run end to end through the CLI: train pix2pix, translate a folder and an .npz (with the
manifest), evaluate (translation metrics and a baseline in eval.json), report; and the user errors: one line,
exit code 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ganforge.generate import npz_bytes
from tests.conftest import run_cli, run_cli_in_process

TINY = [
    "--set",
    "data.name=mnist-styles",
    "--set",
    "data.domains=[mnist,inverted]",
    "--set",
    "data.resolution=16",
    "--set",
    "data.limit=256",
    "--set",
    "model.g_channels=8",
    "--set",
    "model.d_channels=8",
    "--set",
    "train.kimg=0.5",
    "--set",
    "train.batch_size=16",
    "--no-progress",
]


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "p2p"
    result = run_cli("train", "brain-pix2pix", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    assert "ganforge translate" in result.stdout  # the next step it suggests
    return out


def _inputs(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("a", "b", "sub/c"):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{name}.png")  # resized to 16
    npz = tmp_path / "in.npz"
    npz.write_bytes(npz_bytes({"images": rng.integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)}))
    return folder, npz


@pytest.mark.slow
def test_translate_writes_images_npz_and_manifest(pix2pix_run, tmp_path):
    folder, npz = _inputs(tmp_path)
    out = tmp_path / "t1"
    result = run_cli("translate", str(pix2pix_run), "--input", str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "b.png", "sub/c.png"]
    arrays = np.load(out / "translated.npz")
    assert arrays["images"].shape == (3, 16, 16, 1) and list(arrays["sources"]) == ["a", "b", "sub/c"]
    manifest = json.loads((out / "manifest.json").read_text())
    gen_spec = json.loads((pix2pix_run / "generator.json").read_text())
    assert manifest["direction"] == "AtoB" and manifest["source_domain"] == "mnist"
    assert manifest["target_domain"] == "inverted" and manifest["n"] == 3 and manifest["variant"] == "pix2pix"
    assert manifest["generator_run_dir"] == str(pix2pix_run) and len(manifest["content_sha256"]) == 64
    assert manifest["config"] == gen_spec["config"]
    again = tmp_path / "t2"
    assert run_cli("translate", str(pix2pix_run), "--input", str(npz), "--out", str(again)).returncode == 0
    assert (again / "000004.png").is_file() and json.loads((again / "manifest.json").read_text())["n"] == 5
    # same input, same translator: the same files byte for byte
    third = tmp_path / "t3"
    run_cli("translate", str(pix2pix_run), "--input", str(npz), "--out", str(third))
    assert (third / "translated.npz").read_bytes() == (again / "translated.npz").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--direction", "BtoA"], "translates AtoB only"),
        (["--input", "missing-folder"], "does not exist"),
    ],
)
def test_translate_user_errors(pix2pix_run, tmp_path, args, message):
    folder, _ = _inputs(tmp_path)
    out = tmp_path / "t"
    full = ["translate", str(pix2pix_run), "--out", str(out)]
    full += args if "--input" in args else ["--input", str(folder), *args]
    result = run_cli_in_process(*full)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.slow
def test_generate_refuses_a_translation_run(pix2pix_run, tmp_path):
    result = run_cli("generate", str(pix2pix_run), "--out", str(tmp_path / "g"))
    assert result.returncode == 2 and "ganforge translate" in result.stderr and not (tmp_path / "g").exists()


@pytest.mark.slow
def test_unpaired_data_for_pix2pix_is_one_clear_error(tmp_path):
    for sub in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / "d" / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "d" / sub / "0.png")
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "brain-pix2pix",
        "--out",
        str(out),
        "--set",
        "data.name=two-domain-folder",
        "--set",
        f"data.path={tmp_path / 'd'}",
        "--set",
        "data.resolution=16",
        "--set",
        "data.domains=null",
    )
    assert result.returncode == 2 and "needs paired data" in result.stderr and "variant=cyclegan" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.slow
def test_evaluate_and_report_a_translation_run(pix2pix_run):
    result = run_cli("evaluate", str(pix2pix_run), "--n", "100")
    assert result.returncode == 0, result.stderr
    records = {m["name"]: m for m in json.loads((pix2pix_run / "eval.json").read_text())["metrics"]}
    assert {"fid", "kid", "ssim", "psnr", "mae", "label_accuracy"} <= set(records)
    assert "cycle_error" not in records  # one-way translator
    assert 0 <= records["ssim"]["value"] <= 1 and records["psnr"]["value"] > 0
    assert records["label_accuracy"]["floor"] > 0.5  # the target-domain classifier reads real inverted digits
    assert (pix2pix_run / "eval" / "translations.png").is_file()
    base = run_cli("evaluate", str(pix2pix_run), "--n", "100", "--baseline", "identity")
    assert base.returncode == 0, base.stderr
    identity = {m["name"]: m for m in json.loads((pix2pix_run / "eval-baseline-identity.json").read_text())["metrics"]}
    assert identity["mae"]["value"] > 0.3  # mnist vs its inverse: most pixels differ by ~1
    assert identity["mae"]["protocol_id"] == records["mae"]["protocol_id"]  # comparable: the same protocol
    report = run_cli("report", str(pix2pix_run))
    assert report.returncode == 0, report.stderr
    html = (pix2pix_run / "report.html").read_text()
    assert "translations" in html and "ssim" in html
