"""``ganforge compare RUN_DIR...``: the sweep table, from runs that already exist.

Runs are grouped by their resolved config minus the seed (and minus keys that cannot change a
result: device, snapshot interval, TensorBoard), so three seeds of one configuration make one row.
Metrics come from each run's ``eval.json`` (with ``full_data``, its ``eval-full-data.json``: a
``data.limit`` run measured against the whole training split; with ``best``, those of RUN/best/, the
generator ``health.keep_best`` kept); the table never puts figures computed under different protocols
in one column (see ``ganforge.metrics.tables``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganforge.errors import RunDirError
from ganforge.metrics.tables import RunValues, Table, build_table, fmt, write_tables
from ganforge.training.monitor import BEST_DIR
from ganforge.training.rundir import (
    CONFIG,
    EVAL_FULL_DATA,
    EVAL_FULL_DATA_REPLAY,
    SUMMARY,
    WEIGHTS,
    read_config,
    read_eval_records,
    read_summary,
)

# Keys that differ between seeds of one configuration, or that cannot change the numbers (a preset's description is
# prose: runs of one preset trained before and after its text was edited are one configuration).
IGNORED_KEYS = ("train.seed", "train.device", "train.snapshot_ticks", "train.tensorboard", "eval.every_ticks",
                "health.every_ticks", "health.n", "health.keep_best",  # checks while training leave training alone
                "description")
EVAL_FILE = "eval.json"


@dataclass
class RunInfo:
    run_dir: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]

    @property
    def seed(self) -> int:
        return int(self.config.get("train", {}).get("seed", 0))

    def values(self) -> RunValues:
        final = {k: float(v) for k, v in (self.summary.get("final") or {}).items() if isinstance(v, (int, float))}
        return RunValues(str(self.run_dir), self.seed, self.metrics, final)


def read_eval(run_dir: Path, name: str = EVAL_FILE) -> list[dict[str, Any]]:
    """Metric records of ``eval.json`` (or ``name``, e.g. eval-full-data.json; [] when the run was not evaluated)."""
    return read_eval_records(Path(run_dir), name)


def read_run(run_dir: Path | str, full_data: bool = False, best: bool = False) -> RunInfo:
    """A run's config, summary and metric records: those of ``eval.json``, or (``full_data``) of
    ``eval-full-data.json``, read from RUN/best/ with ``best`` (the generator ``health.keep_best`` kept)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not (run_dir / CONFIG).is_file():
        raise RunDirError(f"{str(run_dir)!r} is not a ganforge run directory (no config.yaml). Check the path.")
    if not (run_dir / SUMMARY).is_file():
        raise RunDirError(
            f"{str(run_dir)!r} has no summary.json: it never finished a tick. Train or resume it first "
            f"(`ganforge train --resume {run_dir}`), or leave it out."
        )
    summary = read_summary(run_dir, require=("final",))
    folder = run_dir / BEST_DIR if best else run_dir
    name = EVAL_FULL_DATA if full_data else EVAL_FILE
    if best and not (folder / WEIGHTS).is_file():
        raise RunDirError(f"{str(run_dir)!r} kept no best generator ({BEST_DIR}/): it trained without "
                          "health.keep_best. Drop --best, or leave it out.")
    if (full_data or best) and not (folder / name).is_file():
        how = f"`ganforge evaluate {folder}{' --full-data' if full_data else ''}`"
        why = "; only data.limit runs have one" if full_data else ""
        raise RunDirError(f"{str(folder)!r} has no {name}: measure it first ({how}{why}), or leave it out.")
    return RunInfo(run_dir, read_config(run_dir).to_dict(), summary, read_eval(folder, name))


def _full_data_hints(runs: list[RunInfo]) -> list[str]:
    """A note for runs whose only metrics were measured with --full-data (the table shows their losses alone)."""
    missed = [str(r.run_dir) for r in runs if not r.metrics and (r.run_dir / EVAL_FULL_DATA).is_file()]
    if not missed:
        return []
    return [f"{', '.join(missed)}: measured with --full-data only ({EVAL_FULL_DATA}); "
            "add --full-data to compare those numbers."]


def copier_notes(runs: list[RunInfo]) -> list[str]:
    """For scale under --full-data: what a G that copies each data.limit's training examples scores (the first run of
    that limit with ``eval-full-data-baseline-replay.json``), or the command that measures it."""
    notes = []
    for limit in sorted({r.config.get("data", {}).get("limit") for r in runs}, key=lambda v: (v is None, v or 0)):
        of_limit = [r for r in runs if r.config.get("data", {}).get("limit") == limit]
        found = next((r for r in of_limit if (r.run_dir / EVAL_FULL_DATA_REPLAY).is_file()), None)
        if found is None:
            notes.append(f"for scale, what copying the {limit} training examples exactly scores: `ganforge evaluate "
                         f"{of_limit[0].run_dir} --full-data --baseline replay`.")
            continue
        shown = "; ".join(_record_text(rec) for rec in read_eval(found.run_dir, EVAL_FULL_DATA_REPLAY))
        notes.append(f"a generator that copies the {limit} training examples exactly "
                     f"({found.run_dir / EVAL_FULL_DATA_REPLAY}): {shown}.")
    return notes


def _record_text(rec: dict[str, Any]) -> str:
    """``fid 3.876 [1.771, 7.24]`` (the interval when the record has one)."""
    ci = rec.get("ci") if isinstance(rec.get("ci"), dict) else {}
    low, high = ci.get("low"), ci.get("high")
    interval = f" [{fmt(low)}, {fmt(high)}]" if all(isinstance(e, (int, float)) for e in (low, high)) else ""
    return f"{rec['name']} {fmt(rec['value'])}{interval}"


def config_key(config: dict[str, Any]) -> str:
    """A canonical text of the config without seed-like keys: equal keys -> same row."""
    flat = {k: v for k, v in flatten(config).items() if k not in IGNORED_KEYS}
    return json.dumps(flat, sort_keys=True, default=str)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _shown(value: Any) -> str:
    """A config value in a row label: an empty string shows as '' (``augment.diffaugment=''``: off)."""
    return "''" if value == "" else str(value)


def group_runs(runs: list[RunInfo]) -> dict[str, list[RunInfo]]:
    """label -> runs of one configuration. Labels: the config name, plus the keys that tell apart
    configurations sharing a name (``mnist-dcgan [model.g_extra_layers=2]``)."""
    by_key: dict[str, list[RunInfo]] = {}
    for run in runs:
        by_key.setdefault(config_key(run.config), []).append(run)
    flats = {k: {kk: vv for kk, vv in flatten(v[0].config).items() if kk not in IGNORED_KEYS}
             for k, v in by_key.items()}
    labels: dict[str, str] = {}
    for key, group in by_key.items():
        name = str(group[0].config.get("name") or group[0].run_dir.name)
        same_name = [k for k in by_key if str(by_key[k][0].config.get("name") or by_key[k][0].run_dir.name) == name]
        if len(same_name) == 1:
            labels[key] = name
            continue
        differing = sorted({kk for k in same_name for kk in flats[k] if any(flats[k].get(kk) != flats[o].get(kk)
                                                                                for o in same_name)})
        labels[key] = name + " [" + ", ".join(f"{kk}={_shown(flats[key].get(kk))}" for kk in differing) + "]"
    out: dict[str, list[RunInfo]] = {}
    for key, group in by_key.items():
        seeds = [r.seed for r in group]
        if len(set(seeds)) != len(seeds):
            dup = sorted(str(r.run_dir) for r in group)
            raise RunDirError(
                f"runs {', '.join(dup)} have the same config AND the same seed (train.seed); they are the same "
                "experiment twice and would count double. Pass one of them."
            )
        out[labels[key]] = group
    return out


def compare_runs(run_dirs: list[Path | str], out: Path | str | None = None, full_data: bool = False,
                 best: bool = False) -> tuple[Table, dict[str, list[RunInfo]]]:
    """Build (and with ``out``, write table.csv + table.md) the comparison table of existing runs.

    ``full_data``: read each run's ``eval-full-data.json`` (``ganforge evaluate RUN --full-data``)
    instead of its ``eval.json``, e.g. to compare DiffAugment on and off at a ``data.limit``.
    ``best``: read the numbers of each run's kept generator (``ganforge evaluate RUN/best``).
    """
    if not run_dirs:
        raise RunDirError("name at least one run directory, e.g. `ganforge compare runs/a runs/b`.")
    seen, runs = set(), []
    for d in run_dirs:
        p = Path(d).resolve()
        if p in seen:
            continue
        seen.add(p)
        runs.append(read_run(d, full_data, best))
    groups = group_runs(runs)
    table = build_table({label: [r.values() for r in group] for label, group in groups.items()})
    if not full_data and not best:
        table.notes.extend(_full_data_hints(runs))
    if full_data and not best:
        table.notes.extend(copier_notes(runs))
    if out is not None:
        write_tables(table, Path(out), title="ganforge compare")
    return table, groups
