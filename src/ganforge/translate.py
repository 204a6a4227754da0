"""Translate images with a trained image-to-image run (pix2pix, CycleGAN, DTN), with provenance.

``translate_images(run_dir, input, out, direction="AtoB")`` loads the exported translator
(``generator.safetensors`` + ``generator.json``; no training code), reads the input images and writes:

- one PNG per input image: ``<input name>.png`` for a folder (sub-folders kept), ``000000.png``... for an ``.npz``;
- ``translated.npz``: ``images`` uint8 [N, H, W, C] (the translations) and ``sources`` (the input names);
- ``manifest.json``: the generator's SHA-256, run directory, kimg, EMA and config, the direction and domains, the
  input path, a SHA-256 over the input images as read, a SHA-256 over the files written, the ganforge version and
  the time (the only thing that changes between two identical calls).

Inputs: a folder of images (png, jpg, ...: gray or RGB, converted to the source domain's channels and resized to
the run's resolution with Lanczos when they differ) or an ``.npz`` with ``images`` uint8 [N, H, W] / [N, H, W, C]
(what ``ganforge generate --format npz`` writes) or float ``x`` [N, C, H, W] in [-1, 1].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from ganforge.data.base import to_uint8, to_unit_range
from ganforge.dataset_folder import check_new_folder, generator_fields, write_dataset_folder
from ganforge.errors import DataError, GanforgeError
from ganforge.generate import npz_bytes, png_bytes
from ganforge.training.export import LoadedGenerator, load_generator

Direction = Literal["AtoB", "BtoA"]
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class TranslateResult:
    out: Path
    n: int
    direction: str
    manifest: dict = field(default_factory=dict)


def load_translator(run_dir: Path | str) -> LoadedGenerator:
    gen = load_generator(run_dir)
    if not gen.spec.get("translation"):
        raise GanforgeError(
            f"{str(run_dir)!r} is a {gen.spec.get('variant', '?')} run, which draws samples rather "
            "than translating images: use `ganforge generate`. translate needs a pix2pix, "
            "cyclegan or dtn run."
        )
    return gen


def domain_shapes(gen: LoadedGenerator) -> dict[str, tuple[int, ...]]:
    """Image shape of each domain: A without its mask channels, B from ``shape_b``."""
    shape_a = (gen.shape[0] - gen.mask_channels, *gen.shape[1:])
    return {"A": shape_a, "B": tuple(gen.spec.get("shape_b", shape_a))}


@torch.no_grad()
def translate_tensor(gen: LoadedGenerator, x: torch.Tensor, direction: Direction, batch: int = 256) -> torch.Tensor:
    """x [N, C_src, H, W] in [-1, 1] -> [N, C_dst, H, W], in eval mode, deterministic."""
    G = gen.G.eval()
    out = [G(x[i : i + batch], direction).float() for i in range(0, len(x), batch)]
    return torch.cat(out) if out else x[:0]


def image_files(folder: Path) -> list[Path]:
    """The image files below ``folder`` (any depth, hidden files and folders skipped), in a fixed order."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _read_folder(folder: Path, channels: int, side: int) -> tuple[list[str], torch.Tensor]:
    files = image_files(folder)
    if not files:
        raise DataError(
            f"no images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)}); point --input at a "
            "folder of images or an .npz"
        )
    arrays = []
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("L" if channels == 1 else "RGB")
                if im.size != (side, side):
                    im = im.resize((side, side), Image.Resampling.LANCZOS)
                arrays.append(np.asarray(im))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot read image {p}: {e}. Remove or replace the file.") from None
    names = [p.relative_to(folder).with_suffix("").as_posix() for p in files]
    return names, to_unit_range(np.stack(arrays))


def _read_npz(path: Path, channels: int, side: int) -> tuple[list[str], torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k in ("images", "x")}
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as .npz ({e}); give a folder of images or an .npz with 'images'") from None
    if "images" in arrays and arrays["images"].dtype == np.uint8 and arrays["images"].ndim in (3, 4):
        x = to_unit_range(arrays["images"])
    elif "x" in arrays and arrays["x"].ndim == 4:
        x = torch.from_numpy(np.asarray(arrays["x"], np.float32)).clamp(-1, 1)
    else:
        raise DataError(
            f"{path} holds no 'images' uint8 [N, H, W(, C)] or 'x' float [N, C, H, W] array "
            "(ganforge generate --format npz writes 'images')"
        )
    if x.shape[1] != channels:
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and channels == 1:
            x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]  # ITU-R BT.601 luma
        else:
            raise DataError(f"{path}: images have {x.shape[1]} channels; the translator takes {channels}")
    if x.shape[-2:] != (side, side):
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True).clamp(-1, 1)
    width = max(6, len(str(len(x) - 1)))
    return [f"{i:0{width}d}" for i in range(len(x))], x.contiguous()


def read_inputs(path: Path, channels: int, side: int) -> tuple[list[str], torch.Tensor]:
    """A folder of images or an .npz -> (names, x [N, channels, side, side] in [-1, 1])."""
    if path.is_dir():
        return _read_folder(path, channels, side)
    if path.is_file() and path.suffix == ".npz":
        return _read_npz(path, channels, side)
    what = "does not exist" if not path.exists() else "is neither a folder nor an .npz file"
    raise DataError(f"--input {str(path)!r} {what}; give a folder of images or an .npz file")


def translate_images(
    run_dir: Path | str, input: Path | str, out: Path | str, *, direction: Direction = "AtoB", batch: int = 256
) -> TranslateResult:
    gen = load_translator(run_dir)
    if gen.spec.get("mask_to_image"):  # its source is a one-hot label map, not an image a folder could hold
        raise GanforgeError(
            f"{str(run_dir)!r} is a mask-to-image run ({gen.spec.get('variant')}): give it label maps "
            f"with `ganforge generate {run_dir} --masks DIR --out DIR` (PNG pixel = class index)."
        )
    if direction not in gen.G.directions:
        raise GanforgeError(
            f"this {gen.spec.get('variant')} run translates {' and '.join(gen.G.directions)} only, "
            f"not {direction}; drop --direction or train variant=cyclegan for both directions."
        )
    shapes = domain_shapes(gen)
    src, dst = ("A", "B") if direction == "AtoB" else ("B", "A")
    out, input = Path(out), Path(input)
    check_new_folder(out)
    names, x = read_inputs(input, shapes[src][0], shapes[src][-1])
    return _translate_into(gen, Path(run_dir), input, out, x, names, direction, src, dst, batch)


def _translate_into(
    gen: LoadedGenerator,
    run_dir: Path,
    input: Path,
    out: Path,
    x: torch.Tensor,
    names: list[str],
    direction: Direction,
    src: str,
    dst: str,
    batch: int,
) -> TranslateResult:
    imgs = to_uint8(translate_tensor(gen, x, direction, batch))  # [N, H, W, C]
    files = {f"{name}.png": png_bytes(imgs[i]) for i, name in enumerate(names)}
    files["translated.npz"] = npz_bytes({"images": imgs, "sources": np.array(names)})
    domains = gen.spec.get("domains", ["A", "B"])
    fields = {
        "format": "translation",
        "n": len(names),
        "direction": direction,
        "source_domain": domains[0 if src == "A" else 1],
        "target_domain": domains[0 if dst == "A" else 1],
        "shape": list(imgs.shape[1:]),
        "input": str(input),
        "input_sha256": hashlib.sha256(np.ascontiguousarray(x.numpy()).tobytes()).hexdigest(),
        **generator_fields(gen, run_dir),
        "variant": gen.spec.get("variant"),
        "pixel_encoding": "uint8 = round((x + 1) * 127.5), x clipped to [-1, 1]",
    }
    command = f"ganforge translate {run_dir} --input {input} --out {out}"
    manifest = write_dataset_folder(out, files, fields, command=command, config=gen.spec.get("config"))
    return TranslateResult(out, len(names), direction, manifest)
