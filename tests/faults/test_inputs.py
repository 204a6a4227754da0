"""Hostile and clumsy inputs: config values, config files, paths, and a disk that is full or read-only.

Each is refused with exit code 2 and one short line, and leaves nothing behind (no half-made run
directory that would then block the same --out).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.faults.conftest import FAST, assert_refused, fingerprint, invoke

SETS = [f"--set={s}" for s in FAST] + ["--no-progress"]

BAD_VALUES = [
    "train.kimg=inf",
    "train.kimg=.nan",
    "train.kimg=-1",
    "train.kimg=1e300",
    "train.epochs=.inf",
    "train.seed=1e30",
    "train.seed=-1",
    "train.seed=inf",
    "train.batch_size=1e12",
    "train.batch_size=0",
    "train.batch_size=2.5",
    "optim.lr_g=1e9",
    "optim.lr_d=nan",
    "optim.lr_g=0",
    "model.z_dim=1e9",
    "model.g_hidden=[64,1e9]",
    "train.grid_size=100000000",
    "train.tick_kimg=inf",
    "train.ema_kimg=-.inf",
    "optim.lr_decay_start=1.5",
    "optim.lr_decay_start=-0.1",
    "objective.gp_weight=nan",
    "data.n_points=1e12",
    "eval.n=1e12",
    "train.nan_lr_factor=2",
    "train.nan_policy=sometimes",
    "train.device=tpu",
    "train.kimg=" + "9" * 5000,
    "train.kimg=abc",
    "train." + "x" * 5000 + "=1",
    "=5",
    "train.kimg",
    "model.g_hidden={a: 1}",
    "data.name=[1, 2]",
    "train.cuda_graphs=true",
    "train.nan_policy=rollback",  # the last two only together (see below)
]


@pytest.mark.parametrize("value", BAD_VALUES[:-2], ids=lambda v: v[:40])
def test_bad_config_value_is_one_short_line(tmp_path, value):
    before = fingerprint(tmp_path)
    message = assert_refused(invoke("train", "sine", "--out", tmp_path / "r", *SETS, "--set", value), before, tmp_path)
    assert len(message) < 400, message  # short whatever the input's size
    assert not (tmp_path / "r").exists()


def test_rollback_with_cuda_graphs_is_refused(tmp_path):
    before = fingerprint(tmp_path)
    assert_refused(
        invoke("train", "sine", "--out", tmp_path / "r", *SETS, "--set", BAD_VALUES[-2], "--set", BAD_VALUES[-1]),
        before,
        tmp_path,
    )


def test_lr_decay_with_cuda_graphs_is_refused(tmp_path):
    """A captured Adam step keeps the rate it was captured with, so a schedule would silently not apply."""
    before = fingerprint(tmp_path)
    message = assert_refused(
        invoke("train", "sine", "--out", tmp_path / "r", *SETS, "--set", "train.cuda_graphs=true",
               "--set", "optim.lr_decay_start=0.5"),
        before,
        tmp_path,
    )
    assert "optim.lr_decay_start" in message and "cuda_graphs" in message


CONFIG_FILES = {
    "latin-1": "name: caf\xe9\nextends: sine\n".encode("latin-1"),
    "utf-16": "extends: sine\n".encode("utf-16"),
    "bad-yaml": b"extends: sine\ntrain: {kimg: [1,\n",
    "tabs": b"extends: sine\ntrain:\n\tkimg: 1\n",
    "a-list": b"- 1\n- 2\n",
    "python-tag": b"!!python/object/apply:os.system ['echo pwned']\n",
    "deep": b"[" * 100000,
    "unknown-key": b"extends: sine\ntrain: {kimgs: 1}\n",
    "self-extends": b"extends: self.yaml\n",
    "empty-extends": b"extends: nowhere.yaml\n",
}


@pytest.mark.parametrize("name", list(CONFIG_FILES))
def test_bad_config_file_is_one_short_line(tmp_path, name):
    cfg = tmp_path / "self.yaml"
    cfg.write_bytes(CONFIG_FILES[name])
    before = fingerprint(tmp_path)
    message = assert_refused(invoke("train", str(cfg), "--out", tmp_path / "r", *SETS), before, tmp_path)
    assert len(message) < 400, message


def test_out_under_a_file_and_over_a_file(tmp_path):
    (tmp_path / "file").write_text("mine")
    before = fingerprint(tmp_path)
    for out in (tmp_path / "file" / "sub", tmp_path / "file"):
        assert_refused(invoke("train", "sine", "--out", out, *SETS), before, tmp_path)


def test_report_out_is_a_folder(run):
    root = run.parent
    (root / "folder").mkdir()
    before = fingerprint(root)
    message = assert_refused(invoke("report", run, "--out", root / "folder"), before, root)
    assert "give a file name" in message


def test_generate_more_than_memory_holds(run):
    root = run.parent
    before = fingerprint(root)
    message = assert_refused(invoke("generate", run, "--n", "2000000000000", "--out", root / "o"), before, root)
    assert "GB of memory" in message and not (root / "o").exists()


@pytest.mark.parametrize(
    "cmd",
    [
        ["generate", "{R}", "--seed", str(10**30), "--n", "4", "--out", "{O}"],
        ["evaluate", "{R}", "--seed", "-1"],
        ["evaluate", "{R}", "--n", str(10**12)],
        ["generate", "{R}", "--n", "0", "--out", "{O}"],
    ],
    ids=lambda c: " ".join(c[2:4]),
)
def test_command_option_bounds(run, cmd):
    root = run.parent
    before = fingerprint(root)
    args = [a.replace("{R}", str(run)).replace("{O}", str(root / "o")) for a in cmd]
    outcome = invoke(*args)
    # click reports bad option values itself (exit 2, a usage line and one "Error:" line)
    assert not outcome.traceback and outcome.code == 2, outcome.stderr
    assert "Traceback" not in outcome.stderr and fingerprint(root) == before


def test_generate_into_a_non_empty_folder(run):
    root = run.parent
    (root / "o").mkdir()
    (root / "o" / "keep.txt").write_text("mine")
    before = fingerprint(root)
    assert_refused(invoke("generate", run, "--n", "4", "--out", root / "o"), before, root)


# ---- a full or read-only disk: an OSError injected where the bytes reach the disk ---------------------------


def _fail(monkeypatch, where: str, err: int, after: int = 0) -> None:
    """Make os.<where> raise OSError(err) from its (after+1)-th call on."""
    real = getattr(os, where)
    calls = [0]

    def broken(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise OSError(err, os.strerror(err), str(args[0]) if args and not isinstance(args[0], int) else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(os, where, broken)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES], ids=["full", "read-only", "denied"])
def test_new_run_on_a_broken_disk_leaves_nothing(tmp_path, monkeypatch, err):
    before = fingerprint(tmp_path)
    _fail(monkeypatch, "fsync", err)
    message = assert_refused(invoke("train", "sine", "--out", tmp_path / "r", *SETS), before, tmp_path)
    assert os.strerror(err) in message


def test_mkdir_on_a_read_only_disk(tmp_path, monkeypatch):
    before = fingerprint(tmp_path)
    monkeypatch.setattr(
        Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only file system", "x"))
    )
    assert_refused(invoke("train", "sine", "--out", tmp_path / "r", *SETS), before, tmp_path)


@pytest.mark.parametrize("after", [0, 3, 8], ids=lambda a: f"after-{a}-writes")
def test_disk_full_during_resume_keeps_a_loadable_checkpoint(run, monkeypatch, after):
    """ENOSPC part-way through a resumed run: one line, exit 2, and the run still resumes afterwards."""
    _fail(monkeypatch, "fsync", errno.ENOSPC, after=after)
    outcome = invoke("train", "--resume", run, "--set", "train.kimg=2", "--no-progress")
    assert not outcome.traceback, repr(outcome.exception)
    assert outcome.code == 2 and len(outcome.error_lines) == 1 and "No space left" in outcome.stderr, outcome.stderr
    monkeypatch.undo()
    again = invoke("train", "--resume", run, "--set", "train.kimg=2", "--no-progress")
    assert again.code == 0, again.stderr
    assert not [p for p in run.rglob("*.tmp")]


def test_disk_full_while_generating_leaves_no_folder(run, monkeypatch):
    root = run.parent
    before = fingerprint(root)
    real = Path.write_bytes

    def full(self, data):
        if self.suffix == ".npz":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    assert_refused(invoke("generate", run, "--n", "4", "--out", root / "o"), before, root)
