"""GAN variants. ONE FILE PER VARIANT, each registering a ``Variant`` in ``VARIANTS``.

A variant says how labels enter G and D (its ``Conditioning``) and which config defaults it brings
(e.g. WGAN-GP: Wasserstein loss, gradient penalty 10, five critic steps). The defaults sit below the
preset and the command line, so everything stays overridable. ``ganforge list variants`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ganforge.models.layers import Conditioning
from ganforge.registry import Registry


@dataclass(frozen=True)
class Variant:
    name: str
    help: str
    conditioning: Conditioning = Conditioning()
    defaults: dict[str, Any] = field(default_factory=dict)  # nested config dict, e.g. {"objective": {...}}
    reference: str = ""

    @property
    def needs_labels(self) -> bool:
        return self.conditioning.conditional

    @property
    def summary(self) -> str:
        """What ``ganforge list variants`` shows: the help, how labels enter G and D, the defaults it brings."""
        from ganforge.config import describe_layer

        cond = f"labels: G {self.conditioning.g}, D {self.conditioning.d}" if self.needs_labels else "unconditional"
        return f"{self.help}\n    {cond}; defaults: {', '.join(describe_layer(self.defaults)) or 'none'}"


VARIANTS: Registry[Variant] = Registry("variant")


def register(variant: Variant) -> Variant:
    VARIANTS.add(variant.name, variant, help=variant.summary)
    return variant


from ganforge.variants import acgan, cgan, cwgan_gp, gan, projection, wgan_gp  # noqa: E402,F401  (registration)

__all__ = ["VARIANTS", "Variant", "register"]
