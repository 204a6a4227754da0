"""CoGAN: tied layers are one tensor that both domains' losses reach; untied ones are not; generate writes matching
A/ B/ pairs from one z each; evaluate measures the pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import ConfigError, GanforgeError
from ganforge.experiments.runner import start_run
from ganforge.generate import generate_dataset
from ganforge.models.cogan import CoupledDiscriminator, CoupledGenerator
from ganforge.presets import config_from_layers
from ganforge.training.export import load_generator
from ganforge.variants import VARIANTS


def _grads(module: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor | None]:
    module.zero_grad(set_to_none=True)
    loss.backward()
    return {name: None if p.grad is None else p.grad.clone() for name, p in module.named_parameters()}


def _reaches(grads: dict[str, torch.Tensor | None], prefix: str) -> bool:
    return any(g is not None and g.abs().sum() > 0 for name, g in grads.items() if name.startswith(prefix))


@pytest.mark.parametrize("side", [16, 28, 32])
def test_tied_generator_layers_are_one_tensor_that_both_domains_train(side):
    torch.manual_seed(0)
    G = CoupledGenerator(8, 32, (1, side, side), (3, side, side), tie=True)
    assert G.trunk_B is None
    fc = G.trunk[0].weight  # the first layer: the same Parameter object serves A and B
    assert sum(p is fc for p in G.parameters()) == 1
    z = torch.randn(4, 8)
    from_a = _grads(G, G.pair(z)[0].square().mean())  # a loss on domain A's images alone
    from_b = _grads(G, G.pair(z)[1].square().mean())  # ... on domain B's alone
    assert _reaches(from_a, "trunk.") and _reaches(from_b, "trunk.")  # the shared trunk learns from both
    assert _reaches(from_a, "head_A.") and not _reaches(from_a, "head_B.")  # each head from its own domain only
    assert _reaches(from_b, "head_B.") and not _reaches(from_b, "head_A.")
    assert not torch.equal(from_a["trunk.0.weight"], from_b["trunk.0.weight"])


def test_untied_generator_shares_nothing():
    torch.manual_seed(0)
    G = CoupledGenerator(8, 32, (1, 16, 16), (1, 16, 16), tie=False)
    from_b = _grads(G, G.pair(torch.randn(4, 8))[1].square().mean())
    assert not _reaches(from_b, "trunk.") and _reaches(from_b, "trunk_B.")


def test_tied_discriminator_body_learns_from_both_domains():
    torch.manual_seed(0)
    D = CoupledDiscriminator(8, (1, 16, 16), (3, 16, 16), tie=True)
    from_a = _grads(D, D(torch.randn(4, 1, 16, 16), "A").mean())
    from_b = _grads(D, D(torch.randn(4, 3, 16, 16), "B").mean())
    assert D(torch.randn(2, 3, 16, 16), "B").shape == (2,)
    assert _reaches(from_a, "body.") and _reaches(from_b, "body.")
    assert not _reaches(from_a, "head_B.") and not _reaches(from_b, "head_A.")
    untied = CoupledDiscriminator(8, (1, 16, 16), (3, 16, 16), tie=False)
    assert not _reaches(_grads(untied, untied(torch.randn(4, 3, 16, 16), "B").mean()), "body.")


def _config(**family):
    return config_from_layers(
        [
            {
                "name": "cogan-test",
                "variant": "cogan",
                "data": {"name": "mnist-styles", "domains": ["mnist", "inverted"], "resolution": 16, "limit": 128},
                "model": {"z_dim": 8, "g_channels": 16, "d_channels": 8},
                "family": family,
                "train": {"kimg": 0.128, "tick_kimg": 1, "batch_size": 32, "grid_size": 8, "device": "cpu"},
            }
        ]
    )


@pytest.fixture(scope="module")
def cogan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cogan"
    start_run(_config(), out=str(out), progress=False, log=lambda _: None)
    return out


def test_generate_writes_matching_pairs_with_a_manifest(cogan_run, tmp_path):
    result = generate_dataset(cogan_run, tmp_path / "pairs", n=5, seed=3)
    out = result.out
    names_a = sorted(p.name for p in (out / "A").iterdir())
    assert names_a == sorted(p.name for p in (out / "B").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    with np.load(out / "samples.npz") as f:
        images_a, images_b = f["images_a"], f["images_b"]
    assert images_a.shape == images_b.shape == (5, 16, 16, 1)
    for i in range(5):  # the PNGs are the npz rows
        assert np.array_equal(np.asarray(Image.open(out / "A" / f"{i:06d}.png")), images_a[i, :, :, 0])
        assert np.array_equal(np.asarray(Image.open(out / "B" / f"{i:06d}.png")), images_b[i, :, :, 0])
    gen = load_generator(cogan_run)  # row i of both is the pair of z_i, drawn from the seed up front
    z = torch.randn(5, gen.G.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = gen.G.eval().pair(z)
    assert np.abs(((a[:, 0] + 1) * 127.5).round().clamp(0, 255).numpy() - images_a[..., 0]).max() <= 1
    assert np.abs(((b[:, 0] + 1) * 127.5).round().clamp(0, 255).numpy() - images_b[..., 0]).max() <= 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "pairs" and manifest["n"] == 5 and manifest["files"] == 11
    assert manifest["domains"] == {"A": "mnist", "B": "inverted"} and manifest["generator_sha256"] == gen.sha256
    again = generate_dataset(cogan_run, tmp_path / "again", n=5, seed=3, batch=2)  # batch-size invariant
    assert again.manifest["content_sha256"] == manifest["content_sha256"]
    other = generate_dataset(cogan_run, tmp_path / "other", n=5, seed=4, fmt="npz")
    assert other.manifest["content_sha256"] != manifest["content_sha256"] and other.manifest["files"] == 1


def test_generate_refuses_what_pairs_cannot_be(cogan_run, tmp_path):
    with pytest.raises(GanforgeError, match="unconditional"):
        generate_dataset(cogan_run, tmp_path / "x", n=5, label=1)
    with pytest.raises(GanforgeError, match="--format"):
        generate_dataset(cogan_run, tmp_path / "y", n=5, fmt="imagefolder")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cogan_refuses_one_domain_and_untrainable_sizes():
    family = VARIANTS.get("cogan")
    from ganforge.data import load_dataset

    one = config_from_layers([{"variant": "cogan", "data": {"name": "mnist5k", "limit": 64}, "train": {"kimg": 1}}])
    with pytest.raises(ConfigError, match="two domains"):
        family.check(one, load_dataset(one.data, "train"))
    odd = _config()
    odd_data = load_dataset(
        config_from_layers([{**odd.to_dict(), "data": {**odd.to_dict()["data"], "resolution": 36}}]).data, "train"
    )
    with pytest.raises(ConfigError, match="data.resolution"):
        family.check(odd, odd_data)


@pytest.mark.slow
def test_evaluate_measures_the_pairs(cogan_run):
    from ganforge.metrics.evaluate import evaluate_run

    result = evaluate_run(cogan_run, n=64, log=lambda _: None)
    values = result.values
    assert {"fid_A", "fid_B", "label_agreement", "pair_ssim"} <= set(values)
    agreement = values["label_agreement"]
    assert 0 <= agreement.value <= 1 and 0 < agreement.details["chance"] <= 1
    assert -1 <= values["pair_ssim"].value <= 1 and "unpaired" in values["pair_ssim"].details
    assert (cogan_run / "eval" / "pairs.png").is_file() and (cogan_run / "eval.json").is_file()


def test_pair_measures_on_known_pairs():
    from ganforge.config import DataConfig
    from ganforge.data.mnist import load_mnist5k
    from ganforge.metrics.cogan import agreement, pair_ssim

    a = load_mnist5k(DataConfig(name="mnist5k"), "test").x[:32]
    same, other = pair_ssim(a, -a, "inverted", 0)  # B exactly the inverted A: a perfect pair
    assert same.min() > 0.999 and other.mean() < 0.5
    noise, _ = pair_ssim(a, torch.rand_like(a) * 2 - 1, "inverted", 0)
    assert noise.mean() < 0.2
    edges, _ = pair_ssim(a, -a, "edges", 0)  # an inverted digit is no edge map
    assert edges.mean() < 0.5
    labels = torch.arange(10).repeat(10)
    assert agreement(labels, labels) == pytest.approx((1.0, 0.1))
    assert agreement(labels, labels.roll(1)) == pytest.approx((0.0, 0.1))


def test_cogan_on_the_brain_contrasts_drops_the_mask_channel(tmp_path):
    cfg = config_from_layers(
        [
            {
                "name": "cogan-brain",
                "variant": "cogan",
                "data": {"name": "brain-contrasts", "domains": ["t1", "ct"], "resolution": 16, "limit": 64},
                "model": {"z_dim": 8, "g_channels": 16, "d_channels": 8},
                "train": {"kimg": 0.064, "tick_kimg": 1, "batch_size": 32, "grid_size": 8, "device": "cpu"},
            }
        ]
    )
    out = tmp_path / "run"
    start_run(cfg, out=str(out), progress=False, log=lambda _: None)
    gen = load_generator(out)
    assert gen.shape == (2, 16, 16) and gen.mask_channels == 1  # A's data carries the tumour mask; G draws images
    result = generate_dataset(out, tmp_path / "pairs", n=3)
    with np.load(result.out / "samples.npz") as f:
        assert f["images_a"].shape == f["images_b"].shape == (3, 16, 16, 1)
    assert result.manifest["domains"] == {"A": "t1", "B": "ct"}
