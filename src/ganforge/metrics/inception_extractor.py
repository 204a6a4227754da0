"""The ``inception`` feature extractor: the standard FID network through torch-fidelity.

Inception-v3 pool3 (2048-d) and its logits, the TF1-compatible ``inception-v3-compat`` model, so
numbers are comparable with published FIDs. Optional: needs ``pip install ganforge[inception]``
(torch-fidelity and a matching torchvision) and its weights file (torch hub's checkpoint folder, or
``--extractor-weights PATH``). Images are quantised to uint8 as saved images would be. Identified
by the SHA-256 of the weights. Registered in ``EXTRACTORS`` as ``inception``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganforge.data.base import Dataset
from ganforge.errors import GanforgeError
from ganforge.metrics.extractors import EXTRACTORS, Log, _quiet, pick_device
from ganforge.training.checkpoint import sha256_file

INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def default_inception_weights() -> Path:
    """Where torch-fidelity's download lands: torch hub's checkpoint folder."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def _import_inception() -> type:
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception as e:  # ImportError, or torchvision failing to load against this torch
        raise GanforgeError(
            f"--extractor inception needs torch-fidelity and a torchvision that matches your torch "
            f"({type(e).__name__}: {e}). Install them with `pip install 'ganforge[inception]'` (or "
            "`pip install torch-fidelity torchvision` with the torchvision built for your torch), or use "
            "--extractor domain."
        ) from None
    return FeatureExtractorInceptionV3


@dataclass
class InceptionExtractor:
    model: Any
    weights_sha256: str
    device: torch.device
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "inception"

    @property
    def identity(self) -> str:
        return f"inception-v3-compat:2048:{self.weights_sha256}"

    @property
    def short_hash(self) -> str:
        return self.weights_sha256[:12]

    @property
    def preprocessing(self) -> str:
        return ("quantise to uint8 (round((x+1)*127.5)), grey repeated to RGB, "
                "torch-fidelity TF1-compatible bilinear resize to 299")

    @property
    def has_logits(self) -> bool:
        return True

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor, batch: int = 100) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, logits = [], []
        self.model.to(self.device).eval()
        for i in range(0, len(x), batch):
            img = to_inception_input(x[i : i + batch]).to(self.device)
            f, lg = self.model(img)
            feats.append(f.float().cpu())
            logits.append(lg.float().cpu())
        if not feats:
            return torch.empty(0, 2048), torch.empty(0, 1008)
        return torch.cat(feats), torch.cat(logits)


def to_inception_input(x: torch.Tensor) -> torch.Tensor:
    """float [N, C, H, W] in [-1, 1] -> uint8 [N, 3, H, W], quantised as saved images would be."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise GanforgeError(f"--extractor inception needs images with 1 or 3 channels, got {tuple(x.shape)}.")
    img = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return img.repeat(1, 3, 1, 1) if img.shape[1] == 1 else img


@EXTRACTORS.register("inception", help="Inception-v3 pool3 (2048-d, TF-compatible) via torch-fidelity; optional")
def build_inception_extractor(
    train_set: Dataset | None = None, test_set: Dataset | None = None, *, device: str | torch.device | None = None,
    weights: str | None = None, log: Log = _quiet, **_: Any,
) -> InceptionExtractor:
    if train_set is not None and train_set.kind != "image":
        raise GanforgeError("the inception extractor is for images; 2D point metrics work on raw coordinates.")
    if train_set is not None and train_set.mask_channels:
        raise GanforgeError(
            f"{train_set.name!r} pairs each image with a segmentation mask, which Inception-v3 cannot see; the domain "
            "extractor (the default) is trained on the pairs. Drop --extractor inception."
        )
    cls = _import_inception()
    path = Path(weights).expanduser() if weights else default_inception_weights()
    if not path.is_file():
        raise GanforgeError(
            f"Inception weights not found at {path}. Download {INCEPTION_URL} to {default_inception_weights()} "
            "(torch-fidelity does this on first use with a network), or pass --extractor-weights PATH."
        )
    device = pick_device(device)
    model = cls("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path))
    info = {"kind": "Inception-v3 (torch-fidelity inception-v3-compat)", "feature_dim": 2048, "weights": str(path),
            "test_accuracy": None}
    return InceptionExtractor(model.eval(), sha256_file(path), device, info)
