"""A new dataset folder, written whole or not at all, with its manifest: what ``generate``, ``generate --masks``,
``translate`` and CoGAN's paired ``generate`` share.

``write_dataset_folder(out, files, fields, command=..., config=...)`` creates ``out`` (it must be new or empty),
locks it, writes ``files`` (relative path -> bytes) and then ``manifest.json``: the caller's ``fields``, followed by
the number of files, a SHA-256 over the files (each relative path and its bytes' SHA-256, in sorted order), the run's
config, the ganforge and torch versions and the time (the only thing that differs between two identical calls). A
failure while writing removes the folder again; a folder another process filled meanwhile is left alone.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Any

import torch

import ganforge
from ganforge.errors import RunDirError
from ganforge.training.export import LoadedGenerator
from ganforge.training.lock import LOCK_FILE, acquire
from ganforge.training.rundir import atomic_write_json, make_new_folder


def check_new_folder(out: Path) -> None:
    """Refuse an ``--out`` that holds anything (called before any work, so nothing is overwritten)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(
            f"output folder {str(out)!r} already exists and is not empty; choose a new --out (nothing was overwritten)."
        )


def generator_fields(gen: LoadedGenerator, run_dir: Path | str) -> dict[str, Any]:
    """The provenance of the exported generator that made the files."""
    return {
        "generator_sha256": gen.sha256,
        "generator_run_dir": str(run_dir),
        "generator_kimg": gen.spec.get("kimg"),
        "ema": bool(gen.spec.get("ema", False)),
        # generators with noise inputs (StyleGAN2): how LoadedGenerator.sample drew them
        **({"noise_inputs": "one noise map set per sample, from a per-sample seed drawn after z and the labels"}
           if getattr(gen.G, "has_noise_inputs", False) else {}),
    }


def write_dataset_folder(
    out: Path, files: dict[str, bytes], fields: dict[str, Any], *, command: str, config: dict[str, Any] | None
) -> dict[str, Any]:
    """Write ``files`` and ``manifest.json`` into the new folder ``out`` (the caller ran ``check_new_folder`` before
    its work); return the manifest."""
    undo = make_new_folder(out)  # created only now, after every check of the caller
    with acquire(out, command):
        if {p.name for p in out.iterdir()} != {LOCK_FILE}:
            raise RunDirError(
                f"output folder {str(out)!r} was filled by another process meanwhile; choose a new "
                "--out (nothing was overwritten)."
            )
        try:
            content = hashlib.sha256()
            for rel in sorted(files):
                path = out / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(files[rel])
                content.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
            manifest = {
                **fields,
                "files": len(files),
                "content_sha256": content.hexdigest(),
                "config": config,
                "ganforge_version": ganforge.__version__,
                "torch_version": torch.__version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
            atomic_write_json(out / "manifest.json", manifest)
            return manifest
        except BaseException:
            undo()
            raise
