"""Every artifact ganforge reads, damaged every way we could think of, under every command that reads it.

Each case must be refused with exit code 2, one ``error:`` line naming the file, no traceback, and no
file changed. metrics.jsonl is a log, not state: a damaged line is skipped (and said), so commands on
it must succeed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.faults.conftest import assert_refused, fingerprint, invoke

RESUME = ["train", "--resume", "{R}", "--set", "train.kimg=2", "--no-progress"]
GENERATE = ["generate", "{R}", "--n", "8", "--out", "{O}"]
EVALUATE = ["evaluate", "{R}", "--n", "50", "--n-boot", "0"]
REPORT = ["report", "{R}"]
COMPARE = ["compare", "{R}"]
COMPARE_FULL = ["compare", "{R}", "--full-data"]

# artifact -> the commands that read it
READERS: dict[str, list[list[str]]] = {
    "checkpoints/latest.pt": [RESUME],
    "generator.safetensors": [GENERATE, EVALUATE],
    "generator.json": [GENERATE, EVALUATE],
    "config.yaml": [RESUME, REPORT, COMPARE],
    "summary.json": [REPORT, COMPARE],
    "eval.json": [REPORT, COMPARE],
    "eval-full-data.json": [REPORT, COMPARE_FULL],
    "eval-full-data-baseline-replay.json": [REPORT, COMPARE_FULL],
}


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(300))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _latin1(path: Path) -> None:  # a text file saved in another encoding (an editor's doing)
    path.write_bytes(path.read_text().replace("e", "é").encode("latin-1"))


def _utf16(path: Path) -> None:
    path.write_bytes(path.read_text().encode("utf-16"))


def _ck_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        ck = torch.load(path, weights_only=True)
        ck = edit(ck) or ck
        torch.save(ck, path)

    return damage


def _first_weight(state: dict) -> str:
    return next(k for k, v in state.items() if v.is_floating_point() and v.dim() > 0)


def _wrong_shape(ck: dict) -> None:
    key = _first_weight(ck["G"])
    ck["G"][key] = torch.zeros(3, 3, 3)


def _nan_weights(ck: dict) -> None:
    key = _first_weight(ck["D"])
    ck["D"][key] = torch.full_like(ck["D"][key], float("nan"))


def _wrong_optimizer(ck: dict) -> None:
    state = ck["opt_G"]["state"]
    first = next(iter(state))
    state[first]["exp_avg"] = torch.zeros(7)


def _st_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        state = load_file(str(path))
        edit(state)
        save_file(state, str(path))

    return damage


def _json_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = json.loads(path.read_text())
        data = edit(data) or data
        path.write_text(json.dumps(data))

    return damage


def _set(key: str, value: object) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        d[key] = value

    return edit


def _drop(key: str) -> Callable[[dict], None]:
    return lambda d: d.pop(key)


COMMON = {"garbage": _garbage, "truncated": _truncate, "empty": _empty}
TEXT = {**COMMON, "latin-1": _latin1, "utf-16": _utf16}
DAMAGE: dict[str, dict[str, Callable[[Path], None]]] = {
    "checkpoints/latest.pt": {
        **COMMON,
        "empty-dict": lambda p: torch.save({}, p),
        "a-list": lambda p: torch.save([1, 2, 3], p),
        "missing-key": _ck_edit(_drop("opt_G")),
        "wrong-shape": _ck_edit(_wrong_shape),
        "nan-weights": _ck_edit(_nan_weights),
        "wrong-type-counter": _ck_edit(_set("images_seen", "many")),
        "wrong-optimizer": _ck_edit(_wrong_optimizer),
        "wrong-rng": _ck_edit(_set("rng", {"torch": torch.zeros(3)})),
    },
    "generator.safetensors": {
        **COMMON,
        "wrong-tensors": lambda p: save_file({"x": torch.zeros(3)}, str(p)),
        "wrong-shape": _st_edit(lambda s: s.__setitem__(_first_weight(s), torch.zeros(2, 2))),
        "nan-weights": _st_edit(lambda s: s.__setitem__(_first_weight(s), s[_first_weight(s)] * float("nan"))),
    },
    "generator.json": {
        **TEXT,
        "a-list": lambda p: p.write_text("[1, 2]"),
        "missing-key": _json_edit(_drop("conditioning")),
        "wrong-shape": _json_edit(_set("shape", "abc")),
        "huge-shape": _json_edit(_set("shape", [10**9, 10**9])),
        "wrong-format": _json_edit(_set("format", "x" * 10000)),
        "bad-config": _json_edit(lambda d: d["config"]["train"].__setitem__("batch_size", -3)),
    },
    "config.yaml": {
        **TEXT,
        "a-list": lambda p: p.write_text("- 1\n- 2\n"),
        "bad-yaml": lambda p: p.write_text("train: {kimg: [1,\n"),
        "unknown-key": lambda p: p.write_text(p.read_text() + "bogus_key: 1\n"),
        "wrong-type": lambda p: p.write_text(p.read_text().replace("batch_size: 32", "batch_size: many")),
        "python-tag": lambda p: p.write_text("!!python/object/apply:os.system ['echo pwned']\n"),
    },
    "summary.json": {
        **TEXT,
        "a-list": lambda p: p.write_text("[]"),
        "missing-keys": _json_edit(lambda d: [d.pop("images_seen"), d.pop("final")]),
        "wrong-type": _json_edit(_set("kimg", "lots")),
        "wrong-final": _json_edit(_set("final", {"loss_D": "x"})),
        "deep": lambda p: p.write_text("[" * 100000),
    },
    "eval.json": {
        **TEXT,
        "a-number": lambda p: p.write_text("5"),
        "wrong-records": _json_edit(_set("metrics", [1, 2, 3])),
        "records-not-list": _json_edit(_set("metrics", 5)),
    },
}
DAMAGE["eval-full-data.json"] = DAMAGE["eval-full-data-baseline-replay.json"] = DAMAGE["eval.json"]

CASES = [
    pytest.param(artifact, how, cmd, id=f"{artifact.split('/')[-1]}-{how}-{cmd[0]}")
    for artifact, commands in READERS.items()
    for how in DAMAGE[artifact]
    for cmd in commands
]


@pytest.mark.parametrize(("artifact", "how", "cmd"), CASES)
def test_damaged_artifact_is_refused_in_one_line(run, artifact, how, cmd):
    DAMAGE[artifact][how](run / artifact)
    root = run.parent
    before = fingerprint(root)
    args = [a.replace("{R}", str(run)).replace("{O}", str(root / "out")) for a in cmd]
    message = assert_refused(invoke(*args), before, root)
    name = Path(artifact).name
    assert name in message or "checkpoint" in message, message
    if artifact.endswith(".pt") and how != "empty-dict":  # points at the snapshot to use instead
        assert "tick-0002.pt" in message and "--resume" in message, message


def _cut_lines(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_bytes(
        "\n".join(lines[:-1]).encode() + b'\n{"tick": 2, "kimg"\n\xff\xfe garbage\n[1, 2]\n{"tick": "x", "kimg": 1}\n'
    )


@pytest.mark.parametrize("cmd", [REPORT, RESUME], ids=["report", "resume"])
@pytest.mark.parametrize("how", ["cut-lines", "empty", "garbage"])
def test_damaged_history_is_skipped_not_fatal(run, cmd, how):
    {"cut-lines": _cut_lines, "empty": _empty, "garbage": _garbage}[how](run / "metrics.jsonl")
    args = [a.replace("{R}", str(run)) for a in cmd]
    outcome = invoke(*args)
    assert not outcome.traceback, repr(outcome.exception)
    assert outcome.code == 0, outcome.stderr
    if cmd is RESUME:  # the history was rewritten: good lines kept, ticks continue without duplicates
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        ticks = [r["tick"] for r in records if "type" not in r]
        assert ticks == sorted(set(ticks)) and ticks[-1] == 4
