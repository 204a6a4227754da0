"""``ganforge translate``: run a trained image-to-image translator (pix2pix, CycleGAN) over images."""

from __future__ import annotations

from pathlib import Path

import click

TRANSLATE_EXAMPLES = """
\b
Examples:
  ganforge translate runs/brain-pix2pix --input scans/t1 --out scans/ct-like
  ganforge translate runs/brain-cyclegan --input ct.npz --out mri --direction BtoA
  (--input: a folder of images, or an .npz with 'images' uint8 [N, H, W(, C)] as `generate --format npz` writes)
"""


@click.command(epilog=TRANSLATE_EXAMPLES)
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "input_",
    required=True,
    type=click.Path(path_type=Path),
    help="A folder of images or an .npz file, in the source domain.",
)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder (must be new).")
@click.option(
    "--direction",
    type=click.Choice(["AtoB", "BtoA"]),
    default="AtoB",
    show_default=True,
    help="A to B, or back (CycleGAN runs only).",
)
def translate(run_dir: Path, input_: Path, out: Path, direction: str) -> None:
    """Translate images with a pix2pix or CycleGAN run; writes PNGs, translated.npz and manifest.json."""
    from ganforge.translate import translate_images

    result = translate_images(run_dir, input_, out, direction=direction)  # type: ignore[arg-type]
    m = result.manifest
    click.echo(
        f"translated {result.n} images {m['source_domain']} -> {m['target_domain']} into {result.out}\n"
        f"  manifest:  {result.out / 'manifest.json'}  (generator sha256 {m['generator_sha256'][:16]}...)"
    )
