"""Comparison tables over seeds: mean ± std and a 95% t-interval per metric and configuration.

Shared by ``ganforge sweep`` and ``ganforge compare``. A column holds ONE metric under ONE protocol
(extractor, sample counts, reference split...): figures computed under different protocols are never
averaged or set side by side in the same column. When a table holds several protocols of one metric,
each gets its own column, titled with a short protocol id, and the notes say which runs used which.

The interval is the Student-t interval over seeds, mean ± t(0.975, n-1) · s / sqrt(n): it describes
seed-to-seed variation of the training run, not the sampling error of each metric (that one is the
``ci`` inside each run's ``eval.json``, shown by ``ganforge report``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganforge.metrics.protocol import scale_label
from ganforge.training.checkpoint import atomic_write_text

# Final training statistics reported next to the metrics (from summary.json "final").
LOSS_KEYS = ("loss_D", "loss_G", "D_real", "D_fake")


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation and 95% t-interval of values over seeds."""

    n: int
    mean: float
    std: float  # sample std (ddof=1); nan for n < 2
    ci_low: float  # nan for n < 2: one seed says nothing about seed variation
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def summarize(values: list[float], confidence: float = 0.95) -> Stat:
    """mean ± t_{(1+c)/2, n-1} · s/√n over the finite values (a diverged seed shows as a smaller n)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if n == 0:
        return Stat(0, math.nan, math.nan, math.nan, math.nan)
    mean = sum(vals) / n
    if n < 2:
        return Stat(1, mean, math.nan, math.nan, math.nan)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    from scipy.stats import t  # lazy: scipy is slow to import

    half = float(t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Stat(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Column:
    key: str  # unique column id, e.g. "fid" or "fid@1a2b3c4d"
    title: str
    kind: str  # "metric" or "final"
    metric: str = ""  # the metric name, or the summary "final" key for kind "final"
    protocol_id: str = ""
    protocol: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    higher_is_better: bool | None = None
    scale: float = 1.0  # cells and floors hold value x scale (KID: x 10^3, the unit in the title)

    @property
    def csv_key(self) -> str:
        """The CSV column prefix: the unit is in the name when the values are scaled (``kid_x1000``)."""
        return self.key if self.scale == 1.0 else f"{self.key}_x{self.scale:g}"


@dataclass
class Row:
    label: str
    runs: list[str]  # run directories, in seed order
    seeds: list[int]
    cells: dict[str, Stat]  # column key -> statistics over the seeds
    floors: dict[str, float]  # column key -> real-vs-real floor (metric columns that have one)


@dataclass
class Table:
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


@dataclass
class RunValues:
    """What one run contributes to a table: its metric records (from eval.json) and final losses."""

    run_dir: str
    seed: int
    metrics: list[dict[str, Any]]  # records {name, value, ci, protocol, protocol_id, floor}
    final: dict[str, float]


def metric_column_key(name: str, protocol_id: str, split: bool) -> str:
    return f"{name}@{protocol_id[:8]}" if split and protocol_id else name


def build_table(groups: dict[str, list[RunValues]]) -> Table:
    """One row per configuration (label -> its seeds); columns: every metric x protocol, then final losses."""
    # Which protocols does each metric appear under, and in which runs?
    protocols: dict[str, dict[str, dict[str, Any]]] = {}  # metric -> protocol_id -> protocol
    used_by: dict[tuple[str, str], list[str]] = {}
    direction: dict[str, bool | None] = {}
    scales: dict[str, float] = {}  # values are stored unscaled; a metric printed scaled (KID x 10^3) says so
    for runs in groups.values():
        for run in runs:
            for rec in run.metrics:
                pid = str(rec.get("protocol_id", ""))
                protocols.setdefault(rec["name"], {}).setdefault(pid, rec.get("protocol") or {})
                used_by.setdefault((rec["name"], pid), []).append(run.run_dir)
                direction.setdefault(rec["name"], rec.get("higher_is_better"))
                if rec.get("display_scale"):
                    scales[rec["name"]] = float(rec["display_scale"])
    columns: list[Column] = []
    notes: list[str] = []
    for name in sorted(protocols):
        split = len(protocols[name]) > 1
        if split:
            notes.append(
                f"{name} was computed under {len(protocols[name])} different protocols; they are kept in separate "
                "columns (never averaged together):"
            )
        for pid, protocol in protocols[name].items():
            key = metric_column_key(name, pid, split)
            arrow = {True: " ↑", False: " ↓"}.get(direction.get(name), "")  # ↑: higher is better
            scale = scales.get(name, 1.0)
            unit = f" {scale_label(scale)}" if scale != 1.0 else ""
            columns.append(Column(key, key + unit + arrow, "metric", name, pid, protocol, direction.get(name), scale))
            if split:
                runs = used_by[(name, pid)]
                notes.append(f"  {key}: protocol {pid or '(none)'} {_protocol_text(protocol)}; runs: {', '.join(runs)}")
    for key in LOSS_KEYS:
        if any(key in run.final for runs in groups.values() for run in runs):
            columns.append(Column(f"final_{key}", f"final {key}", "final", key))

    rows = []
    for label, runs in groups.items():
        runs = sorted(runs, key=lambda r: r.seed)
        cells, floors = {}, {}
        for col in columns:
            if col.kind == "final":
                cells[col.key] = summarize([r.final[col.metric] for r in runs if col.metric in r.final])
                continue
            values, floor_values = [], []
            for r in runs:
                for rec in r.metrics:
                    if rec["name"] == col.metric and str(rec.get("protocol_id", "")) == col.protocol_id:
                        if rec.get("value") is not None:
                            values.append(float(rec["value"]) * col.scale)
                        if rec.get("floor") is not None:
                            floor_values.append(float(rec["floor"]) * col.scale)
            if values:
                cells[col.key] = summarize(values)
            if floor_values:
                floors[col.key] = sum(floor_values) / len(floor_values)
        rows.append(Row(label, [r.run_dir for r in runs], [r.seed for r in runs], cells, floors))
    return Table(columns, rows, notes)


def _protocol_text(protocol: dict[str, Any]) -> str:
    if not protocol:
        return ""
    return "(" + ", ".join(f"{k}={v}" for k, v in protocol.items() if not isinstance(v, (dict, list))) + ")"


# ----------------------------------------------------------------------------------------------
# rendering


def fmt(x: float, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if abs(x) >= 1 else f"{x:.{digits}f}".rstrip("0").rstrip(".") or "0"


def cell_text(stat: Stat | None) -> str:
    """``12.3 ± 0.4 [11.3, 13.3]`` (n=1: the value alone; no seed variation to show)."""
    if stat is None or stat.n == 0:
        return "—"
    if stat.n == 1:
        return f"{fmt(stat.mean)} (1 seed)"
    return f"{fmt(stat.mean)} ± {fmt(stat.std)} [{fmt(stat.ci_low)}, {fmt(stat.ci_high)}]"


def to_markdown(table: Table, title: str = "") -> str:
    lines = [f"# {title}", ""] if title else []
    header = ["configuration", "seeds"] + [c.title for c in table.columns]
    lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
    lines.append("| " + " | ".join(["---"] * len(header)) + " |")
    for row in table.rows:
        cells = [_md_escape(row.label), str(len(row.seeds))] + [cell_text(row.cells.get(c.key)) for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: mean ± sample std over seeds [95% t-interval over seeds]; ↑/↓: higher/lower is better. "
                 "`final X`: the training statistic at the last tick (losses, mean D(x), mean D(G(z))).")
    for col in table.columns:
        if col.scale != 1.0:
            lines.append(f"{col.key} is printed {scale_label(col.scale)} (the value times {col.scale:g}), as papers "
                         "print it; eval.json keeps the unscaled value.")
    floors = [(c, r.floors[c.key]) for c in table.columns for r in table.rows if c.key in r.floors]
    seen: dict[str, float] = {}
    for col, value in floors:
        seen.setdefault(col.key, value)
    if seen:
        lines.append("Real-vs-real floor (the value two real samples of the same size reach): "
                     + ", ".join(f"{k} {fmt(v)}" for k, v in seen.items()) + ".")
    for col in table.columns:
        if col.kind == "metric" and col.protocol_id:
            lines.append(f"Protocol of {col.key}: `{col.protocol_id}` {_protocol_text(col.protocol)}")
    if table.notes:
        lines.append("")
        lines.extend(table.notes)
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_csv(table: Table) -> str:
    """Machine-readable: per column mean, std, ci_low, ci_high, n (and the floor for metrics)."""
    header = ["configuration", "seeds", "runs"]
    for c in table.columns:
        k = c.csv_key
        header += [f"{k}_mean", f"{k}_std", f"{k}_ci_low", f"{k}_ci_high", f"{k}_n"]
        if c.kind == "metric":
            header += [f"{k}_floor", f"{k}_protocol_id"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in table.rows:
        out: list[Any] = [row.label, " ".join(map(str, row.seeds)), " ".join(row.runs)]
        for c in table.columns:
            s = row.cells.get(c.key)
            out += [_num(s.mean), _num(s.std), _num(s.ci_low), _num(s.ci_high), s.n] if s else ["", "", "", "", 0]
            if c.kind == "metric":
                out += [_num(row.floors.get(c.key)), c.protocol_id]
        w.writerow(out)
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))


def write_tables(table: Table, out_dir: Path, title: str = "") -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "table.csv", out_dir / "table.md"
    atomic_write_text(csv_path, to_csv(table))
    atomic_write_text(md_path, to_markdown(table, title))
    return csv_path, md_path
