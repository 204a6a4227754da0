"""Metrics: named protocols over pure math (features -> statistics -> value).

``EXTRACTORS`` holds the feature extractors (``domain``, ``inception``, ``torchscript``, ``raw``); ``METRICS`` the
named metrics that ``ganforge evaluate`` computes (``ganforge list metrics``). The pure math lives
in one module per concept (``fid``, ``kid``, ``prdc``, ...); ``protocol`` says how a number is
recorded; ``image_metrics``, ``lpips``, ``usefulness`` and ``points`` register the metrics; ``evaluate`` runs them.
"""

from __future__ import annotations

from ganforge.metrics import image_metrics, lpips, points, segmentation, usefulness  # noqa: F401  (registration)
from ganforge.metrics.extractors import EXTRACTORS
from ganforge.metrics.protocol import METRICS

__all__ = ["EXTRACTORS", "METRICS"]
