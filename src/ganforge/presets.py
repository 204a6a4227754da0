"""A run's config, resolved in layers: the variant's defaults sit below the preset and the command line.

    dataclass defaults  <-  the variant's defaults  <-  preset YAML (``extends:`` chains)  <-  ``--set`` overrides

This sits above ``variants`` (it needs their defaults) so that ``config`` stays at the bottom of the layering.
"""

from __future__ import annotations

from typing import Any

from ganforge.config import (
    Config,
    from_dict,
    merge,
    parse_override,
    read_layers,
    replace,
    resolve_source,
    to_plain,
    validate,
)
from ganforge.variants import VARIANTS


def load_config(source: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Resolve a preset name or YAML path, plus ``key=value`` overrides, into a validated Config."""
    layers: list[dict[str, Any]] = read_layers(resolve_source(source)) if source else []
    layers += [parse_override(o) for o in overrides]
    return config_from_layers(layers)


def config_from_layers(layers: list[dict[str, Any]]) -> Config:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = merge(merged, layer)
    from_dict(Config, merged)  # strict check of every key first, so a typo is reported before anything else
    family = VARIANTS.get(merged.get("variant", Config.variant))
    resolved = merge(family.defaults, merged) if family.defaults else merged
    cfg = validate(from_dict(Config, resolved))
    # The family section is checked against the family's own options and recorded in full (defaults filled in),
    # so a run's config.yaml says every value it trained with.
    settings = family.settings(cfg)
    return replace(cfg, family=to_plain(settings)) if settings is not None else cfg
