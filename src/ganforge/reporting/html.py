"""``ganforge report``: one self-contained static HTML file per run or sweep.

Everything is inside the file: images as base64 ``data:`` URIs, CSS inline, no script, no external
URL, so it opens offline and can be mailed or archived as it is. Every string that comes from a user
(config values, names, labels, class names, paths, metric protocols) goes through ``html.escape``.

A run report shows: summary and config, loss curves, mean D(x) and D(G(z)), the metric table with
confidence intervals and the real-vs-real floor, sample grids over training and an animated
progression, class-wise grids (conditional runs), real beside synthetic samples, and the
memorisation audit's closest pairs. A sweep report shows the comparison table, one interval plot per
metric, and a short section per configuration.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from pathlib import Path
from typing import Any

import yaml

import ganforge
from ganforge.errors import GanforgeError, RunDirError
from ganforge.metrics.protocol import scale_label
from ganforge.metrics.tables import Table, cell_text, fmt
from ganforge.reporting.figures import (
    ada_plot,
    d_scores_plot,
    evenly_spaced,
    interval_plot,
    png_bytes,
    progression_gif,
    scatter_plot,
)
from ganforge.training.rundir import (
    EVAL_FULL_DATA,
    EVAL_FULL_DATA_REPLAY,
    SUMMARY,
    SUMMARY_KEYS,
    read_config,
    read_history,
    read_summary,
    training_records,
)

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1150px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;border-bottom:1px solid #d6dae1;padding-bottom:4px;margin-top:2em}
h3{font-size:1.05em;margin:1.2em 0 .4em}
section{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:12px 18px;margin:14px 0}
table{border-collapse:collapse;font-size:.9em;margin:6px 0}
td,th{border:1px solid #d6dae1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f1f3f6;padding:10px;overflow:auto;font-size:.82em;max-height:480px}
figure{display:inline-block;margin:6px 10px 6px 0;vertical-align:top}
figcaption{font-size:.8em;color:#555;text-align:center}
img{max-width:100%;image-rendering:pixelated}img.plot{image-rendering:auto}
.note{color:#555;font-size:.88em}.warn{color:#8a4b00}.muted{color:#777}
.pair{display:flex;gap:18px;flex-wrap:wrap}.pair figure{flex:1 1 300px}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def img_tag(data: bytes, alt: str, mime: str = "image/png", css: str = "", width: int | None = None) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    attrs = f' class="{css}"' if css else ""
    attrs += f' width="{width}"' if width else ""
    return f'<img src="data:{mime};base64,{b64}" alt="{esc(alt)}"{attrs}>'


def figure(data: bytes | None, caption: str, mime: str = "image/png", css: str = "", width: int | None = None) -> str:
    if not data:
        return ""
    return f"<figure>{img_tag(data, caption, mime, css, width)}<figcaption>{esc(caption)}</figcaption></figure>"


def page(title: str, body: str) -> str:
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>\n{body}\n"
        f"<p class=\"muted\">made by ganforge {esc(ganforge.__version__)} on {esc(made)}; "
        "self-contained: every picture is embedded in this file.</p></main></body></html>\n"
    )


def kv_table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows if v not in (None, ""))
    return f"<table>{cells}</table>"


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    """summary.json, checked (a damaged one is an error naming it); None when the run never finished a tick."""
    return read_summary(run_dir, require=SUMMARY_KEYS) if (run_dir / SUMMARY).exists() else None


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return read_history(run_dir)[0]


# ----------------------------------------------------------------------------------------------
# run report


def run_sections(run_dir: Path, *, heading_level: int = 2, full: bool = True) -> str:
    """The body of a run report (used whole for a run, in short form for each sweep configuration)."""
    from ganforge.experiments.compare import read_eval

    h = f"h{heading_level}"
    config = read_config(run_dir).to_dict()
    summary = _read_summary(run_dir) or {}
    records = _records(run_dir)
    train_records = training_records(records)
    parts: list[str] = []

    last = train_records[-1] if train_records else {}
    facts = [("run directory", str(run_dir)), ("name", config.get("name")),
             ("description", config.get("description")), ("variant", config.get("variant")),
             ("dataset", summary.get("dataset") or _section(config, "data").get("name")),
             ("architecture", _section(config, "model").get("arch")),
             ("loss", _section(config, "objective").get("loss")),
             ("seed", _section(config, "train").get("seed")),
             ("trained", f"{summary['kimg']:.2f} kimg ({summary['images_seen']:,} images, {summary['ticks']} ticks)"
              if summary.get("images_seen") is not None else "no summary.json: the run never finished a tick"),
             ("wall time", f"{summary['wall_time_s']:.1f} s on {summary.get('device', '?')}"
              if summary.get("wall_time_s") is not None else None),
             ("generator", f"sha256 {summary.get('generator_sha256')}" + (" (EMA)" if summary.get("ema") else "")),
             ("versions", f"ganforge {summary.get('ganforge_version', '?')}, "
                          f"torch {summary.get('torch_version', '?')}")]
    parts.append(f"<section><{h}>Summary</{h}>{kv_table(facts)}")
    if last:
        final = [(k, fmt(last[k])) for k in ("loss_D", "loss_G", "D_real", "D_fake", "D_acc") if k in last]
        parts.append("<p class=\"note\">last tick: " + ", ".join(f"{esc(k)} {esc(v)}" for k, v in final)
                     + ". D accuracy is no measure of sample quality.</p>")
    parts.append("</section>")

    parts.append(f"<section><{h}>Training curves</{h}>")
    losses = run_dir / "losses.png"
    parts.append(figure(losses.read_bytes() if losses.is_file() else None, "losses, D scores and D accuracy per tick",
                        css="plot"))
    parts.append(figure(d_scores_plot(train_records, "mean D(x) and mean D(G(z))"),
                        "mean D(x) (real) and mean D(G(z)) (generated): near 0.5 and close together, D is unsure",
                        css="plot"))
    if any("ada_p" in r for r in train_records):  # StyleGAN2 + ADA: p per tick, as it followed r_t to its target
        last_p = train_records[-1].get("ada_p", 0.0)
        parts.append(figure(ada_plot(train_records), f"ADA: augmentation probability p per tick (last {last_p:.3f}) "
                            "and r_t; p rises while D overfits (r_t above the target)", css="plot"))
    parts.append("</section>")

    evals = read_eval(run_dir)
    full_evals = read_eval(run_dir, EVAL_FULL_DATA)  # a data.limit run against the whole training split
    parts.append(f"<section><{h}>Metrics</{h}>{metric_table(evals) if evals else _no_eval(run_dir, full_evals)}"
                 "</section>")
    if full_evals:
        limit = _section(config, "data").get("limit")
        parts.append(f"<section><{h}>Metrics against the whole training split</{h}><p class=\"note\">"
                     f"<code>ganforge evaluate --full-data</code>: this run trained on {esc(limit)} images "
                     "(data.limit); its samples are measured against every training image, so copying the few it "
                     f"saw is not rewarded.</p>{metric_table(full_evals)}{_copier(run_dir, limit)}</section>")

    health = health_section([r for r in records if r.get("type") == "health"], h)
    if health:
        parts.append(health)

    parts.append(f"<section><{h}>Samples over training</{h}>{_progression(run_dir, train_records, full)}</section>")

    gen_part = _generator_sections(run_dir, config, h, full)
    if gen_part:
        parts.append(gen_part)

    audit = _audit(run_dir, evals, h)
    if audit:
        parts.append(audit)

    if full:
        parts.append(f"<section><{h}>Config</{h}><details open><summary>resolved config.yaml</summary>"
                     f"<pre>{esc(yaml.safe_dump(config, sort_keys=False))}</pre></details></section>")
    return "\n".join(p for p in parts if p)


def _copier(run_dir: Path, limit: Any) -> str:
    """The reference a limited-data run is read against: a G that copies its data.limit images exactly."""
    from ganforge.experiments.compare import read_eval

    replay = read_eval(run_dir, EVAL_FULL_DATA_REPLAY)
    if not replay:
        return (f"<p class=\"note\">For scale: <code>ganforge evaluate {esc(run_dir)} --full-data --baseline "
                f"replay</code> scores a generator that copies the run's {esc(limit)} training examples exactly.</p>")
    return (f"<p class=\"note\">For scale, a generator that copies the run's {esc(limit)} training examples exactly "
            "(<code>--full-data --baseline replay</code>), under the same protocol:</p>" + metric_table(replay))


HEALTH_COLUMNS = ("recall", "coverage", "precision", "fid", "diversity", "class_acc")


def health_section(checks: list[dict[str, Any]], h: str) -> str:
    """The collapse checks made while training (``health.every_ticks``): one row per check, warnings first."""
    if not checks:
        return ""
    cols = [c for c in HEALTH_COLUMNS if any(isinstance(r.get(c), (int, float)) for r in checks)]
    head = "<tr><th>tick</th><th>kimg</th>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "<th>warnings</th></tr>"
    floor = checks[-1]
    rows = ["<tr><td>real</td><td></td>" + "".join(f"<td class=\"num\">{esc(fmt(floor.get(c + '_floor')))}</td>"
                                                   for c in cols) + "<td class=\"note\">real test vs train</td></tr>"]
    for r in checks:
        warn = "; ".join(str(w) for w in r.get("warnings") or [])
        best = " (best)" if r.get("best") else ""
        rows.append(f"<tr><td>{esc(r.get('tick'))}{best}</td><td class=\"num\">{esc(fmt(r.get('kimg')))}</td>"
                    + "".join(f"<td class=\"num\">{esc(fmt(r.get(c)))}</td>" for c in cols)
                    + f"<td class=\"warn\">{esc(warn)}</td></tr>")
    collapsed = [r for r in checks if r.get("collapse")]
    if not collapsed:
        verdict = f"<p class=\"note\">no collapse seen in {len(checks)} checks.</p>"
    elif checks[-1].get("collapse"):
        verdict = (f"<p><strong class=\"warn\">collapse suspected at {len(collapsed)} of {len(checks)} checks, "
                   f"the last one included</strong> (first at tick {esc(collapsed[0].get('tick'))}): see the warnings "
                   "below.</p>")
    else:  # early checks often see alike samples (an EMA copy in its first half-lives): gone by the end
        verdict = (f"<p class=\"note\">alike samples at {len(collapsed)} of {len(checks)} checks (first at tick "
                   f"{esc(collapsed[0].get('tick'))}, last at tick {esc(collapsed[-1].get('tick'))}); not at the last "
                   "check.</p>")
    kept = [r for r in checks if r.get("best")]
    if kept:
        verdict += (f"<p class=\"note\">best/ holds the generator of tick {esc(kept[-1].get('tick'))} "
                    f"(best {esc(kept[-1].get('keep_best'))}).</p>")
    return (f"<section><{h}>Health checks during training</{h}>{verdict}<table>{head}{''.join(rows)}</table>"
            f"<p class=\"note\">{esc(floor.get('n'))} samples per check in the {esc(floor.get('extractor'))} "
            "extractor's features, fixed latents; diversity is the samples' feature spread over real data's (lowest "
            "class for conditional runs). Checks, not evaluations: use ganforge evaluate for reported numbers.</p>"
            "</section>")


PROTOCOL_SHORT = ("extractor", "n_generated", "n_reference", "reference_split")


def metric_table(evals: list[dict[str, Any]]) -> str:
    head = ("<tr><th>metric</th><th>value</th><th>confidence interval</th><th>real-vs-real floor</th>"
            "<th>protocol</th></tr>")
    rows = []
    for rec in evals:
        ci = rec.get("ci") or {}
        scale = float(rec.get("display_scale") or 1.0)  # KID is printed x 10^3, as papers print it
        ci_text = (f"[{fmt(ci['low'] * scale)}, {fmt(ci['high'] * scale)}] ({ci.get('method', '')})"
                   if isinstance(ci, dict) and ci.get("low") is not None else "—")
        floor = rec.get("floor") if rec.get("floor") is None else rec["floor"] * scale
        unit = f" {scale_label(scale)}" if scale != 1.0 else ""
        protocol = rec.get("protocol") or {}
        if not isinstance(protocol, dict):
            protocol = {"protocol": protocol}
        short = ", ".join(f"{k}={protocol[k]}" for k in PROTOCOL_SHORT if k in protocol)
        full = ", ".join(f"{k}={v}" for k, v in protocol.items())
        pid = str(rec.get("protocol_id", ""))[:12]
        arrow = {True: " ↑", False: " ↓"}.get(rec.get("higher_is_better"), "")
        flag = " <strong class=\"warn\">FLAGGED</strong>" if rec.get("flagged") else ""
        value = rec["value"] * scale if rec.get("value") is not None else None
        rows.append(f"<tr><td>{esc(rec['name'] + unit)}{arrow}</td><td class=\"num\">{esc(fmt(value))}{flag}</td>"
                    f"<td>{esc(ci_text)}</td><td class=\"num\">{esc(fmt(floor) if floor is not None else '—')}</td>"
                    f"<td><details><summary><code>{esc(pid)}</code> <span class=\"note\">{esc(short)}</span>"
                    f"</summary><span class=\"note\">{esc(full)}</span></details></td></tr>")
    return (f"<table>{head}{''.join(rows)}</table><p class=\"note\">↑/↓: higher/lower is better. The real-vs-real "
            "floor is the value real data reaches against real data (test vs train split): a generator is not expected "
            "to do better. Compare numbers only under the same protocol id (click one for the full protocol).</p>")


def _no_eval(run_dir: Path, full_evals: list[dict[str, Any]] | None = None) -> str:
    if full_evals:
        return ("<p class=\"note\">not evaluated against its own training images (<code>ganforge evaluate "
                f"{esc(run_dir)}</code>); its numbers against the whole training split follow.</p>")
    return (f"<p class=\"note\">not evaluated yet: run <code>ganforge evaluate {esc(run_dir)}</code> "
            "and make the report again.</p>")


def _progression(run_dir: Path, records: list[dict[str, Any]], full: bool) -> str:
    grids = sorted((run_dir / "grids").glob("tick-*.png"))
    if not grids:
        samples = run_dir / "samples.png"
        return figure(samples.read_bytes() if samples.is_file() else None, "samples") or "<p>no sample grids.</p>"
    kimg_at = {r["tick"]: r["kimg"] for r in records if "tick" in r}
    out = []
    for path in evenly_spaced(grids, 6 if full else 3):
        tick = int(path.stem.split("-")[1])
        cap = f"tick {tick}" + (f", {kimg_at[tick]:.1f} kimg" if tick in kimg_at else "")
        out.append(figure(path.read_bytes(), cap, width=300 if full else 220))
    gif = progression_gif(grids) if full else None
    if gif:
        out.append("<h3>Progression</h3>" + figure(gif, f"all {len(grids)} ticks, fixed latents", mime="image/gif"))
    return "".join(out)


def _generator_sections(run_dir: Path, config: dict[str, Any], h: str, full: bool) -> str:
    """Class-wise grids and real beside synthetic, both from the exported generator."""
    if not full or not (run_dir / "generator.json").is_file():
        return ""
    import torch

    from ganforge.training.export import load_generator
    from ganforge.training.grids import image_grid

    parts = []
    try:
        gen = load_generator(run_dir)
    except GanforgeError as e:
        return f"<section><{h}>Generator</{h}><p class=\"warn\">{esc(e)}</p></section>"
    if gen.spec.get("translation"):  # a translator draws no samples: its rows are eval/translations*.png
        return ""
    if gen.conditional and gen.kind == "image":
        rows = []
        per = 10
        for k in range(gen.num_classes):
            x, _ = gen.sample(per, seed=1000 + k, labels=torch.full((per,), k, dtype=torch.long))
            name = gen.class_names[k] if k < len(gen.class_names) else str(k)
            grid = png_bytes(image_grid(x, nrow=per, scale=2, mask_channels=gen.mask_channels))
            rows.append(f"<tr><th>{esc(k)}: {esc(name)}</th><td>{img_tag(grid, f'class {name}')}</td></tr>")
        parts.append(f"<section><{h}>Samples per class</{h}><table>{''.join(rows)}</table>"
                     "<p class=\"note\">10 samples of each class from the exported generator"
                     + (" (EMA)" if gen.spec.get("ema") else "") + ".</p></section>")

    real_html = ""
    try:
        from ganforge.config import config_from_dict
        from ganforge.data import load_dataset

        data = load_dataset(config_from_dict(config).data, "train")
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
        if gen.kind == "image":
            n = 64
            labels = (torch.arange(n) % gen.num_classes) if gen.conditional else None
            fake, _ = gen.sample(n, seed=0, labels=labels)
            real = data.x[idx[:n]]
            real_grid = png_bytes(image_grid(real, nrow=8, mask_channels=data.mask_channels))
            fake_grid = png_bytes(image_grid(fake, nrow=8, mask_channels=gen.mask_channels))
            real_html = ("<div class=\"pair\">" + figure(real_grid, f"real ({data.name})")
                         + figure(fake_grid, "synthetic") + "</div>")
        else:
            fake, _ = gen.sample(len(data), seed=0)
            real_html = figure(scatter_plot(data.x.numpy(), fake.numpy()), f"real ({data.name}) and generated points",
                               css="plot")
    except (GanforgeError, OSError) as e:
        real_html = f"<p class=\"warn\">real samples are not available here: {esc(e)}</p>"
    parts.append(f"<section><{h}>Real beside synthetic</{h}>{real_html}</section>")
    return "\n".join(parts)


def _audit(run_dir: Path, evals: list[dict[str, Any]], h: str) -> str:
    eval_dir = run_dir / "eval"
    pictures = sorted(eval_dir.glob("*.png")) if eval_dir.is_dir() else []
    if not pictures:
        return ""
    pairs = [p for p in pictures if p.name.startswith("closest_pairs")]
    other = [p for p in pictures if p not in pairs]
    parts = []
    if pairs:
        memo = next((r for r in evals if r["name"] == "memorization"), None)
        verdict = ""
        if memo is not None:
            d = memo.get("details") or {}
            fs, px = d.get("feature_space") or {}, d.get("pixel_space") or {}
            flagged = "FLAGGED: the generator reproduces training images" if memo.get("flagged") else "not flagged"
            verdict = (f"<p><strong>{esc(flagged)}</strong>: memorization score {esc(fmt(memo['value']))}"
                       + (f"; near-copies {fs.get('near_copy_fraction', 0):.1%} in feature space, "
                          f"{px.get('near_copy_fraction', 0):.1%} in pixel space (chance level "
                          f"{fs.get('test_near_copy_fraction', 0):.1%})" if fs else "") + ".</p>")
        captions = {"closest_pairs.png": "closest pairs in feature space: generated (top) over nearest training image",
                    "closest_pairs_pixel.png": "closest pairs in pixel space: generated (top) over nearest training "
                                               "image"}
        parts.append(f"<section><{h}>Memorisation audit</{h}>{verdict}"
                     + "".join(figure(p.read_bytes(), captions.get(p.name, p.stem.replace("_", " "))) for p in pairs)
                     + "<p class=\"note\">Near-identical pairs would mean the generator copies its training data.</p>"
                     "</section>")
    if other:
        parts.append(f"<section><{h}>Evaluation figures</{h}>"
                     + "".join(figure(p.read_bytes(), p.stem.replace("_", " ")) for p in other) + "</section>")
    return "\n".join(parts)


def run_report(run_dir: Path | str) -> str:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(f"{str(run_dir)!r} is neither a ganforge run (no config.yaml) nor a sweep folder "
                          "(no plan.json). Point `ganforge report` at one of them.")
    config = read_config(run_dir).to_dict()
    title = f"ganforge run: {config.get('name') or run_dir.name}"
    return page(title, f"<h1>{esc(title)}</h1>\n" + run_sections(run_dir))


# ----------------------------------------------------------------------------------------------
# sweep report


def table_html(table: Table) -> str:
    head = "<tr><th>configuration</th><th>seeds</th>" + "".join(f"<th>{esc(c.title)}</th>" for c in table.columns)
    head += "</tr>"
    rows = []
    for row in table.rows:
        cells = "".join(f"<td class=\"num\">{esc(cell_text(row.cells.get(c.key)))}</td>" for c in table.columns)
        rows.append(f"<tr><td>{esc(row.label)}</td><td class=\"num\">{esc(len(row.seeds))}</td>{cells}</tr>")
    floors = {c.key: r.floors[c.key] for r in table.rows for c in table.columns if c.key in r.floors}
    if floors:
        cells = "".join(f"<td class=\"num\">{esc(fmt(floors[c.key])) if c.key in floors else ''}</td>"
                        for c in table.columns)
        rows.append(f"<tr><td><em>real-vs-real floor</em></td><td></td>{cells}</tr>")
    notes = "".join(f"<p class=\"warn\">{esc(n)}</p>" for n in table.notes)
    return (f"<table>{head}{''.join(rows)}</table><p class=\"note\">mean ± sample std over seeds "
            f"[95% t-interval over seeds]; final X: training statistic at the last tick.</p>{notes}")


def _interval_plots(table: Table) -> str:
    out = []
    for col in table.columns:
        if col.kind != "metric":
            continue
        rows = [r for r in table.rows if col.key in r.cells and r.cells[col.key].n > 0]
        if not rows:
            continue
        stats = [r.cells[col.key] for r in rows]
        floors = [r.floors[col.key] for r in rows if col.key in r.floors]
        data = interval_plot([r.label for r in rows], [s.mean for s in stats], [s.ci_low for s in stats],
                             [s.ci_high for s in stats], col.title, floors[0] if floors else None)
        out.append(figure(data, f"{col.title} by configuration", css="plot"))
    return "".join(out)


def sweep_report(sweep_dir: Path | str) -> str:
    from ganforge.experiments.sweep import PLAN, load_sweep_dir, plan_evaluation, run_values, sweep_notes
    from ganforge.metrics.tables import build_table

    sweep_dir = Path(sweep_dir)
    plan, groups = load_sweep_dir(sweep_dir)
    spec = plan_evaluation(plan, sweep_dir / PLAN)  # full-data or best-generator sweeps: the numbers they wrote
    table = build_table({label: [run_values(d, spec) for d in dirs] for label, dirs in groups.items() if dirs})
    table.notes.extend(sweep_notes(spec, [d for dirs in groups.values() for d in dirs]))
    title = f"ganforge sweep: {plan.get('name', sweep_dir.name)}"
    planned = len(plan.get("runs", []))
    done = sum(len(v) for v in groups.values())
    body = [f"<h1>{esc(title)}</h1>"]
    if plan.get("description"):
        body.append(f"<p>{esc(plan['description'])}</p>")
    ev = plan.get("evaluate")
    body.append(kv_table([("sweep folder", str(sweep_dir)), ("runs", f"{done} of {planned} planned runs have results"),
                          ("configurations", len(groups)),
                          ("evaluation", json.dumps(ev) if ev else "none (training statistics only)")]))
    body.append(f"<section><h2>Comparison</h2>{table_html(table)}{_interval_plots(table)}</section>")
    overrides = {(r["label"], r["seed"]): r.get("overrides", []) for r in plan.get("runs", [])}
    for label, dirs in groups.items():
        body.append(f"<section><h2>{esc(label)}</h2>")
        if not dirs:
            body.append("<p class=\"warn\">no finished run yet.</p></section>")
            continue
        first = dirs[0]
        seed_overrides = next((v for (lab, _), v in overrides.items() if lab == label), [])
        shown = [o for o in seed_overrides if not o.startswith("train.seed=")]
        body.append(f"<p class=\"note\">overrides: <code>{esc(' '.join(shown) or '(none)')}</code>; "
                    f"runs: {esc(', '.join(str(d.relative_to(sweep_dir)) for d in dirs))}</p>")
        figs = []
        for d in dirs:
            seed = (read_config(d).to_dict().get("train") or {}).get("seed")
            samples = d / "samples.png"
            summ = _read_summary(d) or {}
            final = summ.get("final") or {}
            cap = f"seed {seed}: " + ", ".join(f"{k} {fmt(final[k])}" for k in ("loss_D", "loss_G") if k in final)
            figs.append(figure(samples.read_bytes() if samples.is_file() else None, cap, width=260))
        body.append("".join(figs))
        losses = first / "losses.png"
        body.append(figure(losses.read_bytes() if losses.is_file() else None, f"training curves, {first.name}",
                           css="plot"))
        body.append("</section>")
    return page(title, "\n".join(body))


def write_report(path: Path | str, out: Path | str | None = None) -> Path:
    """Report for a run directory or a sweep folder; default file: PATH/report.html."""
    from ganforge.experiments.sweep import PLAN
    from ganforge.training.rundir import atomic_write_text

    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{str(path)!r} does not exist or is not a folder; give a run directory or a sweep folder.")
    text = sweep_report(path) if (path / PLAN).is_file() else run_report(path)
    target = Path(out) if out is not None else path / "report.html"
    if target.is_dir():
        raise RunDirError(f"--out {str(target)!r} is a folder; give a file name, e.g. --out {target / 'report.html'}.")
    atomic_write_text(target, text)
    return target


def data_uri_images(text: str) -> list[tuple[str, bytes]]:
    """(mime, bytes) of every embedded image: for checks that every picture decodes."""
    import re

    out = []
    for m in re.finditer(r'src="data:(image/[a-z+]+);base64,([A-Za-z0-9+/=]+)"', text):
        out.append((m.group(1), base64.b64decode(m.group(2))))
    return out


__all__ = ["data_uri_images", "esc", "run_report", "sweep_report", "write_report"]
