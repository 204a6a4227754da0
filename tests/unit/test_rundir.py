"""The run-directory module and the folder lock, as functions (the fault suite drives them through the CLI)."""

from __future__ import annotations

import errno
import json
import os

import pytest

from ganforge.errors import RunDirError
from ganforge.training.lock import LOCK_FILE, acquire
from ganforge.training.rundir import (
    atomic_write_text,
    make_new_folder,
    read_history,
    read_summary,
    remove_stale_temps,
    truncate_history,
)


def test_lock_is_exclusive_and_released(tmp_path):
    lock = acquire(tmp_path, "first", log=lambda _: None)
    with pytest.raises(RunDirError, match="being written by PID"):
        acquire(tmp_path, "second", log=lambda _: None)
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()
    acquire(tmp_path, "third", log=lambda _: None).release()


def test_stale_lock_file_is_taken_over_and_said(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 2**22 + 12345, "host": "elsewhere"}))
    said = []
    with acquire(tmp_path, "me", log=said.append):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert said and "stale lock" in said[0] and "elsewhere" in said[0]


def test_stale_temps_of_other_processes_are_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    theirs = [tmp_path / ".summary.json.4242.tmp", tmp_path / "checkpoints" / ".latest.pt.77.0a1b2c3d.tmp"]
    mine = tmp_path / f".config.yaml.{os.getpid()}.00000000.tmp"
    keep = tmp_path / "notes.tmp"
    for p in [*theirs, mine, keep]:
        p.write_text("x")
    assert remove_stale_temps(tmp_path, log=lambda _: None) == 2
    assert not any(p.exists() for p in theirs) and mine.exists() and keep.exists()


def test_new_folder_undo_removes_exactly_what_it_made(tmp_path):
    undo = make_new_folder(tmp_path / "a" / "b" / "run")
    (tmp_path / "a" / "b" / "run" / "x").write_text("x")
    undo()
    assert not (tmp_path / "a").exists()
    (tmp_path / "empty").mkdir()
    undo = make_new_folder(tmp_path / "empty")
    (tmp_path / "empty" / "y").write_text("y")
    undo()
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RunDirError, match="No space left on device. Free some disk space"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_history_skips_bad_lines_and_truncates_after_the_checkpoint(tmp_path):
    lines = [
        {"tick": 1, "kimg": 0.5, "loss_D": 1.0},
        {"type": "eval", "kimg": 0.5, "fid": 3.0},
        {"tick": 2, "kimg": 1.0, "loss_D": 0.9},
        {"tick": 3, "kimg": "1.5"},
    ]
    raw = "".join(json.dumps(r) + "\n" for r in lines) + '{"tick": 4, "kim\n'
    (tmp_path / "metrics.jsonl").write_bytes(raw.encode() + b"\xff\n")
    records, bad = read_history(tmp_path)
    assert len(records) == 3 and bad == 3  # the string kimg, the cut line, the non-UTF-8 line
    ticks = truncate_history(tmp_path, images_seen=500, log=lambda _: None)
    assert [r["tick"] for r in ticks] == [1]
    assert [json.loads(x).get("type") for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [None, "eval"]


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("{}", "has no 'kimg'"),
        ('{"kimg": 1, "images_seen": -3}', "images_seen"),
        ("[", "not valid JSON"),
        ("[]", "holds a list"),
    ],
)
def test_summary_faults_are_named(tmp_path, text, fault):
    (tmp_path / "summary.json").write_text(text)
    with pytest.raises(RunDirError, match="summary.json") as e:
        read_summary(tmp_path, require=("kimg",))
    assert fault in str(e.value)
