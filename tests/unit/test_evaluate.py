"""evaluate_run on tiny data: FID orders an untrained generator far above the real-vs-real floor, a
generator that replays training images sits near the floor but is flagged by the memorisation audit,
eval.json carries protocols and intervals, and the periodic hook writes history lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganforge.data import load_dataset
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics import METRICS
from ganforge.metrics import evaluate as evaluate_module
from ganforge.metrics.baselines import ReplayGenerator
from ganforge.metrics.evaluate import evaluate_run, periodic_eval_hook
from ganforge.presets import load_config
from ganforge.training.checkpoint import atomic_write_text
from ganforge.training.export import export_generator
from ganforge.training.loop import generator_info
from ganforge.training.setup import prepare

MNIST = ("mnist-dcgan", ["data.limit=1000", "train.kimg=1"])  # 1,000 training digits, the real 1,000 test digits
N = 1000


def make_untrained_run(run_dir: Path, preset: str, overrides: list[str]) -> Path:
    """A run directory whose exported generator is freshly initialised (as training exports it)."""
    cfg = load_config(preset, overrides)
    setup = prepare(cfg)
    torch.manual_seed(0)
    G = setup.build_networks()["G"]
    data = setup.train_set
    run_dir.mkdir(parents=True)
    atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    export_generator(run_dir, G.eval(), cfg, generator_info(cfg, setup.family, data, False, 0.0))  # as training does
    return run_dir


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return make_untrained_run(tmp_path_factory.mktemp("eval") / "untrained", *MNIST)


@pytest.fixture(scope="module")
def untrained_result(untrained):
    return evaluate_run(untrained, n=N, metrics=["fid", "kid", "precision", "recall", "memorization", "is"],
                        device="cpu", n_boot=5, log=lambda _: None)


def _copy_run(tmp_path: Path, monkeypatch, conditional: bool = False) -> Path:
    run_dir = make_untrained_run(tmp_path / "copy", *MNIST)  # config + files; sampling is replaced below
    cfg = load_config(*MNIST)
    stub = ReplayGenerator(load_dataset(cfg.data, "train"), cfg, conditional=conditional)
    monkeypatch.setattr(evaluate_module, "load_generator", lambda _: stub)
    return run_dir


def test_untrained_generator_is_far_above_the_real_vs_real_floor(untrained_result):
    fid = untrained_result["fid"]
    assert fid.floor is not None and fid.value > 20 * fid.floor
    assert fid.ci is not None and fid.ci.low < fid.value < fid.ci.high and "bootstrap" in fid.ci.method
    assert untrained_result["precision"].value < 0.05 < 0.5 < untrained_result["precision"].floor
    assert untrained_result["is"].value < 2 < untrained_result["is"].floor  # real test digits: confident, spread
    assert untrained_result["memorization"].flagged is False


def test_eval_json_and_history_record_protocols_and_intervals(untrained, untrained_result):
    data = json.loads((untrained / "eval.json").read_text())
    records = {r["name"]: r for r in data["metrics"]}
    assert list(records) == ["fid", "kid", "precision", "recall", "is", "memorization"]  # registration order
    for rec in records.values():
        assert isinstance(rec["value"], float) and len(rec["protocol_id"]) == 16
        assert {"low", "high", "method"} <= set(rec["ci"])
        p = rec["protocol"]
        assert p["metric"] == rec["name"] and p["extractor"] == "domain" and p["extractor_test_accuracy"] > 0.85
        assert (p["n_generated"], p["n_reference"], p["reference_split"], p["n_floor"]) == (N, 1000, "train", 1000)
        assert {"preprocessing", "seed", "ganforge_version", "extractor_hash"} <= set(p)
    assert records["fid"]["floor"] > 0 and data["extractor"]["name"] == "domain" and data["n_generated"] == N
    history = [json.loads(line) for line in (untrained / "metrics.jsonl").read_text().splitlines()]
    ev = [h for h in history if h.get("type") == "eval"]
    assert ev and ev[-1]["fid"] == pytest.approx(records["fid"]["value"]) and "fid_floor" in ev[-1]
    assert (untrained / "eval" / "closest_pairs.png").is_file()


def test_a_generator_that_replays_training_images_is_near_the_floor_but_flagged(tmp_path, monkeypatch):
    run_dir = _copy_run(tmp_path, monkeypatch)
    result = evaluate_run(run_dir, n=N, metrics=["fid", "memorization", "diversity"], device="cpu", n_boot=0,
                          log=lambda _: None)
    fid, mem = result["fid"], result["memorization"]
    assert fid.value < 2 * fid.floor  # at (or below) the real-vs-real floor: FID alone cannot see copying
    assert mem.flagged is True and mem.value > 0.5 and mem.floor < 0.05
    assert mem.details["pixel_space"]["near_copy_fraction"] > 0.5
    assert result["diversity"].value == pytest.approx(result["diversity"].floor, abs=0.05)
    assert (run_dir / "eval" / "closest_pairs.png").is_file()
    assert (run_dir / "eval" / "closest_pairs_pixel.png").is_file()
    records = {r["name"]: r for r in json.loads((run_dir / "eval.json").read_text())["metrics"]}
    assert records["memorization"]["flagged"] is True


def test_different_extractors_give_different_protocol_ids(tmp_path, monkeypatch, untrained_result):
    run_dir = _copy_run(tmp_path, monkeypatch)
    raw = evaluate_run(run_dir, n=N, metrics=["precision"], extractor="raw", device="cpu", log=lambda _: None)
    domain = untrained_result["precision"]
    assert raw["precision"].protocol["extractor"] == "raw" and domain.protocol["extractor"] == "domain"
    assert raw["precision"].protocol_id != domain.protocol_id
    # Same protocol, other seed: the same id (another draw of the same estimate).
    again = evaluate_run(run_dir, n=N, metrics=["precision"], extractor="raw", seed=1, device="cpu",
                         log=lambda _: None)
    assert again["precision"].protocol_id == raw["precision"].protocol_id and again["precision"].protocol["seed"] == 1
    # Another sample count: another protocol.
    fewer = evaluate_run(run_dir, n=N // 2, metrics=["precision"], extractor="raw", device="cpu", log=lambda _: None)
    assert fewer["precision"].protocol_id != raw["precision"].protocol_id


def test_conditional_copy_generator_scores_like_real_data_on_cas(tmp_path, monkeypatch):
    run_dir = _copy_run(tmp_path, monkeypatch, conditional=True)
    result = evaluate_run(run_dir, n=N, metrics=["cas", "aug_gain", "fid_per_class"], device="cpu", n_boot=3,
                          log=lambda _: None)
    cas = result["cas"]
    assert cas.floor is not None and cas.floor > 0.85 and abs(cas.value - cas.floor) < 0.06
    assert cas.ci is not None and cas.ci.low <= cas.value <= cas.ci.high
    assert cas.protocol["n_train_per_set"] == N and cas.protocol["n_eval"] == 1000
    gain = result["aug_gain"]
    assert gain.ci is not None and gain.ci.low <= gain.value <= gain.ci.high and abs(gain.value) < 0.06
    per_class = result["fid_per_class"]
    assert len(per_class.details["per_class"]) == 10 and per_class.value < 3 * per_class.floor


def test_bad_metric_names_and_inapplicable_metrics_fail_with_the_fix(untrained):
    with pytest.raises(ConfigError, match="Did you mean 'fid'"):
        evaluate_run(untrained, metrics="fidd", log=lambda _: None)
    with pytest.raises(GanforgeError, match="conditional"):
        evaluate_run(untrained, n=100, metrics=["cas"], device="cpu", log=lambda _: None)


def test_points_metrics_for_curves_and_mixtures(tmp_path, monkeypatch):
    sine = make_untrained_run(tmp_path / "sine", "sine", ["train.kimg=1"])
    bad = evaluate_run(sine, n=1000, device="cpu", n_boot=5, log=lambda _: None)
    assert set(bad.values) == {"energy", "mmd", "curve_distance"}
    assert bad["energy"].value > 10 * max(bad["energy"].floor, 1e-3)
    assert bad["energy"].protocol["extractor"] == "raw" and bad["energy"].protocol["reference_split"] == "test"
    cfg = load_config("sine", ["train.kimg=1"])
    copy = ReplayGenerator(load_dataset(cfg.data, "train"), cfg)
    monkeypatch.setattr(evaluate_module, "load_generator", lambda _: copy)
    good = evaluate_run(sine, n=1000, device="cpu", n_boot=5, log=lambda _: None)
    assert good["curve_distance"].value < 1e-3 < bad["curve_distance"].value  # noiseless sine: on the curve
    assert good["energy"].value < bad["energy"].value / 10

    ring = make_untrained_run(tmp_path / "ring", "sine", ["data.name=ring8", "train.kimg=1"])
    rcfg = load_config("sine", ["data.name=ring8", "train.kimg=1"])
    ring_copy = ReplayGenerator(load_dataset(rcfg.data, "train"), rcfg)
    monkeypatch.setattr(evaluate_module, "load_generator", lambda _: ring_copy)
    modes = evaluate_run(ring, n=1000, metrics=["modes_covered", "high_quality"], device="cpu", log=lambda _: None)
    assert modes["modes_covered"].value == 8 and modes["high_quality"].value > 0.95


def test_periodic_hook(tmp_path):
    assert periodic_eval_hook(load_config("sine", ["train.kimg=1"])) is None  # eval.every_ticks = 0
    with pytest.raises(ConfigError, match="Did you mean 'fid'"):
        periodic_eval_hook(load_config("sine", ["train.kimg=1", "eval.every_ticks=1", "eval.metrics=[fidd]"]))
    overrides = ["train.kimg=1", "eval.every_ticks=2", "eval.n=500"]
    run_dir = make_untrained_run(tmp_path / "sine", "sine", overrides)
    hook = periodic_eval_hook(None)  # resuming: the hook reads the run's config.yaml
    assert hook is not None
    for tick in (1, 2, 3, 4):
        hook(tick, run_dir)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in lines] == [2, 4]
    assert all(r["type"] == "eval" and r["source"] == "periodic" for r in lines)
    assert {"energy", "mmd", "curve_distance", "energy_floor"} <= set(lines[0]) and lines[0]["n_generated"] == 500
    assert not (run_dir / "eval.json").exists()  # eval.json is `ganforge evaluate`'s, not the training-time one


def test_every_metric_declares_what_it_applies_to():
    for entry in METRICS:
        assert entry.obj.kinds and set(entry.obj.kinds) <= {"image", "points"} and entry.help


def test_baselines_from_the_command_api_check_the_metrics(untrained):
    """`ganforge evaluate RUN --baseline NAME`: written beside eval.json, never over it."""
    before = (untrained / "eval.json").read_bytes()
    replay = evaluate_run(untrained, n=N, metrics=["fid", "memorization"], baseline="replay", device="cpu", n_boot=0,
                          log=lambda _: None)
    fresh = evaluate_run(untrained, n=N, metrics=["fid"], baseline="untrained", device="cpu", n_boot=0,
                         log=lambda _: None)
    assert replay["fid"].value < 2 * replay["fid"].floor < fresh["fid"].value / 10
    assert replay["memorization"].flagged is True
    assert (untrained / "eval.json").read_bytes() == before
    saved = json.loads((untrained / "eval-baseline-replay.json").read_text())
    assert saved["baseline"] == "replay" and saved["generator_sha256"] == "baseline:replay"
    assert (untrained / "baseline-replay" / "eval" / "closest_pairs.png").is_file()
    with pytest.raises(GanforgeError, match="choose one of: untrained, replay"):
        evaluate_run(untrained, baseline="copy", log=lambda _: None)


def test_full_data_measures_a_limited_run_against_the_whole_training_split(tmp_path, monkeypatch):
    """`--full-data`: a G that replays its 100 training digits sits at the floor of its own run's protocol (the
    reference is those 100 digits) and far above it against all 4,000 (the limited-data protocol)."""
    small = ("mnist-dcgan", ["data.limit=100", "train.kimg=1"])
    run_dir = make_untrained_run(tmp_path / "small", *small)
    cfg = load_config(*small)
    stub = ReplayGenerator(load_dataset(cfg.data, "train"), cfg)
    monkeypatch.setattr(evaluate_module, "load_generator", lambda _: stub)
    own = evaluate_run(run_dir, n=500, metrics=["fid"], device="cpu", n_boot=0, log=lambda _: None)
    own_json = (run_dir / "eval.json").read_bytes()
    full = evaluate_run(run_dir, n=500, metrics=["fid"], device="cpu", n_boot=0, full_data=True, log=lambda _: None)
    assert own["fid"].value < 2 * own["fid"].floor
    assert full["fid"].value > 3 * full["fid"].floor
    assert own["fid"].protocol["n_reference"] == 100 and full["fid"].protocol["n_reference"] > 100
    assert own["fid"].protocol_id != full["fid"].protocol_id
    assert (run_dir / "eval.json").read_bytes() == own_json  # written beside it, never over it
    saved = json.loads((run_dir / "eval-full-data.json").read_text())
    assert saved["full_data"] is True and saved["run_data_limit"] == 100


def test_full_data_refuses_runs_without_a_limit(tmp_path):
    whole = make_untrained_run(tmp_path / "whole", "mnist-dcgan", ["train.kimg=1"])
    with pytest.raises(GanforgeError, match="no data.limit.*Drop --full-data"):
        evaluate_run(whole, full_data=True, device="cpu", log=lambda _: None)
    with pytest.raises(GanforgeError, match="no data.limit.*Drop --full-data"):
        evaluate_run(whole, baseline="replay", full_data=True, device="cpu", log=lambda _: None)


def test_full_data_replay_baseline_replays_what_the_run_saw(tmp_path, monkeypatch):
    """`--full-data --baseline replay`: the score of a G that copies its run's 100 training digits exactly, against
    all 4,000 (the limited-data reference point), written beside the run's own files."""
    small = ("mnist-dcgan", ["data.limit=100", "train.kimg=1"])
    run_dir = make_untrained_run(tmp_path / "small", *small)
    logs: list[str] = []
    base = evaluate_run(run_dir, n=500, metrics=["fid"], baseline="replay", full_data=True, device="cpu", n_boot=0,
                        log=logs.append)
    assert any("500 samples replay 100 images" in m and "recall reads low" in m for m in logs), logs
    cfg = load_config(*small)
    stub = ReplayGenerator(load_dataset(cfg.data, "train"), cfg)  # the 100 digits, as a run's generator
    monkeypatch.setattr(evaluate_module, "load_generator", lambda _: stub)
    copier = evaluate_run(run_dir, n=500, metrics=["fid"], device="cpu", n_boot=0, full_data=True, log=lambda _: None)
    assert base["fid"].value == pytest.approx(copier["fid"].value)  # the subset, not the whole split, replayed
    assert base["fid"].value > 3 * base["fid"].floor
    assert base["fid"].protocol_id == copier["fid"].protocol_id
    saved = json.loads((run_dir / "eval-full-data-baseline-replay.json").read_text())
    assert saved["baseline"] == "replay" and saved["full_data"] is True and saved["run_data_limit"] == 100
    assert not (run_dir / "eval-baseline-replay.json").exists()
