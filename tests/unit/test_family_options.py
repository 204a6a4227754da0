"""A family's own settings: the ``family:`` config section, checked strictly against its ``options`` dataclass."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ganforge.config import config_from_dict
from ganforge.errors import ConfigError
from ganforge.presets import load_config
from ganforge.registry import Entry
from ganforge.variants import VARIANTS
from ganforge.variants.gan import GAN


@dataclass(frozen=True)
class CycleOptions:
    cycle_weight: float = 10.0
    pool_size: int = 50

    def __post_init__(self) -> None:
        if self.cycle_weight < 0:
            raise ConfigError("bad value: family.cycle_weight must be >= 0. Fix it in the preset or with --set.")


class WithOptions(GAN):
    name = "with-options"
    help = "a GAN with options of its own (test only)"
    options = CycleOptions


@pytest.fixture
def family(monkeypatch):
    fam = WithOptions()
    monkeypatch.setitem(VARIANTS._entries, fam.name, Entry(fam.name, fam, fam.summary))
    return fam


def test_defaults_are_filled_in_and_overrides_typed(family):
    cfg = load_config("mnist-dcgan", ["variant=with-options", "family.pool_size=8"])
    assert cfg.family == {"cycle_weight": 10.0, "pool_size": 8}
    opts = family.settings(cfg)
    assert isinstance(opts, CycleOptions) and opts.pool_size == 8
    # a resolved config (a run's config.yaml) round-trips with its options
    assert family.settings(config_from_dict(cfg.to_dict())) == opts


def test_unknown_option_names_the_valid_ones(family):
    with pytest.raises(ConfigError, match=r"unknown config key 'family.pool'.*Did you mean 'family.pool_size'"):
        load_config("mnist-dcgan", ["variant=with-options", "family.pool=8"])


def test_bad_option_value_is_one_clear_error(family):
    with pytest.raises(ConfigError, match=r"family.pool_size: 'x' is not an integer"):
        load_config("mnist-dcgan", ["variant=with-options", "family.pool_size=x"])
    with pytest.raises(ConfigError, match=r"family.cycle_weight must be >= 0"):
        load_config("mnist-dcgan", ["variant=with-options", "family.cycle_weight=-1"])


def test_a_family_without_options_refuses_a_family_section():
    with pytest.raises(ConfigError, match=r"variant 'gan' takes no family options.*family.pool_size"):
        load_config("mnist-dcgan", ["family.pool_size=8"])
    assert load_config("mnist-dcgan").family == {}


def test_list_variants_shows_the_options(family):
    assert "family.cycle_weight=10.0" in family.summary
