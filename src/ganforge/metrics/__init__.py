"""Metrics: named protocols over pure math (features -> statistics -> value).

``EXTRACTORS`` holds the feature extractors (``domain``, ``inception``, ``raw``); ``METRICS`` the
named metrics that ``ganforge evaluate`` computes (``ganforge list metrics``). The pure math lives
in one module per concept (``fid``, ``kid``, ``prdc``, ...); ``evaluate`` runs them as protocols.
"""

from __future__ import annotations

from ganforge.metrics.extractors import EXTRACTORS
from ganforge.metrics.protocol import METRICS

__all__ = ["EXTRACTORS", "METRICS"]
