"""Pretrained network files the metrics use, found on disk or fetched once with their SHA-256 checked.

Two TorchScript networks published by NVIDIA with stylegan2-ada-pytorch (and used unchanged by
stylegan3 and clean-fid) let ganforge compute the field's numbers with ``torch.jit.load`` alone, no
torchvision:

- ``inception``: ``inception-2015-12-05.pt``, the TF1 Inception-v3 of the original FID/IS code.
  Called as ``net(img, return_features=True) -> [N, 2048]`` on float images in [0, 255] of any size
  (resized to 299 inside, TF1-style bilinear); ``net.layers`` is the trunk on 299x299 input
  normalised to [-1, 1] (clean-fid's ``clean`` mode calls it after its own resize); ``net.output``
  is the 1008-way class head.
- ``vgg16``: ``vgg16.pt``, VGG16 with the LPIPS linear weights. Called as ``net(img,
  resize_images=False, return_lpips=True) -> [N, D]`` on float images in [0, 255]; the squared L2
  distance between two outputs is the LPIPS distance (stylegan2-ada's perceptual path length).

Where a file is looked up, first match wins: an explicit path (``--weights`` /
``--extractor-weights`` / ``--lpips-weights``), the environment variable (``GANFORGE_INCEPTION_WEIGHTS``,
``GANFORGE_VGG16_WEIGHTS``; for offline machines, point it at a copy), then
``$GANFORGE_CACHE/weights/FILE`` where ``ganforge weights fetch NAME`` puts it.

SHA-256: ``fetch_weights`` hashes what it downloads. When ganforge pins a digest (``WeightsFile.sha256``)
or the user passes one (``--sha256``), a mismatch is an error and nothing is kept. The digests of
NVIDIA's files were NOT available to this project when this was written (no network on the build
machines), so none is pinned: the first download's digest is recorded beside the file
(``FILE.sha256``, trust on first use), printed for the user to compare with a published one, and any
later change of the file is refused. Every metric protocol records the digest of the file used.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.metrics.features import cache_root
from ganforge.training.checkpoint import sha256_file

NVIDIA_METRICS_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics"


@dataclass(frozen=True)
class WeightsFile:
    name: str  # what `ganforge weights fetch NAME` takes
    file: str
    url: str
    env: str  # environment variable naming an offline copy
    about: str
    sha256: str | None = None  # pinned digest; None: not known to ganforge (recorded on first fetch)


KNOWN_WEIGHTS: dict[str, WeightsFile] = {
    w.name: w
    for w in (
        WeightsFile(
            "inception",
            "inception-2015-12-05.pt",
            f"{NVIDIA_METRICS_URL}/inception-2015-12-05.pt",
            "GANFORGE_INCEPTION_WEIGHTS",
            "NVIDIA's TorchScript Inception-v3 (FID, KID, IS, precision/recall)",
        ),
        WeightsFile(
            "vgg16",
            "vgg16.pt",
            f"{NVIDIA_METRICS_URL}/vgg16.pt",
            "GANFORGE_VGG16_WEIGHTS",
            "NVIDIA's TorchScript VGG16 with LPIPS weights (the lpips metric)",
        ),
    )
}


def known(name: str) -> WeightsFile:
    if name not in KNOWN_WEIGHTS:
        raise GanforgeError(f"unknown weights {name!r}; choose one of: {', '.join(KNOWN_WEIGHTS)}.")
    return KNOWN_WEIGHTS[name]


def weights_dir() -> Path:
    """``$GANFORGE_CACHE/weights``: where ``ganforge weights fetch`` puts files."""
    return cache_root() / "weights"


def default_path(name: str) -> Path:
    return weights_dir() / known(name).file


def find_weights(name: str, path: str | Path | None = None) -> Path | None:
    """The file to use (explicit path, then the environment variable, then the cache), or None when absent.

    An explicit path or environment variable that names a missing file is an error: the user asked for it.
    """
    w = known(name)
    for given, origin in ((path, "the path given"), (os.environ.get(w.env) or None, f"${w.env}")):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise GanforgeError(
                    f"{w.name} weights: {origin} ({p}) is not a file; fix the path, or unset it and "
                    f"run `ganforge weights fetch {w.name}`."
                )
            return p
    p = default_path(name)
    return p if p.is_file() else None


def resolve_weights(name: str, path: str | Path | None = None) -> Path:
    """``find_weights`` or one line saying how to get the file."""
    p = find_weights(name, path)
    if p is None:
        w = known(name)
        raise GanforgeError(
            f"{w.name} weights ({w.file}) not found: run `ganforge weights fetch {w.name}` once, or "
            f"point --weights PATH or ${w.env} at an offline copy."
        )
    return p


def _digest_record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def check_weights(name: str, path: Path) -> str:
    """SHA-256 of ``path``; refused when it differs from the pinned digest or the one recorded at fetch time."""
    digest = sha256_file(path)
    w = known(name)
    record = _digest_record(path)
    expected = w.sha256 or (record.read_text().split()[0] if record.is_file() else None)
    if expected and digest != expected:
        raise GanforgeError(
            f"{path} has SHA-256 {digest[:16]}..., expected {expected[:16]}... (a partial or altered "
            f"file); fetch it again with `ganforge weights fetch {name} --force`."
        )
    return digest


def fetch_weights(
    name: str,
    dest: str | Path | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Download ``name`` once to ``dest`` (default: the cache), checking its SHA-256; return the path.

    ``url`` overrides the download address (a mirror, or a ``file://`` copy). An existing file is kept
    (and checked) unless ``force``. Written atomically: an interrupted download leaves nothing behind.
    """
    w = known(name)
    path = Path(dest).expanduser() if dest else default_path(name)
    if path.is_dir() or not path.suffix:  # a folder (existing, or a name without a file extension)
        path = path / w.file
    expected = (sha256 or w.sha256 or "").lower() or None
    if path.is_file() and not force:
        digest = check_weights(name, path)
        if expected and digest != expected:
            raise GanforgeError(
                f"{path} exists with SHA-256 {digest[:16]}..., not the {expected[:16]}... asked for; "
                "fetch again with --force."
            )
        log(f"{w.name}: already at {path} (sha256 {digest})")
        return path
    source = url or w.url
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    h = hashlib.sha256()
    log(f"{w.name}: downloading {source}")
    try:
        with urllib.request.urlopen(source, timeout=60) as response, open(tmp, "wb") as f:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
        digest = h.hexdigest()
        if expected and digest != expected:
            raise GanforgeError(
                f"the download of {source} has SHA-256 {digest[:16]}..., expected {expected[:16]}...; "
                "nothing was kept. Try again, or check the URL / --sha256."
            )
        os.replace(tmp, path)
    except OSError as e:  # URLError is an OSError: no network, 404, disk full
        raise GanforgeError(
            f"could not download {source} ({e}). On a machine without network, copy {w.file} from "
            f"one that has it and set ${w.env} to its path."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    _digest_record(path).write_text(f"{digest}  {w.file}\n")
    pinned = "matches the pinned digest" if expected else "no digest pinned: compare it with a published one"
    log(f"{w.name}: saved {path}\n  sha256 {digest} ({pinned})")
    return path


def weights_status() -> list[tuple[str, str]]:
    """(name, where it is or how to get it) for ``ganforge weights list``."""
    rows = []
    for w in KNOWN_WEIGHTS.values():
        try:
            p = find_weights(w.name)
        except GanforgeError as e:
            rows.append((w.name, f"error: {e}"))
            continue
        where = str(p) if p else f"missing (ganforge weights fetch {w.name}, or ${w.env}=PATH)"
        rows.append((w.name, f"{where}  [{w.about}]"))
    return rows
