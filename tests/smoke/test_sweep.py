"""Sweeps end to end on CPU: 2 configurations x 2 seeds in 2 parallel processes, the table, a rerun that
retrains only the run that lost its results, and sweep files that fail before anything runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ganforge.errors import ConfigError
from ganforge.experiments.execute import _eval_cmd
from ganforge.experiments.sweep import load_sweep
from tests.conftest import REPO, run_cli

TINY = """
name: tiny
base: sine
set: {train.kimg: 0.5, train.tick_kimg: 0.25}
seeds: [0, 1]
list:
  - {label: plain}
  - {label: wide, model.g_hidden: [32, 32]}
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "tiny.yaml").write_text(TINY)
    out = root / "out"
    result = run_cli("sweep", str(root / "tiny.yaml"), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    return root, out, result


def test_sweep_runs_every_config_and_seed_and_writes_the_table(swept):
    _, out, result = swept
    for label in ("plain", "wide"):
        for seed in (0, 1):
            run = out / label / f"seed-{seed}"
            summary = json.loads((run / "summary.json").read_text())
            assert summary["images_seen"] >= 500
            assert f"seed: {seed}" in (run / "config.yaml").read_text()
    wide_cfg = (out / "wide" / "seed-0" / "config.yaml").read_text()
    assert "- 32\n  - 32" in wide_cfg or "[32, 32]" in wide_cfg
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [r["configuration"] for r in rows] == ["plain", "wide"]
    assert all(r["seeds"] == "0 1" and r["final_loss_D_n"] == "2" for r in rows)
    assert float(rows[0]["final_loss_D_ci_low"]) <= float(rows[0]["final_loss_D_mean"])
    md = (out / "table.md").read_text()
    assert "| plain | 2 |" in md and "±" in md
    assert "2 job(s) x 1 thread(s)" in result.stdout and "[4/4]" in result.stdout
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["runs"]) == 4 and plan["runs"][0]["seed"] == 0 and plan["runs"][1]["seed"] == 0  # seed-major


def test_rerun_skips_complete_runs_and_retrains_only_the_broken_one(swept):
    root, out, _ = swept
    untouched = (out / "plain" / "seed-1" / "generator.safetensors").stat().st_mtime_ns
    (out / "wide" / "seed-1" / "summary.json").unlink()  # as if killed before its results were written
    result = run_cli("sweep", str(root / "tiny.yaml"), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 complete, 1 to run" in result.stdout
    assert "wide seed 1: restarted" in result.stdout and "plain seed 0:" not in result.stdout
    assert (out / "wide" / "seed-1" / "summary.json").is_file()
    assert (out / "plain" / "seed-1" / "generator.safetensors").stat().st_mtime_ns == untouched


def test_compare_rebuilds_the_table_from_the_run_folders(swept):
    _, out, _ = swept
    runs = sorted(str(p) for p in out.glob("*/seed-*"))
    result = run_cli("compare", *runs, "--out", str(out / "cmp"))
    assert result.returncode == 0, result.stderr
    assert "| sine [model.g_hidden=[16, 32]] | 2 |" in result.stdout  # same name: told apart by the differing key
    assert "| sine [model.g_hidden=[32, 32]] | 2 |" in result.stdout
    sweep_rows = list(csv.DictReader(open(out / "table.csv")))
    cmp_rows = list(csv.DictReader(open(out / "cmp" / "table.csv")))
    assert [r["final_loss_D_mean"] for r in cmp_rows] == [r["final_loss_D_mean"] for r in sweep_rows]


def test_a_changed_sweep_never_reuses_runs_of_another_config(swept):
    root, out, _ = swept
    result = run_cli("sweep", str(root / "tiny.yaml"), "--out", str(out), "--set", "model.z_dim=3", "--dry-run")
    assert result.returncode == 0  # dry run: checks configs only
    result = run_cli("sweep", str(root / "tiny.yaml"), "--out", str(out), "--set", "model.z_dim=3")
    assert result.returncode == 2 and "different config" in result.stderr


@pytest.mark.parametrize("text, match", [
    ("base: sine\nseeds: [0]\nlsit: []\n", "Did you mean 'list'"),
    ("base: sine\nlist:\n  - {label: a, preset: sine, sett: {}}\n", "Did you mean 'set'"),
    ("base: sine\nset: {train.kimgg: 1}\n", "train.kimg"),
    ("base: sine\nset: {train.kimg: 1}\nlist:\n  - {label: a}\n  - {label: b, model.z_dimm: 3}\n", "model.z_dim"),
    ("base: sine\nset: {train.kimg: 1}\ngrid: {model.g_act: [relu, tanhh]}\n", "g_act"),
    ("base: sinee\nset: {train.kimg: 1}\n", "Did you mean 'sine'"),
    ("base: sine\nset: {train.kimg: 1, train.seed: 3}\n", "seeds"),
    ("base: sine\nset: {train.kimg: 1}\nlist:\n  - {label: a}\n  - {label: a}\n", "repeat"),
    ("base: sine\nset: {train.kimg: 1}\nevaluate: {metrics: [fid], nn: 5}\n", "Did you mean 'n'"),
    ("base: sine\nset: {train.kimg: 1}\nevaluate: {generator: best}\n", "add health.keep_best"),
    ("base: sine\nset: {train.kimg: 1}\nevaluate: {generator: last}\n", "must be final"),
    ("base: sine\nset: {train.kimg: 1}\nevaluate: {full_data: true}\n", "has no data.limit"),
    ("base: sine\nset: {train.kimg: 1, data.limit: 100}\nevaluate: {full_data: yes please}\n", "true or false"),
    ("base: mnist-dcgan\nset: {train.kimg: 1}\nevaluate: {metrics: [class_acc]}\n", "none of evaluate.metrics applies"),
])
def test_bad_sweep_files_fail_before_any_run(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_sweep(path)


def _sweep_sine_seed0(tmp_path, text):
    """Run a one-seed sweep of ``sine`` written as ``text``; return the sweep file, its out dir and the run dir."""
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    result = run_cli("sweep", str(path), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return path, out, out / "sine" / "seed-0"


def _table_row(out):
    return next(csv.DictReader(open(out / "table.csv")))


def _report_comparison(out) -> str:
    """The Comparison section of `ganforge report SWEEP_DIR`."""
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    text = (out / "report.html").read_text()
    start = text.index(">Comparison</h2>")
    return text[start:text.index("</section>", start)]


def test_evaluate_generator_best_scores_the_kept_generator(tmp_path):
    _, out, run = _sweep_sine_seed0(tmp_path, "name: best\nbase: sine\nseeds: [0]\nset: {train.kimg: 0.5, "
                                    "train.tick_kimg: 0.25, health.every_ticks: 1, health.keep_best: fid}\n"
                                    "evaluate: {n: 200, generator: best}\n")
    assert (run / "best" / "eval.json").is_file() and not (run / "eval.json").exists()  # RUN/best/ was evaluated
    kept = {m["name"]: m["value"] for m in json.loads((run / "best" / "eval.json").read_text())["metrics"]}
    assert float(_table_row(out)["curve_distance_mean"]) == pytest.approx(kept["curve_distance"])  # best/'s
    assert "curve_distance" in _report_comparison(out)  # the report reads best/'s numbers too


def test_evaluate_full_data_scores_limited_runs_against_the_whole_split(tmp_path):
    path, out, run = _sweep_sine_seed0(tmp_path, "name: full\nbase: sine\nseeds: [0]\nset: {train.kimg: 0.5, "
                                       "data.limit: 100}\nevaluate: {n: 200, full_data: true}\n")
    assert (run / "eval-full-data.json").is_file() and not (run / "eval.json").exists()
    saved = json.loads((run / "eval-full-data.json").read_text())
    assert saved["full_data"] is True and saved["run_data_limit"] == 100
    measured = {m["name"]: m["value"] for m in saved["metrics"]}
    assert float(_table_row(out)["curve_distance_mean"]) == pytest.approx(measured["curve_distance"])  # read
    assert "curve_distance" in _report_comparison(out)  # the report reads eval-full-data.json too
    table_md = (out / "table.md").read_text()  # for scale: how to score a G that copies the 100 points
    assert "copying the 100 training examples exactly" in table_md and "--full-data --baseline replay" in table_md
    assert "copying the 100 training examples exactly" in _report_comparison(out)  # and in the sweep's report
    again = run_cli("sweep", str(path), "--out", str(out))  # complete: nothing to train or evaluate again
    assert again.returncode == 0 and saved == json.loads((run / "eval-full-data.json").read_text())


def test_bad_sweep_on_the_command_line_creates_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base: sine\nset: {train.kimg: 1}\nlist:\n  - {label: a}\n  - {label: b, model.z_dimm: 3}\n")
    result = run_cli("sweep", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "model.z_dim" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_mixed_sweep_measures_label_metrics_only_on_the_conditional_arms(tmp_path):
    # Found on a GPU sweep of issue 11: class_acc asked for a sweep of conditional and unconditional presets failed
    # every unconditional run after it had trained ("cannot run on this run").
    path = tmp_path / "mixed.yaml"
    path.write_text("name: mixed\nbase: mnist-cgan\nset: {train.kimg: 1}\nlist:\n  - {label: cgan}\n"
                    "  - {label: dcgan, preset: mnist-dcgan}\n  - {label: clusters, data.clusters: 20}\n"
                    "evaluate: {metrics: [fid, class_acc], n: 500}\n")
    runs = {r.label: r for r in load_sweep(path).runs if r.seed == 0}
    assert runs["cgan"].eval_metrics == ("fid", "class_acc") and runs["cgan"].eval_skipped == ()
    assert runs["dcgan"].eval_metrics == ("fid",)
    assert [m for m, _ in runs["dcgan"].eval_skipped] == ["class_acc"]
    # a conditional variant on k-means clusters is measured as unconditional: its labels are not the classes
    assert runs["clusters"].eval_metrics == ("fid",) and "k-means clusters" in runs["clusters"].eval_skipped[0][1]
    cmd = _eval_cmd(runs["dcgan"], tmp_path / "out", load_sweep(path).evaluate)
    assert cmd[cmd.index("--metric"):] == ["--metric", "fid", "--n", "500"]
    listed = run_cli("sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert "dcgan/seed-0  [new]" in listed.stdout and "(no class_acc: it samples by label" in listed.stdout


def test_grid_crossed_with_list_and_cli_overrides_win(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("base: sine\nset: {train.kimg: 5}\nseeds: 2\nlist:\n  - {label: a}\n  - {label: b, "
                    "preset: parametric-curve}\ngrid: {model.z_dim: [2, 3]}\n")
    sweep = load_sweep(path, ("train.kimg=0.25",))
    assert sweep.labels == ["a z_dim=2", "a z_dim=3", "b z_dim=2", "b z_dim=3"]
    assert len(sweep.runs) == 8 and {r.seed for r in sweep.runs} == {0, 1}
    assert all(r.config["train"]["kimg"] == 0.25 for r in sweep.runs)
    assert [r.config["data"]["name"] for r in sweep.runs if r.label.startswith("b")][0] == "parametric-curve"


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(REPO) / "sweeps").glob("*.yaml")))
def test_shipped_sweeps_are_valid(name):
    sweep = load_sweep(Path(REPO) / "sweeps" / f"{name}.yaml", validate_data=False)
    assert len({r.seed for r in sweep.runs}) == 3 and len(sweep.labels) >= 2

