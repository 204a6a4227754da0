"""ganforge: train, evaluate and compare GANs; turn them into synthetic datasets you can use."""

from __future__ import annotations

__version__ = "0.1.0"
