"""The HTML report without a browser: self-contained (every picture a data URI that decodes, no external
URL, no script), every user string escaped, every section present for a conditional image run, a 2D
run and a sweep folder. (tests/smoke/test_report_browser.py opens it in headless Chromium.)"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from ganforge.errors import RunDirError
from ganforge.experiments.runner import start_run
from ganforge.presets import load_config
from ganforge.reporting.html import data_uri_images, write_report

EVIL = '<script>alert("x")</script> & "q"'


def make_run(out: Path, preset: str, overrides: list[str]) -> Path:
    """A tiny real training run in this process, plus a hand-written eval.json and memorisation picture."""
    cfg = load_config(preset, overrides)
    start_run(cfg, str(out), progress=False, log=lambda _: None)
    records = [{"name": "fid", "value": 12.5, "ci": {"low": 11.0, "high": 14.0, "method": "bootstrap"},
                "protocol": {"extractor": "domain", "n_generated": 500, "note": EVIL}, "protocol_id": "abcd1234",
                "floor": 1.25},
               {"name": "<b>odd</b>", "value": 0.5, "ci": None, "protocol": {}, "protocol_id": "ffff", "floor": None}]
    (out / "eval.json").write_text(json.dumps({"metrics": records}))
    (out / "eval").mkdir()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(out / "eval" / "closest_pairs.png")
    return out


def make_cgan_run(out: Path) -> Path:
    return make_run(out, "mnist-cgan", ["train.kimg=0.256", "train.tick_kimg=0.128", "model.g_channels=16",
                                        "model.d_channels=8", f"description={EVIL}"])


@pytest.fixture(scope="module")
def cgan_report(tmp_path_factory):
    run = make_cgan_run(tmp_path_factory.mktemp("report") / "cgan")
    return run, write_report(run).read_text()


def check_self_contained(text: str) -> list[tuple[str, bytes]]:
    images = data_uri_images(text)
    assert len(images) == len(re.findall(r"<img\b", text))  # every <img> is an embedded data URI
    for mime, data in images:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decodes completely
            assert im.format.lower() == mime.split("/")[1] and im.width > 0 and im.height > 0
    attrs = re.findall(r'(?:src|href|action|poster)\s*=\s*"([^"]*)"', text)
    assert all(a.startswith("data:") or a.startswith("#") for a in attrs), [a[:40] for a in attrs]
    assert "url(" not in text and "<script" not in text.lower() and "<link" not in text.lower()
    assert "@import" not in text and "<iframe" not in text.lower()
    return images


def test_run_report_is_self_contained_and_complete(cgan_report):
    run, text = cgan_report
    images = check_self_contained(text)
    assert any(mime == "image/gif" for mime, _ in images)  # the progression animation
    with Image.open(io.BytesIO(next(d for m, d in images if m == "image/gif"))) as gif:
        assert gif.n_frames == 2  # two ticks
    for heading in ("Summary", "Training curves", "Metrics", "Samples over training", "Samples per class",
                    "Real beside synthetic", "Memorisation audit", "Config"):
        assert f">{heading}</h2>" in text, heading
    assert "mean D(x)" in text and "real-vs-real floor" in text and "[11, 14] (bootstrap)" in text
    assert text.count("class ") >= 10  # one row per digit


def test_user_strings_are_escaped(cgan_report):
    _, text = cgan_report
    assert "<script>" not in text and "<b>odd</b>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;q&quot;" in text
    assert "&lt;b&gt;odd&lt;/b&gt;" in text


def test_points_run_and_sweep_folder(tmp_path):
    run = make_run(tmp_path / "sine", "sine", ["train.kimg=0.25", "train.tick_kimg=0.125"])
    text = write_report(run, tmp_path / "sine.html").read_text()
    check_self_contained(text)
    assert "Real beside synthetic" in text and "Samples per class" not in text

    # a sweep folder: plan.json + runs in LABEL/seed-S, as `ganforge sweep` leaves them
    sweep = tmp_path / "sweep"
    plan = {"name": "mini", "description": EVIL, "labels": ["a<i>", "b"], "evaluate": None, "runs": []}
    for label, slug in (("a<i>", "a-i"), ("b", "b")):
        for seed in (0, 1):
            dst = sweep / slug / f"seed-{seed}"
            dst.mkdir(parents=True)
            for name in ("config.yaml", "summary.json", "samples.png", "losses.png", "eval.json"):
                (dst / name).write_bytes((run / name).read_bytes())
            cfg = (dst / "config.yaml").read_text().replace("seed: 0", f"seed: {seed}")
            (dst / "config.yaml").write_text(cfg)
            plan["runs"].append({"label": label, "seed": seed, "run_dir": f"{slug}/seed-{seed}", "overrides": [],
                                 "target_images": 256})
    (sweep / "plan.json").write_text(json.dumps(plan))
    text = write_report(sweep).read_text()
    check_self_contained(text)
    assert "Comparison" in text and "fid" in text and "a&lt;i&gt;" in text and "<i>" not in text
    assert "fid by configuration" in text  # the interval plot
    plan["evaluate"] = {"full_data": "yes please"}  # a hand-edited plan: refused, naming the file
    (sweep / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(RunDirError, match=r"plan.json' is damaged: its 'evaluate'.*true or false"):
        write_report(sweep)


def test_full_data_numbers_get_their_own_section(tmp_path):
    """A data.limit run measured with `evaluate --full-data` shows those numbers, apart from eval.json's."""
    run = make_run(tmp_path / "sine", "sine", ["train.kimg=0.25", "train.tick_kimg=0.125"])
    text = write_report(run, tmp_path / "plain.html").read_text()
    assert "against the whole training split" not in text
    record = {"name": "fid", "value": 6.25, "ci": {"low": 4.5, "high": 8.5, "method": "bootstrap"},
              "protocol": {"n_reference": 4000}, "protocol_id": "full5678", "floor": 1.5}
    (run / "eval-full-data.json").write_text(json.dumps({"metrics": [record]}))
    text = write_report(run, tmp_path / "both.html").read_text()
    full = text[text.index(">Metrics against the whole training split</h2>"):]
    assert "6.25" in full and "[4.5, 8.5] (bootstrap)" in full and "full5678" in full
    assert "12.5" in text[:text.index(">Metrics against the whole training split</h2>")]  # eval.json's, first
    assert "--full-data --baseline replay</code> scores a generator that copies" in full  # how to get the reference
    copier = {**record, "value": 3.75, "protocol_id": "copy5678"}
    (run / "eval-full-data-baseline-replay.json").write_text(json.dumps({"metrics": [copier]}))
    full = write_report(run, tmp_path / "copier.html").read_text()
    full = full[full.index(">Metrics against the whole training split</h2>"):]
    assert full.index("6.25") < full.index("copies the run's") < full.index("3.75") and "copy5678" in full
    (run / "eval.json").unlink()
    text = write_report(run, tmp_path / "full-only.html").read_text()
    assert "not evaluated yet" not in text and "not evaluated against its own training images" in text
    assert "6.25" in text


def test_tensorboard_sink_logs_scalars_or_warns_once_when_absent(tmp_path):
    from ganforge.training.tensorboard import TensorBoardSink

    warnings: list[str] = []
    sink = TensorBoardSink(tmp_path, warn=warnings.append)
    sink.log({"tick": 1, "kimg": 0.5, "loss_D": 0.7, "D_real": float("nan"), "note": "x"}, step=500)
    sink.log({"type": "eval", "fid": 12.0}, step=500)
    sink.close()
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert not sink.active and len(warnings) == 1 and "training continues" in warnings[0]
        assert not (tmp_path / "tensorboard").exists()
    else:
        assert sink.active is False and not warnings  # closed
        assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
