"""TorchScript paths offline: weights lookup and fetch (SHA-256), NVIDIA-interface Inception in both clean-fid
modes, any user network as the extractor, and LPIPS. The networks are stand-ins with the same call interface
(tests/stand_ins.py); the real files are exercised by tests/numerics/test_real_weights.py when present."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data.base import Dataset
from ganforge.errors import GanforgeError
from ganforge.metrics.extractors import build_extractor, split_extractor_name
from ganforge.metrics.lpips import MIN_SIDE, load_lpips, lpips_diversity, lpips_paired
from ganforge.metrics.torchscript_extractor import is_torchscript_file, resize_clean
from ganforge.metrics.weights import check_weights, fetch_weights, find_weights, resolve_weights
from ganforge.training.checkpoint import sha256_file
from tests.stand_ins import save_stand_in


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No weights anywhere: empty cache, no environment variables, no torch hub copy."""
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("GANFORGE_VGG16_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    return save_stand_in("inception", tmp_path_factory.mktemp("ts") / "inception-2015-12-05.pt")


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    return save_stand_in("vgg16", tmp_path_factory.mktemp("ts") / "vgg16.pt")


def _images(n: int, c: int = 1, side: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, side, side, generator=g) * 2 - 1


def _data(n: int = 40, c: int = 1, side: int = 28) -> Dataset:
    return Dataset("toy-images", _images(n, c, side))


# ------------------------------------------------------------------------------------------- weights


def test_weights_are_found_by_path_then_environment_then_cache(clean_env, monkeypatch, inception_file):
    assert find_weights("inception") is None
    with pytest.raises(GanforgeError, match="ganforge weights fetch inception") as e:
        resolve_weights("inception")
    assert "GANFORGE_INCEPTION_WEIGHTS" in str(e.value) and "\n" not in str(e.value)
    cached = clean_env / "cache" / "weights" / "inception-2015-12-05.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    assert resolve_weights("inception") == cached
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(inception_file))
    assert resolve_weights("inception") == inception_file
    assert resolve_weights("inception", cached) == cached  # an explicit path wins
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(clean_env / "nowhere.pt"))
    with pytest.raises(GanforgeError, match=r"\$GANFORGE_INCEPTION_WEIGHTS .* is not a file"):
        resolve_weights("inception")
    with pytest.raises(GanforgeError, match="choose one of: inception, vgg16"):
        resolve_weights("inceptoin")


def test_fetch_downloads_once_checks_sha256_and_keeps_nothing_on_mismatch(clean_env, inception_file):
    url = inception_file.resolve().as_uri()  # file:// stands in for NVIDIA's server
    digest = sha256_file(inception_file)
    dest = clean_env / "w" / "inception-2015-12-05.pt"
    with pytest.raises(GanforgeError, match="nothing was kept"):
        fetch_weights("inception", dest, url=url, sha256="0" * 64, log=lambda _: None)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no partial file left behind
    log: list[str] = []
    assert fetch_weights("inception", dest, url=url, sha256=digest, log=log.append) == dest
    assert sha256_file(dest) == digest and digest in log[-1]
    assert (dest.parent / "inception-2015-12-05.pt.sha256").read_text().split()[0] == digest
    fetch_weights("inception", dest, url="file:///nowhere", log=log.append)  # present: not downloaded again
    assert "already" in log[-1]
    # Trust on first use: the digest recorded at fetch time guards the file afterwards.
    dest.write_bytes(dest.read_bytes()[:-10])
    with pytest.raises(GanforgeError, match="--force"):
        check_weights("inception", dest)
    fetch_weights("inception", dest, url=url, force=True, log=log.append)
    assert check_weights("inception", dest) == digest
    with pytest.raises(GanforgeError, match="could not download .*GANFORGE_VGG16_WEIGHTS"):
        fetch_weights("vgg16", clean_env / "v", url=(clean_env / "missing.pt").as_uri(), log=log.append)


def test_default_fetch_goes_to_the_cache_where_the_extractor_finds_it(clean_env, inception_file):
    path = fetch_weights("inception", url=inception_file.resolve().as_uri(), log=lambda _: None)
    assert path == clean_env / "cache" / "weights" / "inception-2015-12-05.pt"
    ex = build_extractor("inception", _data(), device="cpu")
    assert ex.info["backend"] == "torchscript" and ex.info["weights"] == str(path)


# ------------------------------------------------------------------------------------- Inception


def test_extractor_names_carry_an_option():
    assert split_extractor_name("inception") == ("inception", None)
    assert split_extractor_name("inception:clean") == ("inception", "clean")
    assert split_extractor_name("torchscript:/a/b:c.pt") == ("torchscript", "/a/b:c.pt")


def test_torchscript_inception_legacy_mode_calls_the_network_as_stylegan2_ada(clean_env, monkeypatch, inception_file):
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(inception_file))
    ex = build_extractor("inception", _data(), device="cpu")
    assert ex.name == "inception:legacy_tensorflow" and ex.info["backend"] == "torchscript"
    assert ex.info["file_sha256"] == sha256_file(inception_file) and ex.short_hash in ex.identity
    x = _images(6)
    feats, logits = ex.features_and_logits(x, batch=4)
    assert feats.shape == (6, 2048) and logits.shape == (6, 1008)
    net = torch.jit.load(str(inception_file))
    img = ((x + 1) * 127.5).round().repeat(1, 3, 1, 1)  # uint8 values, grey -> RGB, native size
    torch.testing.assert_close(feats, net(img, return_features=True))
    # IS logits: no output bias, as stylegan2-ada's IS; their softmax is the network's own output
    torch.testing.assert_close(logits.softmax(1), net(img, no_output_bias=True), atol=1e-6, rtol=1e-5)


def test_torchscript_inception_clean_mode_resizes_with_pil_bicubic_first(inception_file):
    ex = build_extractor("inception:clean", _data(c=3), device="cpu", weights=str(inception_file))
    assert ex.name == "inception:clean" and "PIL bicubic" in ex.preprocessing
    x = _images(3, c=3, seed=1)
    feats, _ = ex.features_and_logits(x)
    # Independent route for one image: PIL bicubic of each float channel to 299, (x - 128) / 128, net.layers.
    u8 = ((x[0] + 1) * 127.5).round().numpy().astype(np.float32)
    chans = [np.asarray(Image.fromarray(u8[c]).resize((299, 299), Image.BICUBIC)) for c in range(3)]
    z = (torch.from_numpy(np.stack(chans))[None] - 128) / 128
    net = torch.jit.load(str(inception_file))
    torch.testing.assert_close(feats[:1], net.layers(z).reshape(1, 2048))
    legacy = build_extractor("inception:legacy_tensorflow", _data(c=3), weights=str(inception_file))
    assert legacy.identity != ex.identity  # two protocols, never mixed
    assert not torch.allclose(legacy.features_and_logits(x)[0], feats)
    grey = _images(2, c=1, seed=2)  # a grey image resized once and copied equals resizing each copy
    torch.testing.assert_close(
        resize_clean(((grey + 1) * 127.5).round().repeat(1, 3, 1, 1))[:, 0],
        resize_clean(((grey + 1) * 127.5).round().repeat(1, 3, 1, 1))[:, 2],
    )


def test_inception_mode_and_file_errors_are_one_line(clean_env, inception_file, tmp_path):
    with pytest.raises(GanforgeError, match="inception:legacy_tensorflow .* inception:clean"):
        build_extractor("inception:cleen", _data(), weights=str(inception_file))
    with pytest.raises(GanforgeError, match="ganforge weights fetch inception"):
        build_extractor("inception:clean", _data())
    pth = tmp_path / "weights-inception.pth"
    pth.write_bytes(b"a torch-fidelity state dict")
    with pytest.raises(GanforgeError, match="is not a TorchScript file"):
        build_extractor("inception:clean", _data(), weights=str(pth))
    assert is_torchscript_file(inception_file) and not is_torchscript_file(tmp_path / "none.pt")
    with pytest.raises(GanforgeError, match="takes no ':x' part"):
        build_extractor("raw:x", _data())


# -------------------------------------------------------------------------------- user networks


class _UserNet(torch.nn.Module):
    def __init__(self, with_logits: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, stride=2)
        self.head = torch.nn.Linear(4 * 13 * 13, 3)
        self.with_logits = with_logits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.tanh(self.conv(x))  # [N, 4, 13, 13]: flattened by the extractor
        return f, self.head(f.flatten(1))


def test_any_torchscript_network_is_an_extractor_with_its_hash(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "radiology.pt"
    torch.jit.script(_UserNet(True)).save(str(path))
    ex = build_extractor(f"torchscript:{path}", _data(), device="cpu")
    assert ex.name == "torchscript" and ex.has_logits and ex.info["feature_dim"] == 4 * 13 * 13
    assert ex.identity == f"torchscript:{sha256_file(path)}"
    feats, logits = ex.features_and_logits(_images(5), batch=2)
    assert feats.shape == (5, 676) and logits.shape == (5, 3)
    traced = tmp_path / "traced.pt"  # a traced module returning one tensor: features only
    torch.jit.trace(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16)), _images(2)).save(str(traced))
    ex2 = build_extractor(f"torchscript:{traced}", _data(), device="cpu")
    assert not ex2.has_logits and ex2.features_and_logits(_images(3))[0].shape == (3, 16)


def test_torchscript_extractor_user_errors(tmp_path):
    with pytest.raises(GanforgeError, match="torchscript:PATH"):
        build_extractor("torchscript", _data())
    with pytest.raises(GanforgeError, match="no such file"):
        build_extractor(f"torchscript:{tmp_path / 'none.pt'}", _data())
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(GanforgeError, match="not a loadable TorchScript file"):
        build_extractor(f"torchscript:{junk}", _data())
    rgb_only = tmp_path / "rgb.pt"  # expects 3 channels; the data has 1
    torch.jit.script(torch.nn.Conv2d(3, 2, 3)).save(str(rgb_only))
    with pytest.raises(GanforgeError, match=r"failed on the data's images \(2, 1, 28, 28\)"):
        build_extractor(f"torchscript:{rgb_only}", _data())


# ------------------------------------------------------------------------------------------ LPIPS


def test_lpips_is_the_squared_distance_of_the_networks_embeddings(vgg_file):
    net = load_lpips(vgg_file)
    a, b = _images(4, c=3, side=64, seed=1), _images(4, c=3, side=64, seed=2)
    d = lpips_paired(net, a, b)
    raw = torch.jit.load(str(vgg_file))
    ea = raw((a + 1) * 127.5, resize_images=False, return_lpips=True)
    eb = raw((b + 1) * 127.5, resize_images=False, return_lpips=True)
    assert d.mean == pytest.approx((ea - eb).square().sum(1).mean().item(), rel=1e-5) and d.n_pairs == 4
    assert lpips_paired(net, a, a).mean == pytest.approx(0.0, abs=1e-10)
    assert lpips_paired(net, b, a).mean == pytest.approx(d.mean, rel=1e-6)
    with pytest.raises(GanforgeError, match="same order"):
        lpips_paired(net, a, b[:3])


def test_lpips_diversity_collapsed_vs_diverse_and_small_images(vgg_file):
    net = load_lpips(vgg_file)
    diverse = lpips_diversity(net, _images(20, side=8), n_pairs=50, rng=0)  # 8x8: enlarged to 64 first
    collapsed = lpips_diversity(net, _images(1, side=8).repeat(20, 1, 1, 1), n_pairs=50, rng=0)
    assert collapsed.mean == pytest.approx(0.0, abs=1e-10) and diverse.mean > 0.01
    raw = torch.jit.load(str(vgg_file))
    with pytest.raises(RuntimeError):  # the network alone cannot take 8x8: the enlargement is what makes it work
        raw(torch.zeros(1, 3, 8, 8), resize_images=False, return_lpips=True)
    assert MIN_SIDE == 64


def test_lpips_weights_missing_is_one_line(clean_env):
    with pytest.raises(GanforgeError, match="ganforge weights fetch vgg16") as e:
        load_lpips()
    assert "\n" not in str(e.value)


def test_lpips_between_two_folders_pairs_files_by_name(vgg_file, tmp_path, cli):
    gen, truth = tmp_path / "gen", tmp_path / "truth"
    rng = np.random.default_rng(0)
    for d in (gen, truth / "sub", gen / "sub"):
        d.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, side in (("a.png", 32), ("b.png", 32), ("sub/c.png", 48)):  # two sizes: batched per size
        for d in (gen, truth):
            arr = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / name)
            arrays[(d.name, name)] = arr
    from ganforge.metrics.lpips import lpips_folders

    summary, per_file = lpips_folders(gen, truth, vgg_file)
    assert sorted(per_file) == ["a.png", "b.png", "sub/c.png"] and summary.n_pairs == 3
    net = load_lpips(vgg_file)
    to_t = lambda a: torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1  # noqa: E731
    direct = lpips_paired(net, to_t(arrays[("gen", "sub/c.png")]), to_t(arrays[("truth", "sub/c.png")])).mean
    assert per_file["sub/c.png"] == pytest.approx(direct, rel=1e-5)
    r = cli("lpips", str(gen), str(truth), "--weights", str(vgg_file))
    assert r.returncode == 0 and f"lpips {summary.mean:.4f}" in r.stdout, r.stderr
    (truth / "b.png").unlink()
    r = cli("lpips", str(gen), str(truth), "--weights", str(vgg_file))
    assert r.returncode == 2 and "first: b.png" in r.stderr and "Traceback" not in r.stderr
