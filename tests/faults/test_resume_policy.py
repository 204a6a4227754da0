"""Resume edge cases and the NaN policy: what may change on resume, finished runs, and stop vs rollback."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from ganforge.training.stats import StatsAccumulator
from tests.faults.conftest import FAST, assert_refused, fingerprint, invoke

SETS = [f"--set={s}" for s in FAST] + ["--no-progress"]


def _history(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_finished_run_says_so_and_changes_nothing(run):
    before = fingerprint(run.parent)
    outcome = invoke("train", "--resume", run, "--no-progress")
    assert outcome.code == 0 and not outcome.traceback, outcome.stderr
    assert "already finished" in outcome.stdout and "--set train.kimg=" in outcome.stdout
    assert fingerprint(run.parent) == before


def test_shorter_than_done_is_refused(run):
    before = fingerprint(run.parent)
    message = assert_refused(invoke("train", "--resume", run, "--set", "train.kimg=0.5"), before, run.parent)
    assert "1.024 kimg already" in message


@pytest.mark.parametrize("key", ["objective.loss=hinge", "model.z_dim=3", "train.seed=4", "data.name=ring"])
def test_unsafe_change_is_refused_and_config_untouched(run, key):
    before = fingerprint(run.parent)
    message = assert_refused(invoke("train", "--resume", run, "--set", key), before, run.parent)
    assert "cannot change when resuming" in message


def test_safe_changes_are_applied_and_recorded(run):
    outcome = invoke(
        "train",
        "--resume",
        run,
        "--set",
        "train.kimg=1.5",
        "--set",
        "optim.lr_g=1e-4",
        "--set",
        "eval.n=100",
        "--no-progress",
    )
    assert outcome.code == 0, outcome.stderr
    resume = [r for r in _history(run) if r.get("type") == "resume"]
    assert len(resume) == 1 and resume[0]["at_kimg"] == 1.024
    assert resume[0]["changes"]["optim.lr_g"][1] == 1e-4 and resume[0]["changes"]["train.kimg"] == [1.0, 1.5]
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr_g"] == 1e-4
    ck = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert ck["opt_G"]["param_groups"][0]["lr"] == 1e-4  # the optimiser runs at the new rate, not the stored one
    assert ck["opt_D"]["param_groups"][0]["lr"] == yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr_d"]


def test_leftover_temp_files_are_removed_on_resume(run):
    stale = [run / "checkpoints" / ".latest.pt.999999.deadbeef.tmp", run / ".summary.json.4242.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    outcome = invoke("train", "--resume", run, "--set", "train.kimg=1.5", "--no-progress")
    assert outcome.code == 0, outcome.stderr
    assert not any(p.exists() for p in stale) and "removed 2 temporary file" in outcome.stdout


# ---- NaN ------------------------------------------------------------------------------------------------


def _nan_on(monkeypatch, ticks):
    """Tick maintenance reads NaN losses at the given tick reads (1-based; a set, or 'all')."""
    real = StatsAccumulator.read_and_reset
    calls = [0]

    def read(self):
        values = real(self)
        calls[0] += 1
        if ticks == "all" or calls[0] in ticks:
            values = {**values, "loss_D": math.nan}
        return values

    monkeypatch.setattr(StatsAccumulator, "read_and_reset", read)


def test_nan_before_any_checkpoint_says_nothing_is_kept(tmp_path, monkeypatch):
    _nan_on(monkeypatch, {1})
    before = fingerprint(tmp_path)
    message = assert_refused(invoke("train", "sine", "--out", tmp_path / "r", *SETS), before, tmp_path, code=3)
    assert "No checkpoint had been written yet" in message and "intact" not in message


def test_nan_stop_keeps_the_checkpoint_and_its_advice_works(tmp_path, monkeypatch):
    _nan_on(monkeypatch, {2})
    out = tmp_path / "r"
    outcome = invoke("train", "sine", "--out", out, *SETS)
    assert outcome.code == 3 and len(outcome.error_lines) == 1, outcome.stderr
    message = outcome.error_lines[0]
    assert "intact" in message and "tick 2" in message
    advice = message[message.index("ganforge train --resume") :].split(" (or")[0].split()
    monkeypatch.undo()
    again = invoke(*advice[1:], "--no-progress")  # the command the message gives, as written
    assert again.code == 0, again.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr_g"] == pytest.approx(5e-4)


def test_nan_rollback_lowers_the_rates_and_continues(tmp_path, monkeypatch):
    _nan_on(monkeypatch, {2})
    out = tmp_path / "r"
    outcome = invoke("train", "sine", "--out", out, *SETS, "--set", "train.nan_policy=rollback")
    assert outcome.code == 0, outcome.stderr
    assert "Rolled back to 0.5 kimg (tick 1)" in outcome.stdout
    history = _history(out)
    rollbacks = [r for r in history if r.get("type") == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["lr_g"] == [1e-3, 5e-4]
    ticks = [r["tick"] for r in history if "type" not in r]
    assert ticks == [1, 2]  # the diverged tick 2 was never recorded; the redone one was
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr_g"] == pytest.approx(5e-4)
    ck = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert ck["opt_G"]["param_groups"][0]["lr"] == pytest.approx(5e-4)


def test_nan_rollback_gives_up_after_the_limit(tmp_path, monkeypatch):
    _nan_on(monkeypatch, set(range(2, 100)))
    out = tmp_path / "r"
    outcome = invoke(
        "train", "sine", "--out", out, *SETS, "--set", "train.nan_policy=rollback", "--set", "train.nan_rollbacks=2"
    )
    assert outcome.code == 3 and len(outcome.error_lines) == 1, outcome.stderr
    assert "after 2 rollback(s)" in outcome.error_lines[0]
    assert len([r for r in _history(out) if r.get("type") == "rollback"]) == 2
    assert (out / "checkpoints" / "latest.pt").is_file()


def test_finished_run_with_a_lost_summary_gets_it_back(run):
    (run / "summary.json").unlink()
    outcome = invoke("train", "--resume", run, "--no-progress")
    assert outcome.code == 0 and not outcome.traceback, outcome.stderr
    assert "rewrote it from the checkpoint" in outcome.stdout and "already finished" in outcome.stdout
    assert json.loads((run / "summary.json").read_text())["images_seen"] == 1024


def test_finished_run_whose_summary_is_a_tick_behind_gets_it_rewritten(run):
    # killed after the last tick's checkpoint and before its summary.json: the summary still says the tick before
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "images_seen": 768, "kimg": 0.768,
                                                  "ticks": summary["ticks"] - 1}))
    outcome = invoke("train", "--resume", run, "--no-progress")
    assert outcome.code == 0 and not outcome.traceback, outcome.stderr
    assert "behind the checkpoint" in outcome.stdout and "rewrote it from the checkpoint" in outcome.stdout
    assert json.loads((run / "summary.json").read_text())["images_seen"] == 1024
