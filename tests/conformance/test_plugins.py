"""Plugins are found without hand-kept lists: a package outside ganforge registers a family and a dataset
through the ``ganforge.plugins`` entry-point group and trains from the command line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.conftest import run_cli

PLUGIN = '''
"""An out-of-tree ganforge plugin: a dataset and a family, registered by importing this module."""
import torch

from ganforge.data.base import DATASETS, Dataset
from ganforge.variants import register
from ganforge.variants.gan import GAN


@DATASETS.register("plugin-blobs", help="two Gaussian blobs (a plugin's dataset)")
def load_blobs(cfg, split):
    g = torch.Generator().manual_seed(cfg.seed + (split == "test"))
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    x = centres[torch.randint(0, 2, (cfg.n_points,), generator=g)] + 0.1 * torch.randn(cfg.n_points, 2, generator=g)
    return Dataset("plugin-blobs", x, kind="points", source="plugin")


@register
class PluginHingeGAN(GAN):
    name = "plugin-hinge"
    help = "a plugin's family: the GAN family with the hinge loss"
    reference = "a test plugin"
    defaults = {"objective": {"loss": "hinge"}}
'''


def make_plugin(root: Path) -> Path:
    """A tiny installed package: its module and a .dist-info with an entry point, as pip would leave them."""
    site = root / "site"
    (site / "gf_plugin_demo").mkdir(parents=True)
    (site / "gf_plugin_demo" / "__init__.py").write_text(PLUGIN)
    info = site / "gf_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gf-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ganforge.plugins]\ndemo = gf_plugin_demo\n")
    return site


def test_out_of_tree_plugin_registers_a_family_and_a_dataset_and_trains(tmp_path, monkeypatch):
    site = make_plugin(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(site))  # run_cli puts ganforge's src after it
    config = tmp_path / "plugin.yaml"
    config.write_text(textwrap.dedent("""
        name: plugin-run
        variant: plugin-hinge
        data: {name: plugin-blobs, n_points: 256}
        model: {arch: mlp, z_dim: 4, g_hidden: [32], d_hidden: [32]}
        train: {kimg: 0.3, batch_size: 32, device: cpu}
    """))
    listed = run_cli("list")
    assert listed.returncode == 0, listed.stderr
    assert "plugin-hinge" in listed.stdout and "plugin-blobs" in listed.stdout

    run = tmp_path / "run"
    result = run_cli("train", str(config), "--out", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["variant"] == "plugin-hinge" and summary["dataset"] == "plugin-blobs"
    assert "loss: hinge" in (run / "config.yaml").read_text()  # the plugin family's defaults applied

    gen = run_cli("generate", str(run), "--n", "16", "--out", str(tmp_path / "samples"), "--format", "npz")
    assert gen.returncode == 0, gen.stderr


def test_without_the_plugin_the_names_are_unknown(tmp_path):
    result = run_cli("train", "sine", "--set", "variant=plugin-hinge", "--dry-run")
    assert result.returncode == 2 and "unknown variant 'plugin-hinge'" in result.stderr
