"""TorchScript feature extractors: NVIDIA's Inception-v3 without torchvision, and any user network.

``--extractor inception`` (or ``inception:legacy_tensorflow`` / ``inception:clean``) with NVIDIA's
``inception-2015-12-05.pt`` (``ganforge weights fetch inception``), loaded with ``torch.jit.load``.
The two preprocessing protocols are named after clean-fid's modes (Parmar et al. 2022, "On Aliased
Resizing and Surprising Subtleties in GAN Evaluation", https://arxiv.org/abs/2104.11222), so a user
can match the paper they compare with:

- ``legacy_tensorflow`` (the default; stylegan2-ada, stylegan3, the original TF FID code): images
  quantised to uint8, fed at their own size; the network resizes to 299 inside (TF1-style bilinear)
  and normalises to [-1, 1]. Call: ``net(img, return_features=True)``.
- ``clean``: images quantised to uint8, each channel resized to 299x299 with PIL bicubic on float
  values (no re-quantisation), normalised as ``(x - 128) / 128``, then the trunk ``net.layers``.

Features: pool3, 2048-d. Logits for the Inception Score: ``features @ net.output.weight.T`` without the
bias, as stylegan2-ada's IS (``no_output_bias=True``); IS is invariant to the per-row constant that
separates these logits from the log-probabilities. Identity: the file's SHA-256 and the mode.

``--extractor torchscript:PATH``: any TorchScript module (e.g. a radiology-pretrained network saved
with ``torch.jit.script(model).save(PATH)``). It is called as ``net(x)`` on float images
[N, C, H, W] in [-1, 1] at the data's own resolution and channels (do any resizing or normalisation
inside the module) and returns features [N, ...] (flattened), or a tuple ``(features, logits)``.
Its file's SHA-256 is the identity and goes into every protocol.

TorchScript archives hold TorchScript code and tensors, not pickled Python objects; load only files
you trust all the same (a network can compute anything).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ganforge.data.base import Dataset
from ganforge.errors import GanforgeError
from ganforge.metrics.extractors import EXTRACTORS, Log, _quiet, pick_device
from ganforge.training.checkpoint import sha256_file

InceptionMode = Literal["legacy_tensorflow", "clean"]
INCEPTION_MODES: tuple[str, ...] = ("legacy_tensorflow", "clean")
CLEAN_SIZE = 299


def is_torchscript_file(path: Path) -> bool:
    """A TorchScript archive is a zip with a ``code/`` folder (a ``torch.save`` state dict has none)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.startswith("code/") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_torchscript(path: Path, what: str) -> torch.jit.ScriptModule:
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:  # RuntimeError from the archive reader: not a TorchScript file, truncated, ...
        raise GanforgeError(
            f"{what}: {path} is not a loadable TorchScript file ({type(e).__name__}); save the network "
            "with torch.jit.script(model).save(PATH) or torch.jit.trace(...).save(PATH)."
        ) from None


def quantise_uint8(x: torch.Tensor, what: str) -> torch.Tensor:
    """float [N, C, H, W] in [-1, 1] -> float [N, 3, H, W] holding uint8 values (0..255), as saved images would."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise GanforgeError(f"{what} needs images with 1 or 3 channels, got {tuple(x.shape)}.")
    img = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return img.repeat(1, 3, 1, 1) if img.shape[1] == 1 else img


def resize_clean(img: torch.Tensor, size: int = CLEAN_SIZE) -> torch.Tensor:
    """clean-fid's ``clean`` resize: each channel of [N, 3, H, W] (0..255) with PIL bicubic on float32 values."""
    from PIL import Image

    arr = img.numpy().astype(np.float32)
    out = np.empty((arr.shape[0], 3, size, size), dtype=np.float32)
    for i in range(arr.shape[0]):
        grey = bool((arr[i, 0] == arr[i, 1]).all() and (arr[i, 0] == arr[i, 2]).all())
        for c in range(1 if grey else 3):  # a grey image has three equal channels: resize one, copy it
            out[i, c] = np.asarray(Image.fromarray(arr[i, c]).resize((size, size), resample=Image.BICUBIC))
        if grey:
            out[i, 1:] = out[i, 0]
    return torch.from_numpy(out)


@dataclass
class TorchScriptInception:
    """NVIDIA's TorchScript Inception-v3 under one of clean-fid's preprocessing modes."""

    net: Any
    mode: InceptionMode
    file_sha256: str
    device: torch.device
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"inception:{self.mode}"

    @property
    def identity(self) -> str:
        return f"inception-torchscript:{self.mode}:2048:{self.file_sha256}"

    @property
    def short_hash(self) -> str:
        return self.file_sha256[:12]

    @property
    def preprocessing(self) -> str:
        if self.mode == "clean":
            return (
                "clean (clean-fid): quantise to uint8, grey repeated to RGB, PIL bicubic resize of float values to "
                "299, (x-128)/128, then net.layers"
            )
        return (
            "legacy_tensorflow (stylegan2-ada, clean-fid legacy): quantise to uint8, grey repeated to RGB, "
            "resized to 299 inside the network (TF1 bilinear)"
        )

    @property
    def has_logits(self) -> bool:
        return hasattr(self.net, "output") and hasattr(self.net.output, "weight")

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor, batch: int = 100) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.net.to(self.device)
        feats = []
        for i in range(0, len(x), batch):
            img = quantise_uint8(x[i : i + batch], "--extractor inception")
            if self.mode == "clean":
                z = (resize_clean(img).to(self.device) - 128) / 128
                f = self.net.layers(z)
            else:
                f = self.net(img.to(self.device), return_features=True)
            feats.append(f.reshape(len(img), -1).float().cpu())
        out = torch.cat(feats) if feats else torch.empty(0, 2048)
        logits = None
        if self.has_logits:  # IS logits: no output bias, as stylegan2-ada's IS
            logits = out @ self.net.output.weight.detach().float().cpu().T
        return out, logits


def build_torchscript_inception(
    path: Path, mode: str | None, device: torch.device, log: Log = _quiet
) -> TorchScriptInception:
    from ganforge.metrics.weights import check_weights

    mode = mode or "legacy_tensorflow"
    if mode not in INCEPTION_MODES:
        raise GanforgeError(
            f"unknown Inception protocol {mode!r}; use --extractor inception:legacy_tensorflow "
            "(resize inside the network, as stylegan2-ada) or inception:clean (PIL bicubic first)."
        )
    digest = check_weights("inception", path)
    net = load_torchscript(path, "--extractor inception")
    log(f"inception: TorchScript {path.name} (sha256 {digest[:12]}), protocol {mode}")
    info = {
        "kind": f"Inception-v3 (NVIDIA TorchScript, {mode})",
        "backend": "torchscript",
        "feature_dim": 2048,
        "weights": str(path),
        "file_sha256": digest,
        "test_accuracy": None,
    }
    return TorchScriptInception(net, mode, digest, device, info)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# any user network


@dataclass
class TorchScriptExtractor:
    net: Any
    file_sha256: str
    device: torch.device
    logits_out: bool  # the module returns (features, logits)
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "torchscript"

    @property
    def identity(self) -> str:
        return f"torchscript:{self.file_sha256}"

    @property
    def short_hash(self) -> str:
        return self.file_sha256[:12]

    @property
    def preprocessing(self) -> str:
        return "none outside the module: float images in [-1,1] at the data's resolution and channels"

    @property
    def has_logits(self) -> bool:
        return self.logits_out

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.net.to(self.device)
        feats, logits = [], []
        for i in range(0, len(x), batch):
            f, lg = _split_output(self.net(x[i : i + batch].detach().float().to(self.device)))
            feats.append(f.reshape(f.shape[0], -1).float().cpu())
            if lg is not None:
                logits.append(lg.float().cpu())
        out = torch.cat(feats) if feats else torch.empty(0, self.info.get("feature_dim", 0))
        return out, (torch.cat(logits) if self.logits_out and logits else None)


def _split_output(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(out, torch.Tensor):
        return out, None
    if isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out):
        return out[0], out[1]
    raise GanforgeError(
        "--extractor torchscript:PATH: the module must return a tensor of features or a tuple "
        f"(features, logits), not {type(out).__name__}."
    )


@EXTRACTORS.register(
    "torchscript",
    help="any TorchScript network as the extractor: --extractor torchscript:PATH "
    "(its file's SHA-256 goes into every protocol)",
)
def build_torchscript_extractor(
    train_set: Dataset | None = None,
    test_set: Dataset | None = None,
    *,
    device: str | torch.device | None = None,
    weights: str | None = None,
    option: str | None = None,
    log: Log = _quiet,
    **_: Any,
) -> TorchScriptExtractor:
    if weights is not None:
        raise GanforgeError(
            "--extractor torchscript takes its file in the name: --extractor torchscript:PATH; drop "
            "--extractor-weights."
        )
    if not option:
        raise GanforgeError("name the network file: --extractor torchscript:PATH (a torch.jit.save'd module).")
    path = Path(option).expanduser()
    if not path.is_file():
        raise GanforgeError(f"--extractor torchscript:{option}: no such file; check the path.")
    if train_set is not None and train_set.kind != "image":
        raise GanforgeError("--extractor torchscript is for images; 2D point metrics work on raw coordinates.")
    net = load_torchscript(path, "--extractor torchscript")
    device = pick_device(device)
    digest = sha256_file(path)
    logits_out, dim = False, None
    if train_set is not None:  # one call on two real images: the interface is checked before any work
        try:
            with torch.no_grad():
                f, lg = _split_output(net.to(device)(train_set.x[:2].float().to(device)))
        except GanforgeError:
            raise
        except Exception as e:
            raise GanforgeError(
                f"--extractor torchscript:{option} failed on the data's images "
                f"{tuple(train_set.x[:2].shape)} in [-1, 1] ({type(e).__name__}: {str(e)[:200]}); "
                "the module must accept them as they are."
            ) from None
        logits_out, dim = lg is not None, int(f.reshape(f.shape[0], -1).shape[1])
    log(f"torchscript: {path.name} (sha256 {digest[:12]}), {dim}-d features" + (" + logits" if logits_out else ""))
    info = {
        "kind": "user TorchScript network",
        "backend": "torchscript",
        "feature_dim": dim,
        "weights": str(path),
        "file_sha256": digest,
        "test_accuracy": None,
    }
    return TorchScriptExtractor(net, digest, device, logits_out, info)
