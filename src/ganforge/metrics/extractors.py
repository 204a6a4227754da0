"""Feature extractors: the networks that map samples to the features the metrics compare.

Every extractor is registered in ``EXTRACTORS`` as a builder
``(train_set, test_set, *, device, weights, log) -> FeatureExtractor``. What it returns knows its
name, an identity hash (recorded in every metric protocol, so numbers from different feature spaces
are never mixed), the preprocessing it applies, and facts such as its test accuracy.

- ``domain`` (default, ``domain_extractor``): a small CNN that ganforge trains on the run's real
  *training* split. Labelled data: a classifier; features = its penultimate layer (128-d), logits =
  its class head, used for the Inception-style score. Unlabelled images: an autoencoder whose 128-d
  bottleneck is the feature (no logits). Trained deterministically, its test accuracy measured on the
  real test split, and cached on disk keyed by a SHA-256 of data, architecture and training recipe.
- ``inception`` (``inception_extractor``): the standard FID network (Inception-v3 pool3, 2048-d,
  TF-compatible): NVIDIA's TorchScript file when found (``ganforge weights fetch inception``; modes
  ``inception:legacy_tensorflow`` and ``inception:clean``), else torch-fidelity (``ganforge[inception]``).
- ``torchscript:PATH`` (``torchscript_extractor``): any user TorchScript network; its file hash in the protocol.
- ``raw`` (here): no network; flattened pixels or 2D coordinates (what the toy-2D metrics use).

A name may carry an option after a colon, passed to the builder: ``inception:clean``, ``torchscript:PATH``.

This module holds the protocol, the registry, the ``raw`` extractor and ``build_extractor``. ONE FILE
PER NETWORK EXTRACTOR: each plugin module registers itself in ``EXTRACTORS`` when ``ganforge.metrics``
imports its submodules.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ganforge.data.base import Dataset
from ganforge.errors import GanforgeError
from ganforge.registry import Registry


class FeatureExtractor(Protocol):
    name: str
    identity: str  # full hash of everything that makes these features what they are
    preprocessing: str  # what happens to a sample before the network, in words
    info: dict[str, Any]  # facts for the protocol: test accuracy, feature dim, cache hit, ...

    @property
    def short_hash(self) -> str: ...

    @property
    def has_logits(self) -> bool: ...

    def features_and_logits(
        self, x: torch.Tensor, batch: int = 500
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...


ExtractorBuilder = Callable[..., FeatureExtractor]
EXTRACTORS: Registry[ExtractorBuilder] = Registry("extractor")

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ----------------------------------------------------------------------------------------------
# raw: no network


@dataclass
class RawExtractor:
    info: dict[str, Any] = field(default_factory=lambda: {"kind": "identity", "test_accuracy": None})
    name: str = "raw"

    @property
    def identity(self) -> str:
        return "raw:flatten"

    @property
    def short_hash(self) -> str:
        return "flatten"

    @property
    def preprocessing(self) -> str:
        return "none: flattened pixels in [-1,1] or raw coordinates"

    @property
    def has_logits(self) -> bool:
        return False

    def features_and_logits(self, x: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
        return x.detach().float().cpu().flatten(1), None


@EXTRACTORS.register("raw", help="no network: flattened pixels, or the coordinates of 2D points")
def build_raw_extractor(*_: Any, weights: str | None = None, **__: Any) -> RawExtractor:
    if weights is not None:
        raise GanforgeError("--extractor-weights is for --extractor inception; drop it for --extractor raw.")
    return RawExtractor()


def split_extractor_name(name: str) -> tuple[str, str | None]:
    """``"inception:clean"`` -> ("inception", "clean"); ``"torchscript:/a/b.pt"`` -> ("torchscript", "/a/b.pt")."""
    kind, sep, option = name.partition(":")
    return kind, (option if sep else None)


def check_extractor_name(name: str) -> str:
    """The registered kind of ``name`` (ConfigError with the valid names on a typo)."""
    kind, _ = split_extractor_name(name)
    EXTRACTORS.get(kind)
    return kind


def build_extractor(
    name: str, train_set: Dataset, test_set: Dataset | None = None, *, device: str | torch.device | None = None,
    weights: str | None = None, log: Log = _quiet,
) -> FeatureExtractor:
    """Look up ``name`` in EXTRACTORS (ConfigError with the valid names) and build it for this data.

    ``KIND:OPTION`` passes OPTION to the builder (``inception:clean``, ``torchscript:PATH``); builders
    without an ``option`` parameter take none.
    """
    kind, option = split_extractor_name(name)
    builder = EXTRACTORS.get(kind)
    if option is None:
        return builder(train_set, test_set, device=device, weights=weights, log=log)
    if "option" not in inspect.signature(builder).parameters:
        raise GanforgeError(f"--extractor {kind} takes no ':{option}' part; use --extractor {kind}.")
    return builder(train_set, test_set, device=device, weights=weights, option=option, log=log)

