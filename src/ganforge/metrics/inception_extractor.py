"""The ``inception`` feature extractor: the standard FID network, from NVIDIA's TorchScript file or torch-fidelity.

Which network runs (recorded in the extractor's name, identity and ``info.backend``):

1. NVIDIA's TorchScript ``inception-2015-12-05.pt`` (``torchscript_extractor``), no torchvision needed,
   whenever it is found: ``--extractor-weights``/``--weights PATH`` naming a TorchScript file,
   ``$GANFORGE_INCEPTION_WEIGHTS``, or ``ganforge weights fetch inception``'s copy in the cache. Modes
   ``inception:legacy_tensorflow`` (default) and ``inception:clean``, named after clean-fid's.
2. Otherwise torch-fidelity's ``inception-v3-compat`` (``pip install ganforge[inception]``: torch-fidelity
   and a matching torchvision) with its weights file (torch hub's checkpoint folder, or a ``.pth`` given as
   ``--extractor-weights PATH``): Inception-v3 pool3 (2048-d) and its logits, TF1-compatible. Images are
   quantised to uint8 as saved images would be. Identified by the SHA-256 of the weights.

Registered in ``EXTRACTORS`` as ``inception``.
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


@EXTRACTORS.register("inception", help="Inception-v3 pool3 (2048-d, TF-compatible): NVIDIA's TorchScript file "
                                       "(inception:legacy_tensorflow | inception:clean) or torch-fidelity")
def build_inception_extractor(
    train_set: Dataset | None = None, test_set: Dataset | None = None, *, device: str | torch.device | None = None,
    weights: str | None = None, option: str | None = None, log: Log = _quiet, **_: Any,
) -> Any:
    if train_set is not None and train_set.kind != "image":
        raise GanforgeError("the inception extractor is for images; 2D point metrics work on raw coordinates.")
    if train_set is not None and train_set.mask_channels:
        raise GanforgeError(
            f"{train_set.name!r} pairs each image with a segmentation mask, which Inception-v3 cannot see; the domain "
            "extractor (the default) is trained on the pairs. Drop --extractor inception."
        )
    from ganforge.metrics.torchscript_extractor import build_torchscript_inception, is_torchscript_file
    from ganforge.metrics.weights import find_weights, resolve_weights

    device = pick_device(device)
    given = Path(weights).expanduser() if weights else None
    torchscript = find_weights("inception", given) if given is None or is_torchscript_file(given) else None
    if torchscript is not None:
        return build_torchscript_inception(torchscript, option, device, log)
    if option:  # a clean-fid mode needs NVIDIA's file
        if given is not None:
            raise GanforgeError(f"--extractor inception:{option} runs NVIDIA's TorchScript inception-2015-12-05.pt; "
                                f"{given} is not a TorchScript file. Give that file, or drop ':{option}'.")
        resolve_weights("inception")  # not found: one line saying how to get it
    if given is None and not default_inception_weights().is_file():
        resolve_weights("inception")  # neither network's weights are here: say how to fetch NVIDIA's
    cls = _import_inception()
    path = given or default_inception_weights()
    if not path.is_file():
        raise GanforgeError(
            f"Inception weights not found at {path}. Run `ganforge weights fetch inception` (NVIDIA's TorchScript "
            f"file, no torchvision needed), or download {INCEPTION_URL} for torch-fidelity."
        )
    model = cls("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path))
    info = {"kind": "Inception-v3 (torch-fidelity inception-v3-compat)", "backend": "torch-fidelity",
            "feature_dim": 2048, "weights": str(path), "test_accuracy": None}
    return InceptionExtractor(model.eval(), sha256_file(path), device, info)
