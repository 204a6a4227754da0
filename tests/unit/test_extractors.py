"""Feature extractors: the domain network's cache (hit, invalidation), batch-size invariance, and the
inception extractor's error paths (torch-fidelity and its weights are not installable offline)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics import EXTRACTORS
from ganforge.metrics.domain_extractor import DomainRecipe, build_domain_extractor
from ganforge.metrics.extractors import build_extractor
from ganforge.metrics.inception_extractor import INCEPTION_URL, build_inception_extractor, to_inception_input

QUICK = DomainRecipe(epochs=1.0)


@pytest.fixture(scope="module")
def digits():
    cfg = DataConfig(name="mnist5k", limit=1000)
    return load_dataset(cfg, "train"), load_dataset(cfg, "test")


@pytest.fixture(scope="module")
def domain(digits):
    """The default domain extractor, from the suite's cache ($GANFORGE_CACHE, set in conftest) when it is there."""
    return build_domain_extractor(*digits, device="cpu")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_registry_lists_the_extractors():
    assert {"domain", "inception", "raw"} <= set(EXTRACTORS.names())
    with pytest.raises(ConfigError, match="Did you mean 'domain'"):
        EXTRACTORS.get("domian")


def test_domain_extractor_is_a_real_classifier(domain):
    assert domain.info["test_accuracy"] > 0.85  # measured on the real test split
    assert domain.info["feature_dim"] == 128 and domain.has_logits and len(domain.short_hash) == 12


def test_domain_extractor_trains_once_then_loads_from_the_cache(digits, fresh_cache):
    train, test = digits
    first = build_domain_extractor(train, test, device="cpu", recipe=QUICK)
    assert not first.info["cache_hit"]
    files = sorted(p.name for p in (fresh_cache / "extractors").glob(f"domain-{first.key[:24]}.*"))
    assert files == [f"domain-{first.key[:24]}.json", f"domain-{first.key[:24]}.safetensors"]
    again = build_domain_extractor(train, test, device="cpu", recipe=QUICK)
    assert again.info["cache_hit"] and again.key == first.key
    assert again.info["test_accuracy"] == first.info["test_accuracy"]
    x = test.x[:64]
    torch.testing.assert_close(again.features_and_logits(x)[0], first.features_and_logits(x)[0], rtol=0, atol=0)


def test_changing_the_data_invalidates_the_cache(digits, fresh_cache):
    train, test = digits
    first = build_domain_extractor(train, test, device="cpu", recipe=QUICK)
    x = train.x.clone()
    x[0, 0, 0, 0] = -x[0, 0, 0, 0]  # one pixel of one image
    changed = Dataset(train.name, x, train.y, num_classes=train.num_classes, class_names=train.class_names)
    other = build_domain_extractor(changed, test, device="cpu", recipe=QUICK)
    assert other.key != first.key and not other.info["cache_hit"]
    assert build_domain_extractor(changed, test, device="cpu", recipe=QUICK).info["cache_hit"]
    # ... and so does a different recipe (here: the seed) on the same data.
    reseeded = build_domain_extractor(train, test, device="cpu", recipe=DomainRecipe(epochs=1.0, seed=1))
    assert reseeded.key != first.key and reseeded.identity != first.identity


def test_domain_features_do_not_depend_on_the_batch_size(digits, domain):
    x = digits[1].x[:100]
    f7, l7 = domain.features_and_logits(x, batch=7)
    f100, l100 = domain.features_and_logits(x, batch=100)
    assert f7.shape == (100, 128) and l7.shape == (100, 10)
    torch.testing.assert_close(f7, f100, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(l7, l100, atol=1e-5, rtol=1e-5)


def test_unlabelled_images_get_an_autoencoder(digits, fresh_cache):
    train, test = digits
    unlabelled = Dataset("unlabelled", train.x[:300], None)
    ex = build_domain_extractor(unlabelled, Dataset("unlabelled", test.x[:100], None), device="cpu", recipe=QUICK)
    assert ex.info["kind"] == "autoencoder" and not ex.has_logits and ex.info["test_accuracy"] is None
    feats, logits = ex.features_and_logits(test.x[:10])
    assert feats.shape == (10, 128) and logits is None and ex.info["test_mse"] > 0


def test_domain_extractor_refuses_points_and_weights(digits):
    points = Dataset("sine", torch.zeros(10, 2), kind="points")
    with pytest.raises(GanforgeError, match="raw coordinates"):
        build_domain_extractor(points, None)
    with pytest.raises(GanforgeError, match="extractor-weights"):
        build_extractor("domain", digits[0], digits[1], weights="/some/file.pth")


# ----------------------------------------------------------------------------------------- inception


def _block_torch_fidelity(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # `import torch_fidelity` raises ImportError
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)


def _fake_torch_fidelity(monkeypatch, seen: list):
    class FakeInception(torch.nn.Module):
        def __init__(self, name, features_list, feature_extractor_weights_path=None):
            super().__init__()
            seen.append(("init", name, tuple(features_list), feature_extractor_weights_path))

        def forward(self, x):
            seen.append(("forward", x.dtype, tuple(x.shape), int(x.min()), int(x.max())))
            return torch.ones(len(x), 2048), torch.zeros(len(x), 1008)

    package = types.ModuleType("torch_fidelity")
    module = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    module.FeatureExtractorInceptionV3 = FakeInception
    monkeypatch.setitem(sys.modules, "torch_fidelity", package)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", module)


@pytest.fixture
def no_inception_file(monkeypatch, tmp_path):
    """Neither NVIDIA's TorchScript file (env var, cache) nor torch hub's torch-fidelity weights are found."""
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_inception_torch_fidelity_weights_without_torch_fidelity_say_how_to_install_it(
    monkeypatch, tmp_path, no_inception_file
):
    _block_torch_fidelity(monkeypatch)
    pth = tmp_path / "weights-inception.pth"
    pth.write_bytes(b"a torch-fidelity state dict, not TorchScript")
    with pytest.raises(GanforgeError, match=r"pip install 'ganforge\[inception\]'") as e:
        build_inception_extractor(weights=str(pth))
    assert "--extractor domain" in str(e.value) and "\n" not in str(e.value)


def test_inception_without_any_weights_says_how_to_fetch_them(monkeypatch, tmp_path, no_inception_file):
    for fidelity in (_block_torch_fidelity, lambda m: _fake_torch_fidelity(m, [])):
        fidelity(monkeypatch)
        with pytest.raises(GanforgeError, match="ganforge weights fetch inception") as e:
            build_inception_extractor()
        assert "GANFORGE_INCEPTION_WEIGHTS" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(GanforgeError, match="not found at .*missing.pth") as e:
        build_inception_extractor(weights=str(tmp_path / "missing.pth"))
    assert INCEPTION_URL in str(e.value)


def test_inception_gets_quantised_rgb_uint8_and_is_identified_by_its_weights(monkeypatch, tmp_path):
    seen: list = []
    _fake_torch_fidelity(monkeypatch, seen)
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"not really weights")
    ex = build_inception_extractor(weights=str(weights), device="cpu")
    assert seen[0] == ("init", "inception-v3-compat", ("2048", "logits_unbiased"), str(weights))
    grey = torch.linspace(-1, 1, 2 * 28 * 28).view(2, 1, 28, 28)
    feats, logits = ex.features_and_logits(grey)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert seen[1] == ("forward", torch.uint8, (2, 3, 28, 28), 0, 255)
    img = to_inception_input(torch.tensor([-1.0, -0.999, 0.0, 1.0]).view(1, 1, 2, 2))
    assert img.shape == (1, 3, 2, 2) and img[0, 0].flatten().tolist() == [0, 0, 128, 255]  # round((x+1)*127.5)
    other = tmp_path / "other.pth"
    other.write_bytes(b"other weights")
    assert build_inception_extractor(weights=str(other)).identity != ex.identity
