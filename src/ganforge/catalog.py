"""What ``ganforge list`` prints: every registry, looked up by name, plus the presets."""

from __future__ import annotations

from ganforge.config import preset_description, preset_names
from ganforge.registry import Registry, describe


def registries() -> dict[str, Registry]:
    from ganforge.data import DATASETS
    from ganforge.models import ARCHS
    from ganforge.objectives import LOSSES
    from ganforge.variants import VARIANTS

    out: dict[str, Registry] = {"variants": VARIANTS, "datasets": DATASETS, "archs": ARCHS, "losses": LOSSES}
    try:
        from ganforge.metrics import EXTRACTORS, METRICS

        out["metrics"], out["extractors"] = METRICS, EXTRACTORS
    except ImportError:
        pass
    return out


def catalog() -> dict[str, list[tuple[str, str]]]:
    sections = {"presets": [(name, preset_description(name)) for name in preset_names()]}
    for name, registry in registries().items():
        sections[name] = describe(registry)
    return sections
