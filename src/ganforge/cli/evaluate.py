"""``ganforge evaluate RUN_DIR``: metrics of a trained run, each beside its interval, floor and protocol."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ganforge.cli.launch import NPROC_HELP, relaunch

if TYPE_CHECKING:
    from ganforge.metrics.evaluate import EvalResult


class _BaselineChoice(click.Choice):
    """``--baseline``'s names, read from ganforge.metrics.baselines only when a value or its help is needed, so
    ``ganforge --help`` and ``ganforge train`` do not pay the metrics package's torch import to build this option."""

    def __init__(self) -> None:  # click.Choice's state without its eager tuple of choices
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from ganforge.metrics.baselines import BASELINES

        return tuple(BASELINES)

EVALUATE_EXAMPLES = """
\b
Examples:
  ganforge evaluate runs/dcgan
  ganforge evaluate runs/dcgan --n 10000 --metrics fid,kid,precision,recall
  ganforge evaluate runs/cgan --metrics cas,aug_gain,fid_per_class
  ganforge weights fetch inception; ganforge evaluate runs/dcgan --extractor inception
  ganforge evaluate runs/dcgan --extractor inception:clean --weights /offline/inception-2015-12-05.pt
  ganforge evaluate runs/brain --extractor torchscript:radiology-net.pt
  ganforge evaluate runs/brain --metrics lpips,diversity --lpips-weights /offline/vgg16.pt
  ganforge evaluate runs/sine            (2D points: energy, mmd, curve distance)
  ganforge evaluate runs/dcgan --baseline replay   (a generator that replays training images: must be flagged)
  ganforge evaluate runs/cgan-500 --full-data     (a data.limit=500 run against all 4,000 training digits)
  ganforge evaluate runs/cgan-500 --full-data --baseline replay   (its 500 digits copied: the same reference)
  ganforge list metrics                  (what each metric is)
"""


@click.command(epilog=EVALUATE_EXAMPLES)
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--n", "n", type=click.IntRange(min=2, max=10_000_000), default=None,
              help="Generated samples (default: the run's eval.n, 2000).")
@click.option("--metrics", "--metric", "metrics", multiple=True, metavar="NAMES",
              help="Comma-separated metric names, repeatable (default: every metric that applies).")
@click.option("--extractor", default=None,
              help="Feature extractor: domain (default), inception (= inception:legacy_tensorflow), inception:clean, "
                   "torchscript:PATH (any TorchScript network) or raw.")
@click.option("--weights", "--extractor-weights", "extractor_weights", default=None, metavar="PATH",
              help="Inception weights: NVIDIA's inception-2015-12-05.pt (or $GANFORGE_INCEPTION_WEIGHTS; default: "
                   "`ganforge weights fetch inception`'s copy), or torch-fidelity's .pth.")
@click.option("--lpips-weights", "lpips_weights", default=None, metavar="PATH",
              help="VGG16 LPIPS network vgg16.pt for the lpips metric (or $GANFORGE_VGG16_WEIGHTS, or `ganforge "
                   "weights fetch vgg16`).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the generated samples and intervals.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--n-boot", "n_boot", type=click.IntRange(min=0), default=20, show_default=True,
              help="Bootstrap replicates for FID-style intervals (0: none).")
@click.option("--baseline", type=_BaselineChoice(), default=None,
              help="Check the metrics: evaluate a fresh untrained G or a training-image replayer under this run's "
                   "protocol (writes eval-baseline-NAME.json; eval.json is left alone). With --full-data, replay "
                   "copies the run's data.limit images: the score of a G that copies what it saw.")
@click.option("--full-data", "full_data", is_flag=True,
              help="For a run trained on a data.limit subset: measure against the dataset's whole training split, "
                   "with the extractor trained on it (the limited-data protocol of ADA / DiffAugment, where copying "
                   "the few training images is not rewarded); writes eval-full-data.json.")
@click.option("--nproc", type=click.IntRange(min=1), default=None, help=NPROC_HELP)
def evaluate(run_dir: Path, n: int | None, metrics: tuple[str, ...], extractor: str | None,
             extractor_weights: str | None, lpips_weights: str | None, seed: int, device: str, n_boot: int,
             baseline: str | None, full_data: bool, nproc: int | None) -> None:
    """Evaluate a trained run against real data; writes RUN_DIR/eval.json."""
    from ganforge.metrics.evaluate import evaluate_run, parse_metric_list
    from ganforge.training import distributed
    from ganforge.training.export import load_generator

    if nproc is not None and nproc > 1:
        load_generator(run_dir)  # a wrong run directory: one line here, not one per process
        relaunch(nproc)
    world = distributed.init_from_env()
    result = evaluate_run(run_dir, n=n, metrics=parse_metric_list(metrics), extractor=extractor, seed=seed,
                          extractor_weights=extractor_weights, lpips_weights=lpips_weights, device=device,
                          n_boot=n_boot, baseline=baseline, full_data=full_data, world=world,
                          log=(lambda m: click.echo(m, err=True)) if world.main else (lambda m: None))
    distributed.shutdown()
    if world.main:
        click.echo(format_result(result))


def _fmt(x: float | None) -> str:
    from ganforge.metrics.tables import fmt

    return "—" if x is None else fmt(x)


def format_result(result: EvalResult) -> str:
    """The readable table: metric, value, 95% CI, real-vs-real floor, protocol short id."""
    from ganforge.metrics.protocol import scale_label

    rows = [("metric", "value", "95% CI", "real-vs-real", "protocol")]
    for v in result.values.values():
        k = v.display_scale  # KID is printed x 10^3, as papers print it (eval.json keeps the raw value)
        ci = f"[{_fmt(v.ci.low * k)}, {_fmt(v.ci.high * k)}]" if v.ci else "—"
        value = _fmt(v.value * k) + ("  FLAGGED" if v.flagged else "")
        name = v.name + (f" {scale_label(k)}" if k != 1.0 else "")
        rows.append((name, value, ci, _fmt(None if v.floor is None else v.floor * k), v.protocol_id[:8]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))

    ex = result.extractor
    acc = ex.get("test_accuracy")
    about = (f"{result.dataset}: {result.n_generated} generated samples (seed {result.seed}) of generator "
             f"{result.generator_sha256[:12]}" + (f" at {result.kimg:.1f} kimg" if result.kimg is not None else ""))
    if result.meta.get("full_data"):
        about += (f"; against the whole training split (the run trained on {result.meta.get('run_data_limit')} "
                  "of its images: --full-data)")
    if result.meta.get("baseline"):
        about = (f"{result.dataset}: {result.n_generated} samples (seed {result.seed}) of the BASELINE "
                 f"{result.meta['baseline']!r} generator, under this run's protocol")
        if result.meta.get("full_data"):
            about += (f" with --full-data (against the whole training split; replay copies the run's "
                      f"{result.meta.get('run_data_limit')} training images)" if result.meta["baseline"] == "replay"
                      else " with --full-data (against the whole training split)")
    lines = [about, f"extractor {ex.get('name')} ({ex.get('hash')})" + (f", test accuracy {acc:.1%}" if acc else "")
             + f"; preprocessing: {ex.get('preprocessing')}", ""] + lines
    notes = []
    for v in result.values.values():
        d = v.details
        if "value_at_floor_n" in d:
            n_floor = v.protocol.get("n_floor")
            notes.append(f"{v.name} at the floor's sample count ({n_floor}): {_fmt(d['value_at_floor_n'])}")
        if v.name == "cas":
            notes.append(f"cas: synthetic-trained {_fmt(v.value)} vs real-trained {_fmt(d.get('real_accuracy'))} "
                         f"accuracy on the real test split ({v.protocol.get('n_train_per_set')} training images each)")
        if v.name == "seg_dice":
            notes.append(f"seg_dice: U-Net trained on synthetic pairs {_fmt(v.value)} vs on real pairs "
                         f"{_fmt(d.get('real_dice'))} mean Dice on the real test split "
                         f"({v.protocol.get('n_train_per_set')} training pairs each; lesion slices only: "
                         f"{_fmt(d.get('synthetic_dice_on_lesion_slices'))} vs "
                         f"{_fmt(d.get('real_dice_on_lesion_slices'))})")
        if v.name == "memorization":
            fs, px = d.get("feature_space", {}), d.get("pixel_space", {})
            verdict = "FLAGGED: the generator reproduces training images" if v.flagged else "not flagged"
            notes.append(f"memorization: {verdict} (near-copies: {fs.get('near_copy_fraction', 0):.1%} in feature "
                         f"space, {px.get('near_copy_fraction', 0):.1%} in pixel space; chance level "
                         f"{fs.get('test_near_copy_fraction', 0):.1%})")
            for p in d.get("pictures", [])[:1]:
                notes.append(f"  closest pairs: {p}")
    if notes:
        lines += [""] + notes
    if result.skipped:
        lines += [""] + [f"skipped {k}: {r}" for k, r in result.skipped.items()]
    lines += ["", "real-vs-real: the same metric between the real test and training splits (no generator should "
                  "beat it by much); compare values only under the same protocol id."]
    if result.path is not None:
        lines.append(f"written: {result.path}")
    return "\n".join(lines)
