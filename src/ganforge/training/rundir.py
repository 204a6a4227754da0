"""The run directory: its file names, atomic writes, leftover temp files, and validated reads.

One module owns what a run directory holds, so that every reader checks a file the same way and a
damaged or hand-edited file gives one line naming the file, what is wrong and what to do:

    RUN/config.yaml                the resolved config (``Config.to_yaml``)
    RUN/metrics.jsonl              the history: one JSON object per tick, plus typed records
                                   ({"type": "eval" | "resume" | "rollback", ...})
    RUN/summary.json               written at every tick: how far the run got
    RUN/eval.json                  ``ganforge evaluate``'s metric records
    RUN/generator.safetensors      the exported generator's weights ...
    RUN/generator.json             ... and how to rebuild it
    RUN/checkpoints/latest.pt      everything resume needs; ``tick-NNNN.pt`` snapshots beside it
    RUN/.ganforge.lock             held while a process writes the folder (``training.lock``)

Atomic writes go through ``.NAME.PID.RANDOM.tmp`` in the same folder; a SIGKILL in between leaves such
a file, which ``remove_stale_temps`` deletes on the next run.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ganforge.errors import ConfigError, RunDirError

CONFIG, METRICS, SUMMARY, EVAL, LOG = "config.yaml", "metrics.jsonl", "summary.json", "eval.json", "log.txt"
EVAL_FULL_DATA = "eval-full-data.json"  # a data.limit run measured against the whole training split
EVAL_FULL_DATA_REPLAY = "eval-full-data-baseline-replay.json"  # its data.limit images copied, the same protocol
WEIGHTS, SPEC = "generator.safetensors", "generator.json"
CKPT_DIR, LATEST = "checkpoints", "latest.pt"
MAX_TEXT_BYTES = 64 << 20  # config / summary / eval / spec files are kilobytes; more is not ours
_TEMP = re.compile(r"^\.(.+?)\.(\d+)(?:\.[0-9a-f]{8})?\.tmp$")  # .NAME.PID.RANDOM.tmp (or .NAME.PID.tmp)


# ----------------------------------------------------------------------------------------------
# writing


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``.

    A crash (or SIGKILL) at any point leaves either the old file or the new one, never half of one.
    ``write`` is called with a binary file object. A full or read-only disk raises RunDirError and
    leaves the old file as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not mkstemp: it creates 0600 files. O_EXCL with mode 0o666 lets the umask give a normal file's mode.
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise RunDirError(write_failure(path, e)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise RunDirError(write_failure(path, e)) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_record(run_dir: Path, record: dict[str, Any]) -> None:
    """One line of the run's history (metrics.jsonl). Appends are whole lines; a kill cuts at most the last."""
    path = Path(run_dir) / METRICS
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
    except OSError as e:
        raise RunDirError(write_failure(path, e)) from None


def write_failure(path: Path, e: OSError, verb: str = "write") -> str:
    """One line for a failed write (or read): which file, the system's reason, what to do."""
    import errno

    reason = e.strerror or type(e).__name__
    fix = {
        errno.ENOSPC: "free some disk space",
        errno.EDQUOT: "free some disk space",
        errno.EROFS: "write to a writable filesystem (another --out)",
        errno.EACCES: "fix the folder's permissions or choose another --out",
        errno.EPERM: "fix the folder's permissions or choose another --out",
        errno.ENOTDIR: "a parent of that path is a file; choose another --out",
        errno.EISDIR: "that path is a folder; give a file name",
    }.get(e.errno or 0, "check the path and the disk")
    return f"could not {verb} {_short(path)}: {reason}. {fix.capitalize()}; files written before are kept."


def _short(path: Path | str, limit: int = 160) -> str:
    text = repr(str(path))
    return text if len(text) <= limit else text[: limit - 5] + "...'"


# ----------------------------------------------------------------------------------------------
# leftovers


def is_temp_file(name: str) -> bool:
    return _TEMP.match(name) is not None


def remove_stale_temps(folder: Path, log: Callable[[str], None] = print) -> int:
    """Delete ``.NAME.PID.*.tmp`` files left by killed writers under FOLDER (call while holding its lock)."""
    removed = 0
    for root, _, files in os.walk(folder):
        for name in files:
            m = _TEMP.match(name)
            if m and int(m.group(2)) != os.getpid():
                try:
                    os.unlink(os.path.join(root, name))
                    removed += 1
                except OSError:
                    pass
    if removed:
        log(f"removed {removed} temporary file(s) left by an interrupted write in {folder}")
    return removed


def make_new_folder(path: Path) -> Callable[[], None]:
    """Create PATH (new or empty) and return an undo that removes what was created (or emptied it again)."""
    path = Path(path)
    # The topmost folder this call creates (None: PATH existed, empty): undo removes exactly that.
    top = next((p for p in [*reversed(path.parents), path] if not p.exists()), None)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"{_short(path)} exists and is a file; choose another --out (nothing was changed).") from None
    except OSError as e:
        raise RunDirError(write_failure(path, e)) from None

    def undo() -> None:
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)
            return
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()

    return undo


# ----------------------------------------------------------------------------------------------
# reading


def damaged(path: Path, what: str, fix: str) -> RunDirError:
    return RunDirError(f"{_short(path)} {what}; {fix}")


def read_text(path: Path, fix: str) -> str:
    """UTF-8 text of a small run file, or RunDirError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise damaged(path, f"is {size / 1e6:.0f} MB, far more than ganforge writes", fix)
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise damaged(path, "does not exist", fix) from None
    except IsADirectoryError:
        raise damaged(path, "is a folder, not a file", fix) from None
    except UnicodeDecodeError as e:
        raise damaged(path, f"is not UTF-8 text (byte {e.start})", fix) from None
    except OSError as e:
        raise damaged(path, f"cannot be read ({e.strerror})", fix) from None


def read_json(path: Path, fix: str, kind: type = dict) -> Any:
    text = read_text(path, fix)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise damaged(path, f"is not valid JSON (line {e.lineno}: {e.msg})", fix) from None
    except RecursionError:
        raise damaged(path, "is nested too deeply to be a ganforge file", fix) from None
    if not isinstance(data, kind):
        raise damaged(path, f"holds a {type(data).__name__}, not a JSON {'object' if kind is dict else 'list'}", fix)
    return data


def read_config_dict(run_dir: Path, fix: str | None = None) -> dict[str, Any]:
    """RUN/config.yaml as a mapping (not yet checked against the Config dataclasses)."""
    path = Path(run_dir) / CONFIG
    fix = fix or "restore it (every checkpoint holds a copy of the config) or start a new run"
    text = read_text(path, fix)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise damaged(path, f"is not valid YAML{where}", fix) from None
    except RecursionError:
        raise damaged(path, "is nested too deeply", fix) from None
    if not isinstance(data, dict):
        raise damaged(path, "does not hold a mapping of config keys", fix)
    return data


def read_config(run_dir: Path, fix: str | None = None):
    """RUN/config.yaml as a validated ``Config``."""
    from ganforge.config import config_from_dict

    data = read_config_dict(run_dir, fix)
    try:
        return config_from_dict(data)
    except ConfigError as e:
        path = Path(run_dir) / CONFIG
        raise damaged(
            path,
            f"is not a valid config: {str(e).rstrip('.')}",
            fix or "restore it (every checkpoint holds a copy of the config) or start a new run",
        ) from None


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


SUMMARY_KEYS = ("kimg", "images_seen", "ticks", "wall_time_s")  # what a finished tick always writes


def read_summary(run_dir: Path, require: tuple[str, ...] = ()) -> dict[str, Any]:
    """RUN/summary.json, checked: the fields readers use have the right types; REQUIRE must be present."""
    path = Path(run_dir) / SUMMARY
    fix = f"resume the run to rewrite it (`ganforge train --resume {run_dir}`), or leave the run out"
    data = read_json(path, fix)
    for key in require:
        if key not in data:
            raise damaged(path, f"has no {key!r}", fix)
    for key, check, want in (
        ("kimg", _number, "a number"),
        ("images_seen", _count, "a whole number >= 0"),
        ("ticks", _count, "a whole number >= 0"),
        ("wall_time_s", _number, "a number"),
    ):
        if key in data and not check(data[key]):
            raise damaged(path, f"has {key}={_clip(data[key])}, not {want}", fix)
    final = data.get("final", {})
    if not isinstance(final, dict) or not all(isinstance(v, (int, float)) for v in final.values()):
        raise damaged(path, "has a 'final' that is not a mapping of losses to numbers", fix)
    return data


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _clip(x: Any, limit: int = 40) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_history(run_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of RUN/metrics.jsonl and how many lines were unreadable.

    The history is a log, not state: a line cut by a kill, or damaged by hand, is skipped (and counted)
    rather than stopping a report. Tick records need a finite numeric ``kimg``.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return [], 0
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise damaged(path, f"cannot be read ({e.strerror})", "check its permissions") from None
    records, bad = [], 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            bad += 1
            continue
        if not isinstance(rec, dict) or ("type" not in rec and not _tick_record(rec)):
            bad += 1
            continue
        records.append(rec)
    return records, bad


def _tick_record(rec: dict[str, Any]) -> bool:
    """A per-tick record: numbers only (tick, kimg, step, losses, time_s, img_per_s), a finite kimg."""
    return _number(rec.get("kimg")) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in rec.values()
    )


def training_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-tick records (no ``type``), the ones curves are drawn from."""
    return [r for r in records if "type" not in r and _tick_record(r)]


def truncate_history(run_dir: Path, images_seen: int, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """On resume: keep the records up to the checkpoint (later ones were written before a kill); return
    the tick records. Typed records (evaluations, resumes) without a position are kept."""
    records, bad = read_history(run_dir)
    if bad:
        log(f"skipped {bad} unreadable line(s) of {Path(run_dir) / METRICS}")
    kept = [r for r in records if not _number(r.get("kimg")) or r["kimg"] * 1000 <= images_seen + 0.5]
    if bad or len(kept) != len(records):
        atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in kept))
    return training_records(kept)


def read_eval_records(run_dir: Path, name: str = EVAL) -> list[dict[str, Any]]:
    """Metric records of RUN/eval.json, or of RUN/``name`` ([] when the run was not evaluated)."""
    path = Path(run_dir) / name
    if not path.exists():
        return []
    fix = f"evaluate the run again (`ganforge evaluate {run_dir}`) or delete the file"
    data = read_json(path, fix, kind=(dict, list))  # type: ignore[arg-type]
    records = data.get("metrics", data) if isinstance(data, dict) else data
    if isinstance(records, dict):  # {name: record}
        records = [{"name": k, **v} if isinstance(v, dict) else {"name": k, "value": v} for k, v in records.items()]
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("name"), str) for r in records
    ):
        raise damaged(path, "holds no list of metric records (each a mapping with a 'name')", fix)
    return [r for r in records if _number(r.get("value"))]  # a metric that could not be computed has no value


def _is_prior(prior: Any, n: Any) -> bool:
    """None (the run's labels are the data's), or the clusters' frequencies: num_classes numbers summing to 1."""
    if prior is None:
        return True
    return (isinstance(prior, list) and len(prior) == n and all(isinstance(p, (int, float)) and 0 <= p <= 1
            for p in prior) and abs(sum(prior) - 1) < 1e-6)


def read_generator_spec(run_dir: Path, fmt: str) -> dict[str, Any]:
    """RUN/generator.json, checked: the fields ``load_generator`` needs, with the right types."""
    path = Path(run_dir) / SPEC
    fix = (
        f"resume the run to re-export it (`ganforge train --resume {run_dir}`; every tick rewrites it) "
        "or restore the file"
    )
    spec = read_json(path, fix)
    if spec.get("format") != fmt:
        raise damaged(path, f"is not a {fmt} file (format {_clip(spec.get('format'))})", fix)
    shape, cond = spec.get("shape"), spec.get("conditioning")
    checks = [
        (isinstance(spec.get("config"), dict), "'config' is not a mapping"),
        (isinstance(spec.get("config", {}).get("model", {}), dict), "'config.model' is not a mapping"),
        (
            isinstance(shape, list) and 1 <= len(shape) <= 3 and all(_count(s) and 0 < s <= 65536 for s in shape),
            f"'shape' {_clip(shape)} is not a list of 1 to 3 sizes",
        ),
        (_count(spec.get("num_classes")) and spec["num_classes"] <= 1_000_000, "'num_classes' is not a count"),
        (
            isinstance(spec.get("class_names"), list) and all(isinstance(c, str) for c in spec["class_names"]),
            "'class_names' is not a list of names",
        ),
        (spec.get("kind") in ("image", "points"), f"'kind' {_clip(spec.get('kind'))} is not image or points"),
        (
            isinstance(cond, dict) and set(cond) == {"g", "d"} and all(isinstance(v, str) for v in cond.values()),
            "'conditioning' is not {g: ..., d: ...}",
        ),
        (_count(spec.get("mask_channels", 0)), "'mask_channels' is not a count"),
        (_is_prior(spec.get("cluster_prior"), spec.get("num_classes")),
         "'cluster_prior' is not one frequency per class"),
    ]
    for ok, what in checks:
        if not ok:
            raise damaged(path, f"is damaged: {what}", fix)
    return spec


__all__ = [
    "CKPT_DIR",
    "CONFIG",
    "EVAL",
    "EVAL_FULL_DATA",
    "EVAL_FULL_DATA_REPLAY",
    "LATEST",
    "LOG",
    "METRICS",
    "SPEC",
    "SUMMARY",
    "WEIGHTS",
    "append_record",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "is_temp_file",
    "make_new_folder",
    "read_config",
    "read_config_dict",
    "read_eval_records",
    "read_generator_spec",
    "read_history",
    "read_json",
    "read_summary",
    "read_text",
    "remove_stale_temps",
    "training_records",
    "truncate_history",
    "write_failure",
]
