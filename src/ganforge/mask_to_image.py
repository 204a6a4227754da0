"""Images for given label maps: ``ganforge generate RUN --masks DIR|FILE.npz`` with a mask-to-image run (SPADE).

``generate_from_masks(run_dir, masks, out, seed=0)`` loads the exported generator (``generator.safetensors`` +
``generator.json``; no training code), reads the label maps and writes, in a new folder ``out``:

- ``<name>.png`` the drawn image and ``<name>_mask.png`` the label map it was drawn for (class indices, 8-bit gray),
  the pair layout of ``generate``; ``<name>`` is the mask file's name (sub-folders kept) or ``000000``... for an npz;
- ``samples.npz``: ``images`` uint8 [N, H, W, C], ``masks`` uint8 [N, H, W] (class indices) and ``sources``;
- ``manifest.json``: what ``generate`` records (generator SHA-256, run, kimg, EMA, config, seed, latent, pixel
  encoding, content SHA-256, versions, time) plus the mask input, a SHA-256 over the maps as read and the classes.

Label maps: 8-bit gray PNGs (or any image format Pillow reads) whose pixel values are class indices 0..K-1 (K: the
run's classes, ``label_names`` in the manifest); an ``.npz`` with ``masks`` (or ``labels``) integer [N, H, W]. Maps
of another size are resized by nearest neighbour (a label map must not blend classes). z ~ N(0, I) is drawn per map
from ``torch.Generator().manual_seed(seed)`` up front, so the same maps and seed give the same files byte for byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.data.base import to_uint8
from ganforge.dataset_folder import check_new_folder, generator_fields, write_dataset_folder
from ganforge.errors import DataError, GanforgeError
from ganforge.generate import GenerateResult, npz_bytes, png_bytes
from ganforge.training.export import LoadedGenerator, load_generator
from ganforge.translate import IMAGE_EXTENSIONS, image_files

MAX_CLASSES = 256  # a PNG of class indices holds 0..255


def _read_mask_folder(folder: Path) -> tuple[list[str], list[np.ndarray]]:
    files = image_files(folder)
    if not files:
        raise DataError(
            f"no mask images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)}); point --masks at "
            "a folder of label-map PNGs (pixel value = class index) or an .npz with 'masks'"
        )
    maps = []
    for p in files:
        try:
            with Image.open(p) as im:
                if im.mode not in ("L", "P", "I", "I;16", "1"):
                    raise DataError(
                        f"{p} is a {im.mode} image; a label map is one channel of class indices "
                        "(8-bit gray PNG, pixel value = class)"
                    )
                maps.append(np.asarray(im).astype(np.int64))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot read mask {p}: {e}. Remove or replace the file.") from None
    return [p.relative_to(folder).with_suffix("").as_posix() for p in files], maps


def _read_mask_npz(path: Path) -> tuple[list[str], list[np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as f:
            key = next((k for k in ("masks", "labels") if k in f.files), None)
            arr = f[key] if key else None
    except (OSError, ValueError) as e:
        raise DataError(
            f"cannot read {path} as .npz ({e}); give a folder of mask PNGs or an .npz with 'masks'"
        ) from None
    if arr is None or arr.ndim != 3 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path} holds no 'masks' integer [N, H, W] array of class indices")
    width = max(6, len(str(len(arr) - 1)))
    return [f"{i:0{width}d}" for i in range(len(arr))], [a.astype(np.int64) for a in arr]


def read_label_maps(path: Path, classes: int, side: int) -> tuple[list[str], torch.Tensor]:
    """A folder of label-map images or an .npz -> (names, class indices int64 [N, side, side])."""
    if path.is_dir():
        names, maps = _read_mask_folder(path)
    elif path.is_file() and path.suffix == ".npz":
        names, maps = _read_mask_npz(path)
    else:
        what = "does not exist" if not path.exists() else "is neither a folder nor an .npz file"
        raise DataError(f"--masks {str(path)!r} {what}; give a folder of label-map PNGs or an .npz with 'masks'")
    if not maps:
        raise DataError(f"--masks {str(path)!r} holds no label maps")
    out = []
    for name, m in zip(names, maps):
        if m.min() < 0 or m.max() >= classes:
            raise DataError(
                f"label map {name} has class {int(m.max() if m.max() >= classes else m.min())}; this run "
                f"knows classes 0..{classes - 1} (pixel value = class index)"
            )
        t = torch.from_numpy(m)[None, None].float()
        if t.shape[-2:] != (side, side):
            t = torch.nn.functional.interpolate(t, size=(side, side), mode="nearest")
        out.append(t[0, 0].long())
    return names, torch.stack(out)


def load_mask_generator(run_dir: Path | str) -> LoadedGenerator:
    gen = load_generator(run_dir)
    if not gen.spec.get("mask_to_image"):
        raise GanforgeError(
            f"{str(run_dir)!r} is a {gen.spec.get('variant', '?')} run, which does not draw images "
            "from label maps; --masks needs a mask-to-image run (variant=spade, preset brain-spade). "
            "Drop --masks to sample it."
        )
    return gen


def generate_from_masks(
    run_dir: Path | str, masks: Path | str, out: Path | str, *, seed: int = 0, batch: int = 256
) -> GenerateResult:
    from ganforge.data.brain_labels import BRAIN_LABELS, one_hot

    gen = load_mask_generator(run_dir)
    out, masks = Path(out), Path(masks)
    check_new_folder(out)
    classes, side = gen.shape[0], gen.shape[-1]
    names, labels = read_label_maps(masks, classes, side)  # [N, S, S] int64
    seg = one_hot(labels, classes)  # [N, K, S, S] in {-1, 1}
    n = len(seg)
    z = torch.randn(n, gen.G.AtoB.z_dim, generator=torch.Generator().manual_seed(seed))  # up front: batch-invariant
    G = gen.G.eval()
    with torch.no_grad():
        x = torch.cat([G.AtoB(seg[i : i + batch], z[i : i + batch]).float() for i in range(0, n, batch)])
    imgs, label_u8 = to_uint8(x), labels.numpy().astype(np.uint8)  # [N, S, S, C], [N, S, S]

    files: dict[str, bytes] = {}
    for i, name in enumerate(names):
        files[f"{name}.png"] = png_bytes(imgs[i])
        files[f"{name}_mask.png"] = png_bytes(label_u8[i][:, :, None])
    files["samples.npz"] = npz_bytes({"images": imgs, "masks": label_u8, "sources": np.array(names)})
    maps_sha = hashlib.sha256(label_u8.tobytes()).hexdigest()

    data_name = (gen.spec.get("config") or {}).get("data", {}).get("name")
    label_names = list(BRAIN_LABELS) if data_name == "brain-labels" and classes == len(BRAIN_LABELS) else []
    fields = {
        "format": "png",
        "n": n,
        "kind": "image",
        "shape": [int(imgs.shape[3]), side, side],
        "seed": seed,
        "masks_input": str(masks),
        "masks_sha256": maps_sha,
        "classes": classes,
        "label_names": label_names,
        "mask_encoding": "uint8 class index per pixel (0..classes-1), in *_mask.png and samples.npz masks",
        **generator_fields(gen, run_dir),
        "truncation": None,
        "latent": "z ~ N(0, I), one per map, drawn from torch.Generator().manual_seed(seed), all up front",
        "pixel_encoding": "uint8 = round((x + 1) * 127.5), x clipped to [-1, 1]",
    }
    command = f"ganforge generate {run_dir} --masks {masks} --out {out}"
    manifest = write_dataset_folder(out, files, fields, command=command, config=gen.spec.get("config"))
    return GenerateResult(out, n, "png", {}, manifest)
