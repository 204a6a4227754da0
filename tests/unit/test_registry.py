"""The plugin registry: registration, lookup with suggestions, duplicates refused, help from docstrings."""

from __future__ import annotations

import pytest

from ganforge.errors import ConfigError
from ganforge.registry import Registry, closest, describe


def test_register_lookup_and_help():
    reg: Registry = Registry("widget")

    @reg.register("round", help="a round one")
    def round_widget():
        return "round"

    @reg.register("square")
    def square_widget():
        """Four equal sides.

        More text that is not the help line."""

    assert reg.get("round") is round_widget and "square" in reg and len(reg) == 2
    assert describe(reg) == [("round", "a round one"), ("square", "Four equal sides.")]
    assert reg.names() == ["round", "square"] and reg.entry("square").obj is square_widget


def test_unknown_name_suggests_the_nearest_and_lists_all():
    reg: Registry = Registry("widget")
    reg.add("hexagon", object())
    reg.add("octagon", object())
    with pytest.raises(ConfigError, match=r"unknown widget 'hexagn'. Did you mean 'hexagon'\? Valid widgets: "
                                          r"hexagon, octagon\."):
        reg.get("hexagn")
    with pytest.raises(ConfigError) as e:
        reg.get("zzz")
    assert "Did you mean" not in str(e.value)
    assert closest("octagn", reg.names()) == "octagon" and closest("zzz", reg.names()) is None


def test_registering_a_name_twice_is_a_bug():
    reg: Registry = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("a", 2)
