"""``ganforge weights fetch|list`` (pretrained metric networks) and ``ganforge lpips`` (paired data)."""

from __future__ import annotations

from pathlib import Path

import click

WEIGHTS_EXAMPLES = """
\b
Examples:
  ganforge weights fetch inception      (NVIDIA's TorchScript Inception-v3, into $GANFORGE_CACHE/weights)
  ganforge weights fetch vgg16          (VGG16 + LPIPS weights, for the lpips metric)
  ganforge weights fetch inception --to /shared/weights --sha256 HEX
  ganforge weights list                 (where each file is found, or how to get it)
  Offline: copy the file and set GANFORGE_INCEPTION_WEIGHTS / GANFORGE_VGG16_WEIGHTS to its path.
"""


@click.group(epilog=WEIGHTS_EXAMPLES)
def weights() -> None:
    """Pretrained networks for the metrics: fetch them once (SHA-256 checked), or point at offline copies."""


@weights.command(name="fetch", epilog=WEIGHTS_EXAMPLES)
@click.argument("name", type=click.Choice(["inception", "vgg16"]))
@click.option("--to", "dest", default=None, metavar="PATH", help="File or folder (default: $GANFORGE_CACHE/weights).")
@click.option("--url", default=None, help="Download from here instead (a mirror, or file:///path/to/copy).")
@click.option("--sha256", default=None, metavar="HEX", help="Refuse the file unless it has this SHA-256.")
@click.option("--force", is_flag=True, help="Download again even if the file is there.")
def weights_fetch(name: str, dest: str | None, url: str | None, sha256: str | None, force: bool) -> None:
    """Download NAME once; its SHA-256 is checked (or recorded at first download) and printed."""
    from ganforge.metrics.weights import fetch_weights

    fetch_weights(name, dest, url=url, sha256=sha256, force=force, log=click.echo)


@weights.command(name="list")
def weights_list() -> None:
    """Where each weights file is found (path, environment variable or cache), or how to get it."""
    from ganforge.metrics.weights import weights_status

    for name, where in weights_status():
        click.echo(f"  {name.ljust(10)}  {where}")


@click.command(
    epilog="""
\b
Examples:
  ganforge lpips synth/translated data/ground-truth
  ganforge lpips out/recon data/test --weights /offline/vgg16.pt
"""
)
@click.argument("generated", type=click.Path(path_type=Path))
@click.argument("ground_truth", type=click.Path(path_type=Path))
@click.option(
    "--weights", default=None, metavar="PATH", help="vgg16.pt (default: $GANFORGE_VGG16_WEIGHTS or the cache)."
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def lpips(generated: Path, ground_truth: Path, weights: str | None, device: str) -> None:
    """Paired data: LPIPS (VGG16) between each generated image and the ground truth of the same file name."""
    from ganforge.metrics.lpips import INPUT_CONVENTION, lpips_folders

    result, _ = lpips_folders(generated, ground_truth, weights, device)
    click.echo(
        f"lpips {result.mean:.4f} ± {result.std:.4f} (mean ± std over {result.n_pairs} pairs; "
        f"VGG16 TorchScript; {INPUT_CONVENTION})"
    )
