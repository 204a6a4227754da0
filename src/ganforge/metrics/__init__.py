"""Metrics: named protocols over pure math (features -> statistics -> value).

``EXTRACTORS`` holds the feature extractors (``domain``, ``inception``, ``torchscript``, ``raw``); ``METRICS`` the
named metrics that ``ganforge evaluate`` computes (``ganforge list metrics``). The pure math lives
in one module per concept (``fid``, ``kid``, ``prdc``, ...); ``protocol`` says how a number is
recorded; ``image_metrics``, ``lpips``, ``usefulness`` and ``points`` register the metrics; ``evaluate`` runs them.
"""

from __future__ import annotations

from ganforge.metrics.extractors import EXTRACTORS
from ganforge.metrics.protocol import METRICS
from ganforge.plugins import import_submodules

import_submodules(__name__, __path__)  # each metric and extractor module registers itself

__all__ = ["EXTRACTORS", "METRICS"]
