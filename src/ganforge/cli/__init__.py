"""The ``ganforge`` command line: thin; each subcommand calls one library function.

User errors (``GanforgeError``) print one line naming the problem and the fix and exit with code 2;
no traceback. Everything beyond the long flags goes through dotted overrides: ``--set train.kimg=50``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ganforge.cli.launch import NPROC_HELP
from ganforge.errors import GanforgeError

TRAIN_EXAMPLES = """
\b
Examples:
  ganforge train sine --set train.kimg=20
  ganforge train mnist-dcgan --out runs/dcgan --set train.kimg=60 --set train.seed=1
  ganforge train pathmnist-dcgan --set data.path=~/.medmnist/pathmnist.npz
  ganforge train my-config.yaml --dry-run
  ganforge train --resume runs/dcgan --set train.kimg=120
  ganforge train mnist-dcgan --nproc 4 --out runs/dcgan4          (4 processes, one per GPU; same global batch)
  torchrun --nproc-per-node 8 -m ganforge train mnist-dcgan       (the same, launched by torchrun)
"""


class _Main(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GanforgeError as e:
            click.secho(f"error: {_one_line(str(e))}", fg="red", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("\ninterrupted. Checkpoints already written are intact: continue with "
                       "`ganforge train --resume RUN_DIR`.", err=True)
            sys.exit(130)
        except OSError as e:  # the machine, not ganforge: a full or read-only disk, a path that is a file, ...
            from ganforge.training.rundir import write_failure

            click.secho(f"error: {_one_line(write_failure(Path(e.filename or '?'), e, 'use'))}", fg="red", err=True)
            sys.exit(2)
        except MemoryError:
            click.secho("error: out of memory. Lower train.batch_size, --n or the model size "
                        "(files written before are kept).", fg="red", err=True)
            sys.exit(2)


def _one_line(text: str, limit: int = 1200) -> str:
    """Messages are one line whatever went into them (a value from a file may hold newlines)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ganforge")
def main() -> None:
    """ganforge: train, evaluate and compare GANs, and turn them into synthetic datasets."""


@main.command(epilog=TRAIN_EXAMPLES)
@click.argument("source", required=False, metavar="PRESET|CONFIG.yaml")
@click.option("--out", "out", default=None, help="Run directory to create (default: runs/NAME, a fresh name).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--resume", "resume", default=None, metavar="RUN_DIR", help="Continue a run exactly where it stopped.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on in a terminal).")
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="Data-parallel over N local processes (one per GPU, or CPU processes), launched with torchrun; "
                   "train.batch_size stays the global batch.")
def train(source: str | None, out: str | None, overrides: tuple[str, ...], resume: str | None, dry_run: bool,
          progress: bool | None, nproc: int | None) -> None:
    """Train a GAN from a preset or a YAML config."""
    from ganforge.experiments.runner import resume_config, resume_run, start_run
    from ganforge.presets import load_config
    from ganforge.training import distributed

    show = sys.stderr.isatty() if progress is None else progress
    if nproc is not None and nproc > 1 and not dry_run:
        _launch(nproc, source, out, overrides, resume)
        return
    world = distributed.init_from_env()  # a rank of torchrun joins its process group; else one process
    if resume:
        if source or out:
            raise GanforgeError("--resume takes the run directory alone; drop the preset and --out.")
        if dry_run:
            click.echo(resume_config(Path(resume), overrides).to_yaml())
            return
        result = resume_run(Path(resume), overrides, progress=show, on_tick=_eval_hook())
    else:
        if not source:
            raise GanforgeError(
                "name a preset or a YAML config, e.g. `ganforge train sine` (see `ganforge list presets`)."
            )
        cfg = load_config(source, overrides)
        if dry_run:
            click.echo(cfg.to_yaml())
            return
        result = start_run(cfg, out, progress=show, on_tick=_eval_hook(cfg))
    distributed.shutdown()
    if world.main:
        _print_done(result)


def _launch(nproc: int, source: str | None, out: str | None, overrides: tuple[str, ...], resume: str | None) -> None:
    """--nproc N: check what a user can get wrong here (one clear message, as without --nproc), then run the
    same command under torchrun and pass on its exit code."""
    from ganforge.cli.launch import check_not_under_torchrun, relaunch
    from ganforge.experiments.runner import new_run_dir, resume_config
    from ganforge.presets import load_config
    from ganforge.training import distributed
    from ganforge.training.setup import prepare

    check_not_under_torchrun()
    if resume:
        cfg = resume_config(Path(resume), overrides)
    elif not source:
        raise GanforgeError("name a preset or a YAML config, e.g. `ganforge train sine --nproc 2`.")
    else:
        cfg = load_config(source, overrides)
        if out is not None:
            new_run_dir(out, cfg.name)  # an existing --out fails here, before any process starts
    distributed.check_batch(cfg.train.batch_size, distributed.World(0, nproc))
    prepare(cfg)
    relaunch(nproc)


def _print_done(result) -> None:
    s = result.summary
    nxt = f"ganforge generate {result.run_dir} --n 64 --out {result.run_dir / 'generated'}"
    if _is_translation(result.run_dir):
        nxt = f"ganforge translate {result.run_dir} --input DIR --out {result.run_dir / 'translated'}"
    click.echo(
        f"done: {s['kimg']:.1f} kimg ({s['images_seen']:,} images) in {s['wall_time_s']:.1f} s on "
        f"{s.get('device', '?')}\n"
        f"  samples:   {result.run_dir / 'samples.png'}  (all ticks in {result.run_dir / 'grids'})\n"
        f"  losses:    {result.run_dir / 'losses.png'}\n"
        f"  generator: {result.run_dir / 'generator.safetensors'}  sha256 {str(s.get('generator_sha256'))[:16]}...\n"
        f"  next:      {nxt}"
    )


def _is_translation(run_dir: Path) -> bool:
    """Whether the run's exported network translates images (pix2pix, CycleGAN) rather than drawing samples."""
    import json

    try:
        return bool(json.loads((run_dir / "generator.json").read_text()).get("translation"))
    except (OSError, ValueError, AttributeError):
        return False


def _eval_hook(cfg=None):
    """Periodic evaluation during training, when eval.every_ticks > 0 and the evaluate module exists."""
    try:
        from ganforge.metrics.evaluate import periodic_eval_hook
    except ImportError:
        return None
    return periodic_eval_hook(cfg)


@main.command()
@click.option("--out", "out", default=None, help="Run directory (default: runs/demo, runs/demo-2, ...).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a key of the demo preset (repeatable), e.g. --set train.kimg=20 for a shorter demo.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on in a terminal).")
def demo(out: str | None, overrides: tuple[str, ...], progress: bool | None) -> None:
    """The default end-to-end job: train the `demo` preset on the offline MNIST digits, evaluate it, write the
    HTML report, and print where everything is."""
    from ganforge.cli.evaluate import format_result
    from ganforge.experiments.runner import start_run
    from ganforge.metrics.evaluate import evaluate_run
    from ganforge.presets import load_config
    from ganforge.reporting.html import write_report

    show = sys.stderr.isatty() if progress is None else progress
    result = start_run(load_config("demo", overrides), out, progress=show)
    _print_done(result)
    click.echo("evaluating (domain extractor, default metrics) ...")
    click.echo(format_result(evaluate_run(result.run_dir, log=lambda _: None)))
    report = write_report(result.run_dir)
    click.echo(f"report: {report}  (one self-contained HTML file; open it in a browser)")


GENERATE_EXAMPLES = """
\b
Examples:
  ganforge generate runs/dcgan --n 10000 --out synth/dcgan --format npz
  ganforge generate runs/cgan --per-class 1000 --out synth/cgan --format imagefolder
  ganforge generate runs/cgan --label 7 --n 500 --out synth/sevens
  ganforge generate runs/path-cgan --per-class 2000 --out synth/path --format medmnist-npz
  ganforge generate runs/brain --per-class 1000 --out synth/brain --format seg-npz   (image + mask pairs)
  ganforge generate runs/brain-spade --masks my_maps/ --out synth/spade   (SPADE: one image per label-map PNG)
  ganforge generate runs/brain-sg2 --n 64 --out synth/sg2 --truncation-psi 0.7       (StyleGAN2 runs)
  ganforge generate runs/cogan --n 1000 --out synth/pairs   (CoGAN: A/ and B/ pairs, one z each)
  (then train on it: ganforge train mnist-dcgan --set data.name=folder --set data.path=synth/cgan)
"""


@main.command(epilog=GENERATE_EXAMPLES)
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--n", "n", type=click.IntRange(min=1), default=None, help="Samples to generate (default 64).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder (must be new).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Same seed -> the same files, byte for byte.")
@click.option("--label", type=click.IntRange(min=0), default=None, help="Conditional runs: sample only class K.")
@click.option("--per-class", "per_class", type=click.IntRange(min=1), default=None,
              help="Conditional runs: N samples of every class (sets the total).")
@click.option("--format", "fmt", type=click.Choice(["auto", "png", "npz", "imagefolder", "medmnist-npz", "seg-npz"]),
              default="auto", show_default=True,
              help="auto: png for images (image + _mask.png for paired data), npz for 2D points.")
@click.option("--nproc", type=click.IntRange(min=1), default=None, help=NPROC_HELP)
@click.option("--truncation-psi", "psi", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="StyleGAN2 runs: pull w towards its mean, w_avg + psi (w - w_avg); below 1 trades variety for "
                   "quality.")
@click.option("--masks", "masks", type=click.Path(path_type=Path), default=None, metavar="DIR|FILE.npz",
              help="Mask-to-image runs (spade): draw one image per label map (PNG of class indices, or .npz 'masks').")
def generate(run_dir: Path, n: int | None, out: Path, seed: int, label: int | None, per_class: int | None,
             fmt: str, nproc: int | None, psi: float, masks: Path | None) -> None:
    """Sample a labelled synthetic dataset from a trained run, with manifest.json (provenance)."""
    from ganforge.cli.launch import relaunch
    from ganforge.generate import check_new_folder, generate_dataset, summarize
    from ganforge.training import distributed
    from ganforge.training.export import load_generator

    if masks is not None:  # mask-to-image (SPADE): the maps set how many images and what they show
        from ganforge.errors import GanforgeError
        from ganforge.mask_to_image import generate_from_masks

        given = [f for f, v in (("--n", n), ("--label", label), ("--per-class", per_class), ("--nproc", nproc),
                                ("--truncation-psi", psi != 1.0)) if v]
        if given or fmt != "auto":
            raise GanforgeError(f"--masks draws one image per label map; drop {', '.join(given or ['--format'])}.")
        click.echo(summarize(generate_from_masks(run_dir, masks, out, seed=seed)))
        return

    if nproc is not None and nproc > 1:
        load_generator(run_dir)  # a wrong run directory or a used --out: one line here, not one per process
        check_new_folder(out)
        relaunch(nproc)
    world = distributed.init_from_env()
    result = generate_dataset(run_dir, out, n=n, seed=seed, label=label, per_class=per_class, fmt=fmt,  # type: ignore[arg-type]
                              world=world, truncation_psi=psi)
    distributed.shutdown()
    if result is not None:
        click.echo(summarize(result))


@main.command(name="list")
@click.argument("what", required=False, default="all")
def list_(what: str) -> None:
    """List what is registered: presets, variants, datasets, archs, losses (default: all)."""
    from ganforge.catalog import catalog

    sections = catalog()
    if what != "all" and what not in sections:
        raise GanforgeError(f"unknown list {what!r}; choose one of: all, {', '.join(sections)}.")
    for name, rows in sections.items():
        if what not in ("all", name):
            continue
        click.secho(f"{name}:", bold=True)
        width = max((len(r[0]) for r in rows), default=0)
        for key, help_text in rows:
            click.echo(f"  {key.ljust(width)}  {help_text}")


from ganforge.cli.evaluate import evaluate  # noqa: E402
from ganforge.cli.experiments import compare, sweep  # noqa: E402
from ganforge.cli.report import report  # noqa: E402
from ganforge.cli.translate import translate  # noqa: E402
from ganforge.cli.weights import lpips, weights  # noqa: E402

main.add_command(evaluate)
main.add_command(sweep)
main.add_command(compare)
main.add_command(report)
main.add_command(translate)
main.add_command(weights)
main.add_command(lpips)
