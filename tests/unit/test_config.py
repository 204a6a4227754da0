"""Config loading: presets resolve, unknown keys fail with the nearest name, values are range checked."""

from __future__ import annotations

import pytest

from ganforge.config import Config, config_from_dict, parse_override, preset_names
from ganforge.errors import ConfigError
from ganforge.presets import load_config


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_resolves_and_round_trips(name):
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    assert cfg.name == name
    assert cfg.train.kimg is not None or cfg.train.epochs is not None
    assert config_from_dict(cfg.to_dict()) == cfg  # what the run directory stores rebuilds the same config


def test_sine_preset_matches_the_study():
    cfg = load_config("sine")
    assert cfg.model.z_dim == 2 and cfg.model.g_hidden == (16, 32) and cfg.model.d_hidden == (256, 128, 64)
    assert cfg.model.d_dropout == (0.3,) and cfg.objective.loss == "bce"
    assert cfg.optim.lr_g == 1e-3 and cfg.train.batch_size == 32 and cfg.train.epochs == 2000


def test_extends_chain_accumulates():
    cfg = load_config("parametric-curve-final")
    assert cfg.model.g_act == "leaky_relu" and cfg.model.g_batchnorm == (True,) and cfg.model.z_dim == 3
    assert cfg.model.d_dropout == (0.2, 0.2, 0.0)
    assert cfg.data.name == "parametric-curve"


def test_override_kimg_replaces_preset_epochs():
    cfg = load_config("sine", ["train.kimg=20"])
    assert cfg.train.kimg == 20 and cfg.train.epochs is None


def test_override_types_are_coerced():
    cfg = load_config("sine", ["optim.lr_g=1e-4", "train.batch_size=16", "model.g_hidden=[8,8,8]", "train.kimg=0.5"])
    assert cfg.optim.lr_g == pytest.approx(1e-4) and cfg.train.batch_size == 16
    assert cfg.model.g_hidden == (8, 8, 8) and cfg.train.kimg == 0.5


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.kimgs'.*Did you mean 'train\.kimg'"):
        load_config("sine", ["train.kimgs=3"])
    with pytest.raises(ConfigError, match=r"unknown config key 'trian'.*Did you mean 'train'"):
        load_config("sine", ["trian.kimg=3"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr_d=0", "lr_d must be > 0"),
        ("optim.lr_g=-1", "lr_g must be > 0"),
        ("train.batch_size=0", "batch_size must be >= 1"),
        ("train.kimg=-5", "kimg must be > 0"),
        ("train.batch_size=1.5", "is not an integer"),
        ("train.device=tpu", "Choose one of"),
        ("model.g_hidden=[16,abc]", "is not an integer"),
        ("objective.n_critic=0", "n_critic must be >= 1"),
    ],
)
def test_bad_values_fail_clearly(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("sine", [override])


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'sine'"):
        load_config("sin")


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.kimg")


def test_yaml_file_with_unknown_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("extends: sine\nmodel:\n  zdim: 3\n")
    with pytest.raises(ConfigError, match="Did you mean 'model.z_dim'"):
        load_config(str(path))


def test_length_is_required():
    with pytest.raises(ConfigError, match="training length"):
        load_config(None, ["data.name=sine"])
