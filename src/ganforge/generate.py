"""Synthetic datasets from an exported generator, with provenance.

``generate_dataset(run_dir, out, n=..., seed=..., fmt=...)`` samples the generator (``generator.safetensors``
+ ``generator.json``; no training code) and writes a labelled dataset plus ``manifest.json``:

=================  ================================================================================
format             files
=================  ================================================================================
``png``            ``000000.png`` ... (flat) and, for conditional generators, ``labels.csv``
                   (file,label,class_name), plus the same arrays as ``npz`` in ``samples.npz``.
                   The PNGs load as ganforge's ``folder`` dataset (unlabelled).
``npz``            ``samples.npz``: ``images`` uint8 [N, H, W, C] (or ``points`` float32 [N, D] for 2D
                   data), ``labels`` int64 [N] and ``class_names`` when conditional.
``imagefolder``    one subfolder per class, named after the generator's class names (prefixed with the
                   zero-padded label when the names would not sort in label order, so torchvision's
                   ``ImageFolder`` and ganforge's ``folder`` dataset assign the original label indices).
``medmnist-npz``   one ``.npz`` in MedMNIST's layout, a drop-in replacement for the real file in which only the
                   training split is synthetic: ``train_images`` uint8 [N, H, W] (gray) or [N, H, W, 3] and
                   ``train_labels`` int64 [N, 1] are the generated set; ``test_*`` is the REAL test split of the
                   data the generator was trained on (so "train on synthetic, test on real" runs as it is, and
                   no synthetic test set can flatter a model); ``val_*`` is empty ([0, ...]). The file is named
                   after the MedMNIST set when the run trained on one (``pathmnist.npz``: the loader then
                   restores the class names), else ``synthetic.npz``. Without the real data at hand, ``test_*``
                   is empty and the manifest says so.
``seg-npz``        paired image + mask generators only (``seg-npz``/``seg-folder``/``brain-phantom`` data): the
                   same idea in the ``seg-npz`` dataset's layout, ``{train,val,test}_images``, ``_masks`` (uint8
                   0/1 [N, H, W]) and ``_labels``, plus ``class_names``; train is synthetic, test the real test
                   split.
=================  ================================================================================

Paired image + mask generators write each mask beside its image: ``000123.png`` and ``000123_mask.png``
(white foreground; the layout the ``seg-folder`` dataset reads, as in the LGG MRI set), and ``masks``
(uint8 0/1 [N, H, W]) beside ``images`` in ``samples.npz``. A generated mask is foreground where G's mask
channel is > 0.

Coupled generators (CoGAN) write matching pairs instead: ``A/000000.png`` and ``B/000000.png`` drawn from the same z
(the same file name in both folders), and ``samples.npz`` with ``images_a`` / ``images_b``; ``--format npz`` writes
the npz alone. The manifest names the two domains.

Determinism: the same generator, seed, n/labels and format give the same data files byte for byte
(PNGs carry no timestamps; npz archives are written with fixed zip dates). The creation time lives
only in ``manifest.json``, which also records the generator's SHA-256, the run config, the seed, EMA,
truncation (none), per-class counts, the format, a SHA-256 over all data files and the ganforge version.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from ganforge.data.base import to_uint8
from ganforge.dataset_folder import check_new_folder, generator_fields, write_dataset_folder
from ganforge.errors import ConfigError, GanforgeError
from ganforge.training.distributed import World
from ganforge.training.export import LoadedGenerator, load_generator

Format = Literal["auto", "png", "npz", "imagefolder", "medmnist-npz", "seg-npz"]
FORMATS = ("png", "npz", "imagefolder", "medmnist-npz", "seg-npz")
MEDMNIST_FILE = "synthetic.npz"
SEG_FILE = "synthetic-seg.npz"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: npz bytes do not depend on the clock


@dataclass
class GenerateResult:
    out: Path
    n: int
    format: str
    counts: dict[str, int] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def choose_labels(
    gen: LoadedGenerator, n: int | None, label: int | None, per_class: int | None
) -> tuple[int, torch.Tensor | None]:
    """How many samples and which labels. Conditional generators get balanced labels by default
    (label i % num_classes), one class with ``label``, or ``per_class`` of every class. A generator trained on
    k-means clusters (``data.clusters``) draws its clusters at their training frequency by default, and InfoGAN
    its codes uniformly: neither is a class of the data."""
    if not gen.conditional:
        if label is not None or per_class is not None:
            raise GanforgeError(
                "this generator is unconditional (it was not trained with labels), so --label/--per-class "
                "cannot choose a class. Drop them, or train a conditional variant (e.g. variant=cgan)."
            )
        return (64 if n is None else n), None
    C = gen.num_classes
    if label is not None and per_class is not None:
        raise GanforgeError("give --label K (one class) or --per-class N (every class), not both.")
    if label is not None:
        if not 0 <= label < C:
            names = ", ".join(f"{i}={c}" for i, c in enumerate(gen.class_names)) or f"0..{C - 1}"
            raise GanforgeError(f"--label {label} is not a class of this generator; choose one of {names}.")
        n = 64 if n is None else n
        return n, torch.full((n,), label, dtype=torch.long)
    if per_class is not None:
        if n is not None:
            raise GanforgeError(f"--per-class {per_class} sets the total ({per_class * C}); drop --n.")
        return per_class * C, torch.arange(C).repeat_interleave(per_class)
    n = 64 if n is None else n
    if gen.cluster_prior is not None:  # k-means clusters, not classes: drawn at their training frequency
        return n, None
    return n, torch.arange(n) % C


def generate_dataset(
    run_dir: Path | str, out: Path | str, *, n: int | None = None, seed: int = 0, label: int | None = None,
    per_class: int | None = None, fmt: Format = "auto", batch: int = 1024, world: World | None = None,
    truncation_psi: float = 1.0,
) -> GenerateResult | None:
    """Sample ``gen`` into a new folder ``out`` with manifest.json. Under ``torchrun`` (``world``) every rank
    computes its share of the samples and rank 0 alone writes; the other ranks return None."""
    world = world or World()
    gen = load_generator(run_dir)
    if gen.spec.get("mask_to_image"):
        raise GanforgeError(f"{str(run_dir)!r} is a mask-to-image run ({gen.spec.get('variant')}): it draws images "
                            "for given label maps. Add --masks DIR (label-map PNGs, pixel = class) or FILE.npz.")
    if gen.spec.get("translation"):
        raise GanforgeError(f"{str(run_dir)!r} is an image-to-image run ({gen.spec.get('variant')}): it translates "
                            "images rather than drawing them. Use `ganforge translate RUN --input DIR --out DIR`.")
    if not 0 <= truncation_psi <= 1:
        raise ConfigError(f"--truncation-psi {truncation_psi} must be in [0, 1] (1: no truncation).")
    gen.check_truncation(truncation_psi)
    out = Path(out)
    check_new_folder(out)
    if gen.spec.get("coupled"):  # CoGAN: matching A/ B/ pairs from one z each
        return _write_pairs(gen, Path(run_dir), out, n, seed, label, per_class, fmt, batch) if world.main else None
    if fmt == "auto":
        fmt = "png" if gen.kind == "image" else "npz"
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    if gen.kind != "image" and fmt != "npz":
        raise GanforgeError(f"this generator makes {gen.kind} ({gen.shape}), not images: use --format npz.")
    if fmt == "medmnist-npz" and gen.mask_channels:
        raise GanforgeError("this generator makes image + mask pairs; MedMNIST files have no masks. "
                            "Use --format seg-npz (the same layout with *_masks arrays).")
    if fmt == "seg-npz" and not gen.mask_channels:
        raise GanforgeError("--format seg-npz is for image + mask generators (trained on seg-npz, seg-folder or "
                            "brain-phantom data); this one makes plain images. Use --format medmnist-npz or npz.")
    if fmt in ("imagefolder", "medmnist-npz") and not gen.conditional:
        raise GanforgeError(
            f"--format {fmt} stores a label per image, but this generator is unconditional. "
            "Use --format png or npz, or train a conditional variant."
        )
    n_total, labels = choose_labels(gen, n, label, per_class)
    if n_total < 1:
        raise GanforgeError("nothing to generate: --n (or --per-class) must be >= 1.")

    check_memory(n_total, gen.shape)
    x, labels = gen.sample(n_total, seed=seed, labels=labels, batch=batch, world=world, truncation_psi=truncation_psi)
    if not world.main:
        return None

    # The folder is created and locked only once the files are ready (dataset_folder.write_dataset_folder).
    return _write_samples(gen, x, labels, Path(run_dir), out, fmt, n_total, seed, label, per_class, truncation_psi)


def check_memory(n: int, shape: tuple[int, ...]) -> None:
    """Samples are held in memory as float32 before they are written: refuse a count that cannot fit."""
    need = n * math.prod(shape) * 4 * 2  # float32 samples + their uint8/encoded copies, with margin
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit known
        return
    if need > total // 2:
        most = max(1, (total // 2) // (math.prod(shape) * 8))
        raise GanforgeError(f"--n {n:,} samples of {tuple(shape)} need about {need / 1e9:.0f} GB of memory; this "
                            f"machine has {total / 1e9:.0f} GB. Generate at most {most:,} per call (with different "
                            "--seed values for more).")


def _write_samples(gen: LoadedGenerator, x: torch.Tensor, labels: torch.Tensor | None, run_dir: Path, out: Path,
                   fmt: str, n_total: int, seed: int, label: int | None, per_class: int | None,
                   truncation_psi: float = 1.0) -> GenerateResult:
    class_names = _class_names(gen)
    files: dict[str, bytes] = {}  # relative path -> bytes; written, then hashed in a fixed order
    extra: dict = {}
    if gen.kind != "image":
        arrays = {"points": x.numpy().astype(np.float32)}
        if labels is not None:
            arrays |= {"labels": labels.numpy().astype(np.int64), "class_names": np.array(class_names)}
        files["samples.npz"] = npz_bytes(arrays)
    else:
        imgs, masks = split_pairs(x, gen.mask_channels)  # uint8 [N, H, W, C], uint8 0/1 [N, H, W(, M)] or None
        lab = labels.numpy().astype(np.int64) if labels is not None else None
        width = max(6, len(str(n_total - 1)))

        def put_png(stem: str, i: int) -> str:
            files[f"{stem}.png"] = png_bytes(imgs[i])
            if masks is not None:
                files[f"{stem}_mask.png"] = mask_png_bytes(masks[i])
            return f"{stem}.png"

        if fmt == "png":
            rows = []
            for i in range(n_total):
                name = put_png(f"{i:0{width}d}", i)
                if lab is not None:
                    rows.append((name, int(lab[i]), class_names[lab[i]]))
            if lab is not None:
                buf = io.StringIO()
                w = csv.writer(buf, lineterminator="\n")
                w.writerow(["file", "label", "class_name"])
                w.writerows(rows)
                files["labels.csv"] = buf.getvalue().encode()
        if fmt in ("png", "npz"):  # png: the same arrays in one file beside the PNGs
            arrays = {"images": imgs} | ({"masks": masks} if masks is not None else {})
            if lab is not None:
                arrays |= {"labels": lab, "class_names": np.array(class_names)}
            files["samples.npz"] = npz_bytes(arrays)
        if fmt == "imagefolder":
            folders = class_folders(class_names)
            extra["class_folders"] = folders
            for i in range(n_total):
                put_png(f"{folders[lab[i]]}/{i:0{width}d}", i)
        elif fmt in ("medmnist-npz", "seg-npz"):
            test_x, test_y, test_note = _real_test_split(gen)
            test_imgs, test_masks = split_pairs(test_x, gen.mask_channels)
            name, arrays = (_medmnist_name(gen) if fmt == "medmnist-npz" else SEG_FILE), {}
            splits = (("train", imgs, masks, lab), ("val", imgs[:0], None if masks is None else masks[:0], lab[:0]),
                      ("test", test_imgs, test_masks, test_y))
            for split, xs, ms, ys in splits:
                arrays[f"{split}_images"] = xs[..., 0] if xs.shape[3] == 1 else xs  # MedMNIST: [N, H, W] gray
                if ms is not None:
                    arrays[f"{split}_masks"] = ms
                arrays[f"{split}_labels"] = ys.reshape(-1, 1)
            if fmt == "seg-npz":  # the seg-npz loader restores the names from here
                arrays["class_names"] = np.array(class_names)
            files[name] = npz_bytes(arrays)
            extra["splits"] = {"train": f"synthetic ({n_total})", "val": "empty", "test": test_note}

    counts: dict[str, int] = {}
    if labels is not None:
        bincount = np.bincount(labels.numpy(), minlength=gen.num_classes)
        counts = {class_names[k]: int(bincount[k]) for k in range(gen.num_classes)}
    fields = {
        "format": fmt,
        "n": n_total,
        "kind": gen.kind,
        "shape": list(gen.shape),
        "seed": seed,
        "label": label,
        "per_class": per_class,
        "labels_assigned": ("one class" if label is not None else "per class" if per_class is not None
                            else ("clusters at their training frequency (data.clusters)" if gen.config.data.clusters
                                  else "drawn by the generator from its own prior (InfoGAN's codes)")
                            if gen.cluster_prior
                            else "balanced: label i % num_classes" if labels is not None else "none (unconditional)"),
        "counts_per_class": counts,
        "class_names": list(class_names) if labels is not None else [],
        **generator_fields(gen, run_dir),
        # None: samples use z ~ N(0, I) unmodified; psi: w = w_avg + psi (w - w_avg) (StyleGAN's truncation trick)
        "truncation": {"psi": truncation_psi} if truncation_psi != 1 else None,
        "latent": "z ~ N(0, I) drawn from torch.Generator().manual_seed(seed), all up front (batch-size invariant)",
        "pixel_encoding": "uint8 = round((x + 1) * 127.5), x clipped to [-1, 1]" if gen.kind == "image" else "float32",
        **extra,
    }
    manifest = write_dataset_folder(out, files, fields, command=f"ganforge generate {run_dir} --out {out}",
                                    config=gen.spec.get("config"))
    return GenerateResult(out, n_total, fmt, counts, manifest)


def _write_pairs(gen: LoadedGenerator, run_dir: Path, out: Path, n: int | None, seed: int, label: int | None,
                 per_class: int | None, fmt: str, batch: int) -> GenerateResult:
    """A coupled generator (CoGAN): ``A/000000.png`` and ``B/000000.png`` from the same z, and ``samples.npz`` with
    ``images_a`` / ``images_b`` uint8 [N, H, W, C] (row i of each from z_i); ``--format npz``: the npz alone."""
    if label is not None or per_class is not None:
        raise GanforgeError("this CoGAN generator is unconditional: drop --label/--per-class.")
    if fmt not in ("auto", "png", "npz"):
        raise GanforgeError(f"a CoGAN run writes pairs as png (A/ and B/ folders) or npz, not --format {fmt}.")
    n = 64 if n is None else n
    shape_b = tuple(gen.spec["shape_b"])
    check_memory(n, (gen.shape[0] + shape_b[0], *shape_b[1:]))
    z = torch.randn(n, gen.G.z_dim, generator=torch.Generator().manual_seed(seed))  # up front: batch-invariant
    G = gen.G.eval()
    with torch.no_grad():
        pairs = [G.pair(z[i : i + batch]) for i in range(0, n, batch)]
    imgs_a, imgs_b = (to_uint8(torch.cat([p[k].float() for p in pairs])) for k in (0, 1))  # [N, H, W, C] each
    files: dict[str, bytes] = {"samples.npz": npz_bytes({"images_a": imgs_a, "images_b": imgs_b})}
    if fmt != "npz":
        width = max(6, len(str(n - 1)))
        for i in range(n):
            files[f"A/{i:0{width}d}.png"], files[f"B/{i:0{width}d}.png"] = png_bytes(imgs_a[i]), png_bytes(imgs_b[i])
    domains = gen.spec.get("domains", ["A", "B"])
    fields = {
        "format": "pairs" if fmt != "npz" else "pairs-npz",
        "n": n,
        "kind": "image",
        "domains": {"A": domains[0], "B": domains[1]},
        "shape_a": list(imgs_a.shape[1:]),
        "shape_b": list(imgs_b.shape[1:]),
        "pairing": "A/<name>.png and B/<name>.png (row i of images_a and images_b) are drawn from the same z",
        "seed": seed,
        **generator_fields(gen, run_dir),
        "latent": "z ~ N(0, I) drawn from torch.Generator().manual_seed(seed), all up front (batch-size invariant)",
        "pixel_encoding": "uint8 = round((x + 1) * 127.5), x clipped to [-1, 1]",
    }
    manifest = write_dataset_folder(out, files, fields, command=f"ganforge generate {run_dir} --out {out}",
                                    config=gen.spec.get("config"))
    return GenerateResult(out, n, manifest["format"], {}, manifest)


def generate_samples(run_dir: Path, n: int, out: Path, seed: int = 0) -> GenerateResult:
    """Backwards-compatible entry: PNG files for images, samples.npz for points."""
    return generate_dataset(run_dir, out, n=n, seed=seed)


def _medmnist_name(gen: LoadedGenerator) -> str:
    from ganforge.data.medmnist import medmnist_set_name

    path = (gen.spec.get("config") or {}).get("data", {}).get("path")
    known = medmnist_set_name(Path(path)) if path else None
    return f"{known}.npz" if known else MEDMNIST_FILE


def _real_test_split(gen: LoadedGenerator) -> tuple[torch.Tensor, np.ndarray, str]:
    """The real test split the generator's training data comes with: x [N, *gen.shape] + int64 labels [N]."""
    from ganforge.config import config_from_dict
    from ganforge.data import load_dataset

    empty = torch.zeros(0, *gen.shape), np.zeros((0,), np.int64)
    try:
        data = load_dataset(config_from_dict(gen.spec["config"]).data, "test")
    except GanforgeError as e:
        return *empty, f"empty: the real test split could not be loaded ({e})"
    if data.y is None or tuple(data.shape) != tuple(gen.shape) or data.mask_channels != gen.mask_channels:
        return *empty, f"empty: the real test split does not match the generated images ({data.shape})"
    return data.x, data.y.numpy().astype(np.int64), f"real: {len(data)} images of {data.name} ({data.source})"


def split_pairs(x: torch.Tensor, mask_channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples [N, C (+ M), H, W] in [-1, 1] -> (uint8 images [N, H, W, C], uint8 0/1 masks [N, H, W] (or
    [N, H, W, M] for several masks), or None without masks). A mask is foreground where its channel is > 0."""
    if not mask_channels:
        return to_uint8(x), None
    masks = (x[:, -mask_channels:] > 0).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # [N, H, W, M]
    return to_uint8(x[:, :-mask_channels]), (masks[..., 0] if mask_channels == 1 else masks)


def _class_names(gen: LoadedGenerator) -> list[str]:
    names = [str(c) for c in gen.class_names]
    if len(names) != gen.num_classes:
        names = [str(k) for k in range(gen.num_classes)]
    return names


def class_folders(class_names: list[str]) -> list[str]:
    """Folder per class, in label order. Plain names when they are unique, safe, and sort in label order
    (what ImageFolder assumes); else ``03_name``-style zero-padded prefixes."""
    safe = [re.sub(r"[^A-Za-z0-9._+-]+", "_", c).strip("._") or "class" for c in class_names]
    if len(set(safe)) == len(safe) and sorted(safe) == safe:
        return safe
    width = len(str(len(safe) - 1))
    return [f"{k:0{width}d}_{s}" for k, s in enumerate(safe)]


def png_bytes(img: np.ndarray) -> bytes:
    """uint8 [H, W, C] -> PNG bytes. Pillow writes no time chunk, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def mask_png_bytes(mask: np.ndarray) -> bytes:
    """uint8 0/1 mask [H, W] (or [H, W, M]: their union) -> 8-bit PNG, foreground 255."""
    union = mask if mask.ndim == 2 else mask.max(axis=2)
    return png_bytes((union * 255).astype(np.uint8)[:, :, None])


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` that ``np.load`` reads, with fixed zip dates (``np.savez`` stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def summarize(result: GenerateResult) -> str:
    counts = ", ".join(f"{k}: {v}" for k, v in result.counts.items())
    what = "pairs (A/ and B/, one z each)" if result.format.startswith("pairs") else f"samples ({result.format})"
    return (f"wrote {result.n} {what} to {result.out}"
            + (f"\n  per class: {counts}" if counts else "")
            + f"\n  manifest:  {result.out / 'manifest.json'}  (generator sha256 "
              f"{result.manifest['generator_sha256'][:16]}..., seed {result.manifest['seed']})")
