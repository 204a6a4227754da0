"""DTN: f is trained on the source labels, then frozen (a step leaves it unchanged while g learns, the f-constancy
term included); D is 3-way with the paper's targets; the exported translator works with ``ganforge translate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganforge.data import load_dataset
from ganforge.errors import ConfigError, GanforgeError
from ganforge.experiments.runner import start_run
from ganforge.generate import npz_bytes
from ganforge.presets import config_from_layers
from ganforge.training.export import load_generator
from ganforge.translate import translate_images
from ganforge.variants import VARIANTS
from ganforge.variants.base import Phase
from ganforge.variants.dtn import augment_digits, to_channels
from ganforge.variants.two_domain import PairBatch


def _config(**family):
    return config_from_layers(
        [
            {
                "name": "dtn-test",
                "variant": "dtn",
                "data": {"name": "digits-to-mnist", "resolution": 16, "limit": 256},
                "model": {"g_channels": 16, "d_channels": 8},
                "family": {"pretrain_steps": 150, **family},
                "train": {"kimg": 0.128, "tick_kimg": 1, "batch_size": 32, "grid_size": 6, "device": "cpu"},
            }
        ]
    )


@pytest.fixture(scope="module")
def built():
    cfg = _config()
    data = load_dataset(cfg.data, "train")
    family = VARIANTS.get("dtn")
    family.check(cfg, data)
    torch.manual_seed(0)
    nets = family.build_networks(cfg, data)
    return cfg, data, family, nets


def test_f_is_a_trained_source_classifier_and_frozen(built):
    _, _, _, nets = built
    f = nets["G"].AtoB.f
    assert f.source_accuracy > 0.8  # 150 steps on the 8x8 digits (upsampled): it learned the labels
    assert not any(p.requires_grad for p in f.parameters())
    assert all(p.requires_grad for p in nets["G"].AtoB.g.parameters())


def test_augment_digits_jitters_within_range_and_reproducibly():
    data = load_dataset(_config().data, "train")
    x = data.x[:32]  # [32, 1, 16, 16] in [-1, 1]
    torch.manual_seed(0)
    a = augment_digits(x)
    torch.manual_seed(0)
    b = augment_digits(x)
    assert a.shape == x.shape and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert (a - x).abs().mean() > 0.05  # it changed the images
    assert a[..., 0, :].mean() < -0.7  # the background stays dark: noise on it, no ink moved to the border


def test_f_pretrained_with_augmentation_still_classifies_the_source():
    cfg = _config(pretrain_augment=True)
    data = load_dataset(cfg.data, "train")
    torch.manual_seed(0)
    nets = VARIANTS.get("dtn").build_networks(cfg, data)
    f = nets["G"].AtoB.f
    assert f.source_accuracy > 0.7  # 150 steps on jittered digits, scored on the clean ones
    assert not any(p.requires_grad for p in f.parameters())


def test_class_constancy_is_the_cross_entropy_of_fs_head_and_exports(tmp_path):
    cfg = _config(class_weight=2.0)
    data = load_dataset(cfg.data, "train")
    family = VARIANTS.get("dtn")
    torch.manual_seed(0)
    nets = family.build_networks(cfg, data)
    f = nets["G"].AtoB.f
    assert f.head is not None and f.head.out_features == 10 and not f.head.weight.requires_grad
    objective = family.objective(cfg, nets, data, data.x, data.y)
    s = data.x[:8]
    batch = PairBatch(s, data.x_b[:8])
    nets["G"].eval(), nets["D"].eval()  # batch statistics out of the way: the same outputs in both computations
    torch.manual_seed(3)
    stats = objective.accumulate_gradients(Phase("G", "G"), batch)
    with torch.no_grad():
        want = F.cross_entropy(f.classify(f(nets["G"].AtoB(s))), f.classify(f(s)).argmax(1))
    assert stats["cls"].item() == pytest.approx(want.item(), rel=1e-5)
    # the exported translator rebuilds f with its head, and without the option there is none
    out = tmp_path / "run"
    start_run(cfg, out=str(out), progress=False, log=lambda _: None)
    assert load_generator(out).G.AtoB.f.head is not None
    assert family.build_translator(cfg.model, (1, 16, 16), (1, 16, 16), None, 10).AtoB.f.head is None


def test_a_step_trains_g_through_f_constancy_and_leaves_f_unchanged(built):
    cfg, data, family, nets = built
    G, D = nets["G"], nets["D"]
    objective = family.objective(cfg, nets, data, data.x, data.y)
    f_before = {k: v.clone() for k, v in G.AtoB.f.state_dict().items()}
    g_before = {k: v.clone() for k, v in G.AtoB.g.state_dict().items()}
    # the optimizer the loop builds: every parameter of G (f's have no gradient, so Adam leaves them alone)
    opt = torch.optim.Adam(G.parameters(), lr=1e-2)
    torch.manual_seed(1)
    batch = objective.draw(Phase("G", "G"), torch.arange(16))
    stats = objective.accumulate_gradients(Phase("G", "G"), batch)
    assert all(p.grad is None for p in G.AtoB.f.parameters())
    assert all(p.grad is not None for p in G.AtoB.g.parameters() if p.dim() > 1)
    opt.step()
    assert all(torch.equal(f_before[k], v) for k, v in G.AtoB.f.state_dict().items())
    assert any(not torch.equal(g_before[k], v) for k, v in G.AtoB.g.state_dict().items())
    assert {"loss_G", "const", "tid", "adv_G"} <= set(stats)
    D.zero_grad(set_to_none=True)
    assert D(batch.real_b).shape == (16, 3)

    # the f-constancy term alone reaches g: a frozen f still passes gradients to its input
    G.zero_grad(set_to_none=True)
    s = batch.real_a
    with torch.no_grad():
        target = G.AtoB.f(s)
    const = (G.AtoB.f(to_channels(G.AtoB(s), 1)) - target).pow(2).mean()
    const.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.AtoB.g.parameters())
    assert all(p.grad is None for p in G.AtoB.f.parameters())


def test_d_loss_is_the_papers_three_way_cross_entropy(built):
    cfg, data, family, nets = built
    G, D = nets["G"], nets["D"]
    objective = family.objective(cfg, nets, data, data.x, data.y)
    torch.manual_seed(2)
    s, t = data.x[:8], data.x_b[:8]
    G.eval(), D.eval()  # batch statistics out of the way: the same D output in both computations
    stats = objective.accumulate_gradients(Phase("D", "D"), PairBatch(s, t))
    with torch.no_grad():
        fake_s, fake_t = G.AtoB(s), G.AtoB(t)
        want = (
            F.cross_entropy(D(fake_s), torch.zeros(8, dtype=torch.long))
            + F.cross_entropy(D(fake_t), torch.ones(8, dtype=torch.long))
            + F.cross_entropy(D(t), torch.full((8,), 2))
        )
    G.train(), D.train()
    assert stats["loss_D"].item() == pytest.approx(want.item(), rel=1e-5)


def test_dtn_refuses_a_source_without_labels():
    cfg = config_from_layers([{"variant": "dtn", "data": {"name": "mnist-styles", "limit": 64}, "train": {"kimg": 1}}])
    data = load_dataset(cfg.data, "train")
    data.y = None  # an unlabelled source domain (a two-domain folder)
    with pytest.raises(ConfigError, match="labels"):
        VARIANTS.get("dtn").check(cfg, data)


def test_translate_runs_a_trained_dtn(tmp_path):
    out = tmp_path / "run"
    start_run(_config(), out=str(out), progress=False, log=lambda _: None)
    gen = load_generator(out)
    assert gen.spec["translation"] and gen.G.directions == ("AtoB",)
    rng = np.random.default_rng(0)
    npz = tmp_path / "in.npz"
    npz.write_bytes(npz_bytes({"images": rng.integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)}))
    result = translate_images(out, npz, tmp_path / "t")
    assert result.n == 4 and sorted(p.name for p in result.out.glob("*.png")) == [f"{i:06d}.png" for i in range(4)]
    manifest = json.loads((result.out / "manifest.json").read_text())
    assert manifest["variant"] == "dtn" and manifest["target_domain"] == "mnist" and manifest["files"] == 5
    with np.load(result.out / "translated.npz") as f:
        x = torch.from_numpy(f["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        src = torch.from_numpy(np.load(npz)["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
        assert (gen.G(src, "AtoB") - x).abs().max() < 0.01  # the files are G's output
    with pytest.raises(GanforgeError, match="AtoB"):
        translate_images(out, npz, tmp_path / "back", direction="BtoA")
