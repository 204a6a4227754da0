"""Every registered GAN variant, with each architecture, trains one tick on CPU and exports a generator
that samples the requested labels. Looped over ``VARIANTS``: a new variant is covered without editing this file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ganforge.catalog import catalog
from ganforge.errors import GanforgeError
from ganforge.experiments.runner import start_run
from ganforge.presets import config_from_layers
from ganforge.training.export import load_generator
from ganforge.variants import VARIANTS
from ganforge.variants.two_domain import TwoDomainFamily

# Tiny problems: 8x8 digits through the DCGAN and ResNet pairs, the labelled 8-Gaussian ring through the MLP pair.
DATA = {
    "dcgan": {"name": "mnist5k", "resolution": 8, "limit": 256},
    "resnet": {"name": "mnist5k", "resolution": 8, "limit": 256},
    "mlp": {"name": "ring8", "n_points": 256},
}
DATA_KIND = {"dcgan": "image", "resnet": "image", "mlp": "points"}
MODEL = {"z_dim": 8, "embed_dim": 4, "g_hidden": [32], "d_hidden": [32], "g_channels": 16, "d_channels": 8}


def tiny_config(variant: str, arch: str, data: dict | None = None, **extra):
    layers = [
        {
            "name": f"conformance-{variant}-{arch}",
            "variant": variant,
            "data": data or DATA[arch],
            "model": {"arch": arch, **MODEL},
            # 160 images: one iteration of 5 critic steps of 32, or five iterations of one; a single tick.
            "train": {"kimg": 0.16, "tick_kimg": 1, "batch_size": 32, "grid_size": 16, "device": "cpu"},
        },
        extra,
    ]
    return config_from_layers(layers)


# Image-to-image families (variants.two_domain) translate instead of sampling: they get two-domain data and a test
# of their own below, whatever their architecture setting.
TRANSLATION = [v for v in VARIANTS.names() if isinstance(VARIANTS.get(v), TwoDomainFamily)]
# Coupled families (CoGAN) draw a pair per z in two domains: two-domain data and a test of their own too.
COUPLED = [v for v in VARIANTS.names() if VARIANTS.get(v).export_info().get("coupled")]
SAMPLING = [v for v in VARIANTS.names() if v not in TRANSLATION and v not in COUPLED]
# Families that draw images only (their own networks: stylegan2, progan, ...) skip the 2D points of the MLP pair,
# and a family with networks of its own runs once, at the default model.arch (it refuses any other).
PAIRS = [(v, a) for v in SAMPLING for a in sorted(DATA) if DATA_KIND[a] in VARIANTS.get(v).data_kinds
         and (a == "dcgan" or VARIANTS.get(v).uses_model_arch)]


@pytest.mark.parametrize(("variant", "arch"), PAIRS)
def test_variant_trains_one_tick_and_samples_requested_labels(variant, arch, tmp_path):
    cfg = tiny_config(variant, arch)
    out = tmp_path / "run"
    result = start_run(cfg, out=str(out), progress=False, log=lambda _: None)
    assert result.summary["ticks"] == 1 and result.summary["images_seen"] >= 160
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("loss_D", "loss_G", "D_real", "D_fake"):
        assert math.isfinite(record[key]), (key, record)
    assert ("gp" in record) == (cfg.objective.gp_weight > 0)
    cond = VARIANTS.get(variant).conditioning
    assert ("loss_aux" in record or "loss_info" in record) == (cond.d.name == "aux")  # AC-GAN's or InfoGAN's Q

    gen = load_generator(out)
    assert gen.conditioning == cond
    shape = gen.shape
    if cond.g.conditional:
        labels = torch.tensor([3, 0, 7, 7, 1])
        x, got = gen.sample(5, seed=1, labels=labels)
        assert torch.equal(got, labels) and x.shape == (5, *shape)
        x2, _ = gen.sample(5, seed=1, labels=labels, batch=2)
        # same seed, same labels: same samples in any batch size (up to float32 rounding: BLAS blocks a matmul
        # differently for other row counts, ~1e-6 after StyleGAN2's eight mapping layers)
        assert torch.allclose(x, x2, atol=1e-5)
        other, _ = gen.sample(5, seed=1, labels=torch.tensor([4, 4, 4, 4, 4]))
        assert not torch.allclose(x, other)  # the label changes the sample
        _, drawn = gen.sample(50, seed=2)
        assert drawn.min() >= 0 and drawn.max() < gen.num_classes
    else:
        x, got = gen.sample(5, seed=1)
        assert got is None and x.shape == (5, *shape)
        with pytest.raises(GanforgeError):
            gen.sample(2, seed=1, labels=torch.tensor([0, 1]))


@pytest.mark.parametrize("variant", sorted(VARIANTS.names()))
def test_variant_honours_or_refuses_reuse_fakes(variant, tmp_path):
    """objective.reuse_fakes either trains (G's step draws no fakes of its own, finite statistics) or is refused
    up front with a message naming the key; never ignored."""
    family = VARIANTS.get(variant)
    if not family.reuses_fakes:
        from ganforge.errors import ConfigError

        data = DATA["dcgan"] if variant not in TRANSLATION + COUPLED else {
            "name": "mnist-styles", "domains": ["mnist", "textured"], "resolution": 16, "limit": 64}
        with pytest.raises(ConfigError, match="reuse_fakes=false"):
            start_run(tiny_config(variant, "dcgan", data, objective={"reuse_fakes": True}), out=str(tmp_path / "r"),
                      progress=False, log=lambda _: None)
        assert not (tmp_path / "r").exists()  # refused before anything was written
        return
    cfg = tiny_config(variant, "dcgan", objective={"reuse_fakes": True})
    calls = {"G": 0, "iterations": 0}
    from ganforge.training.step import EagerStep
    from ganforge.variants.gan import GANObjective

    run_g, call = GANObjective.run_G, EagerStep.__call__

    def counting_run_g(self, *args):
        calls["G"] += 1
        return run_g(self, *args)

    def counting_call(self, *args):
        calls["iterations"] += 1
        return call(self, *args)

    mp = pytest.MonkeyPatch()
    mp.setattr(GANObjective, "run_G", counting_run_g)
    mp.setattr(EagerStep, "__call__", counting_call)
    try:
        result = start_run(cfg, out=str(tmp_path / "run"), progress=False, log=lambda _: None)
    finally:
        mp.undo()
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert result.summary["ticks"] == 1 and math.isfinite(record["loss_G"]) and math.isfinite(record["loss_D"])
    # a G forward per D step (n_critic), none of its own in G's step
    assert calls["iterations"] > 0 and calls["G"] == calls["iterations"] * cfg.objective.n_critic


def train_two_domain_tick(variant: str, tmp_path: Path):
    """One tick of ``variant`` on two domains of different channels (MNIST and MNIST-M-like RGB, 16 px) with finite
    statistics; returns (run folder, exported generator)."""
    cfg = tiny_config(variant, "dcgan", data={"name": "mnist-styles", "domains": ["mnist", "textured"],
                                              "resolution": 16, "limit": 64})
    out = tmp_path / "run"
    result = start_run(cfg, out=str(out), progress=False, log=lambda _: None)
    assert result.summary["ticks"] == 1 and result.summary["images_seen"] >= 160
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("loss_D", "loss_G", "D_real", "D_fake"):
        assert math.isfinite(record[key]), (key, record)
    return out, load_generator(out)


@pytest.mark.parametrize("variant", TRANSLATION)
def test_translation_family_trains_one_tick_and_translates(variant, tmp_path):
    """Two-domain data (MNIST -> MNIST-M-like RGB: the domains differ in channels), one tick, then the exported
    translator maps each direction it has to the other domain's shape, deterministically."""
    family = VARIANTS.get(variant)
    out, gen = train_two_domain_tick(variant, tmp_path)
    assert gen.spec["translation"] and gen.spec["shape_b"] == [3, 16, 16]
    G = gen.G
    a = torch.rand(4, 1, 16, 16) * 2 - 1
    fake_b = G(a, "AtoB")
    assert fake_b.shape == (4, 3, 16, 16) and fake_b.abs().max() <= 1
    assert torch.equal(fake_b, G(a, "AtoB"))  # eval mode: deterministic
    assert not torch.allclose(fake_b[0], fake_b[1])  # the output depends on the input
    assert ("BtoA" in G.directions) == family.two_way
    if "BtoA" in G.directions:
        assert G(fake_b, "BtoA").shape == (4, 1, 16, 16)
    with pytest.raises(GanforgeError):  # a translator draws no samples
        from ganforge.generate import generate_dataset

        generate_dataset(out, tmp_path / "gen", n=2)


@pytest.mark.parametrize("variant", COUPLED)
def test_coupled_family_trains_one_tick_and_draws_pairs(variant, tmp_path):
    """Two domains of different channels (MNIST and MNIST-M-like RGB), one tick; the exported generator draws one
    pair per z, deterministically, and refuses to translate."""
    out, gen = train_two_domain_tick(variant, tmp_path)
    assert gen.spec["coupled"] and gen.spec["shape_b"] == [3, 16, 16]
    z = torch.randn(4, gen.G.z_dim)
    a, b = gen.G.pair(z)
    assert a.shape == (4, 1, 16, 16) and b.shape == (4, 3, 16, 16) and a.abs().max() <= 1
    a2, b2 = gen.G.pair(z)
    assert torch.equal(a, a2) and torch.equal(b, b2)  # eval mode: deterministic
    assert not torch.allclose(b[0], b[1])  # the pair depends on z
    with pytest.raises(GanforgeError):  # it draws; it does not translate
        from ganforge.translate import translate_images

        translate_images(out, tmp_path / "in.npz", tmp_path / "t")


@pytest.mark.parametrize("variant", VARIANTS.names())
def test_variant_is_described_and_its_defaults_are_valid_config(variant):
    entry = VARIANTS.entry(variant)
    v = entry.obj
    assert v.name == variant and entry.help and v.reference
    cfg = config_from_layers([{"variant": variant, "train": {"kimg": 1}}])  # defaults pass the strict checks
    for section, values in v.defaults.items():
        for key, value in values.items():
            got = getattr(getattr(cfg, section), key)
            assert got == (tuple(value) if isinstance(value, list) else value), (section, key)


def test_presets_override_variant_defaults():
    cfg = config_from_layers([{"variant": "wgan-gp", "objective": {"n_critic": 2}, "train": {"kimg": 1}}])
    assert cfg.objective.n_critic == 2 and cfg.objective.gp_weight == 10


def test_list_shows_every_variant():
    listed = dict(catalog()["variants"])
    assert set(listed) == set(VARIANTS.names())
    assert all(listed.values())
    for name in VARIANTS.names():  # the options each variant brings are shown
        v = VARIANTS.get(name)
        assert "defaults:" in listed[name] and ("unconditional" in listed[name]) != v.needs_labels
        for section, values in v.defaults.items():
            for key in values:
                assert f"{section}.{key}=" in listed[name]
