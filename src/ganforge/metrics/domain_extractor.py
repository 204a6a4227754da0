"""The ``domain`` feature extractor: a small CNN that ganforge trains on the run's real *training* split.

Labelled data: a classifier; features = its penultimate layer (128-d), logits = its class head, used
for the Inception-style score. Unlabelled images: an autoencoder whose 128-d bottleneck is the
feature (no logits). Trained deterministically (fixed seed, a few epochs, seconds on a CPU), its test
accuracy measured on the real test split, and cached on disk (``$GANFORGE_CACHE/extractors``) keyed
by a SHA-256 of the data fingerprint, the architecture spec and the training recipe (which holds the
seed): different data, architecture or recipe -> a different extractor, never a stale one. A file
lock makes parallel runs of a sweep train one extractor once. No BatchNorm, no dropout: features are
the same whatever the batch size.

The network and its training (``DomainNet``, ``train_domain_net``, ``run_net``) are also the
classifier behind the usefulness metrics. Registered in ``EXTRACTORS`` as ``domain`` (the default).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import ganforge
from ganforge.data.base import Dataset
from ganforge.errors import GanforgeError
from ganforge.metrics.extractors import EXTRACTORS, Log, _quiet, pick_device
from ganforge.metrics.features import cache_root, sha256_json
from ganforge.metrics.threads import INIT_LOCK, single_thread_on_cpu
from ganforge.objectives.augment import affine_warp
from ganforge.training.checkpoint import atomic_write_bytes, atomic_write_json, sha256_file


@dataclass(frozen=True)
class DomainSpec:
    """Architecture of the domain network; part of the cache key."""

    in_channels: int
    resolution: int
    num_classes: int  # 0: autoencoder (unlabelled data)
    widths: tuple[int, ...] = (32, 64)  # channels of each stride-2 stage (the last one repeats)
    feature_dim: int = 128
    pool: int = 4  # spatial size before the feature layer


@dataclass(frozen=True)
class DomainRecipe:
    """How the domain network is trained; part of the cache key."""

    epochs: float = 6.0
    max_kimg: float = 60.0  # large datasets: at most this many thousand images shown in total
    batch_size: int = 32
    lr: float = 3e-3  # peak of a one-cycle schedule
    weight_decay: float = 1e-4
    seed: int = 0
    affine: bool = False  # a random small affine warp of every training image (``random_affine``)


def n_downsamples(resolution: int) -> int:
    """Stride-2 stages until the map is <= 8 pixels wide (at least one): 8 -> 1, 28 -> 2, 64 -> 3."""
    n, s = 0, resolution
    while s > 8:
        s, n = (s + 1) // 2, n + 1
    return max(n, 1)


class DomainNet(nn.Module):
    """stride-2 conv3x3 stages (ReLU) -> adaptive avg-pool to 4x4 -> linear feature layer.

    Classifier: logits = head(relu(feature)). Autoencoder: an MLP decoder reconstructs the image
    from the feature. No normalisation layers and no dropout, so eval-mode outputs do not depend on
    the batch.
    """

    def __init__(self, spec: DomainSpec) -> None:
        super().__init__()
        self.spec = spec
        w = spec.widths
        layers: list[nn.Module] = []
        c = spec.in_channels
        for i in range(n_downsamples(spec.resolution)):  # no full-resolution stem: 3x cheaper on a CPU
            c_out = w[min(i, len(w) - 1)]
            layers += [nn.Conv2d(c, c_out, 3, stride=2, padding=1), nn.ReLU()]
            c = c_out
        layers += [nn.AdaptiveAvgPool2d(spec.pool), nn.Flatten(), nn.Linear(c * spec.pool**2, spec.feature_dim)]
        self.encoder = nn.Sequential(*layers)  # x [N, C, H, W] -> feature [N, feature_dim]
        if spec.num_classes > 0:
            self.head = nn.Linear(spec.feature_dim, spec.num_classes)
        else:
            out = spec.in_channels * spec.resolution**2
            self.decoder = nn.Sequential(nn.ReLU(), nn.Linear(spec.feature_dim, 256), nn.ReLU(), nn.Linear(256, out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (feature [N, D], logits [N, K] or reconstruction [N, C, H, W])."""
        feat = self.encoder(x)
        if self.spec.num_classes > 0:
            return feat, self.head(F.relu(feat))
        return feat, torch.tanh(self.decoder(feat)).view_as(x)


@dataclass
class TrainedNet:
    net: DomainNet
    key: str  # SHA-256 of (format, data fingerprint, spec, recipe)
    record: dict[str, Any]  # the JSON written next to the weights
    cache_hit: bool


DOMAIN_FORMAT = "ganforge-domain-net/1"


def domain_key(data_fingerprint: str, spec: DomainSpec, recipe: DomainRecipe) -> str:
    fields = asdict(recipe)
    if not recipe.affine:  # added after the first format: unset, it stays out, so earlier keys (and ids) still hold
        del fields["affine"]
    return sha256_json({"format": DOMAIN_FORMAT, "data": data_fingerprint, "spec": asdict(spec), "recipe": fields})


def random_affine(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """x [N, C, H, W] in [-1, 1], each image turned by up to 0.2 rad (11 degrees), scaled by 0.9-1.1 and shifted by
    up to 1/14 of its width (2 pixels at 28) each way; edges repeat the border. Draws from ``gen`` only."""
    u = (torch.rand(len(x), 4, generator=gen) * 2 - 1).to(x.device)  # rotation, scale, shift x, y: in [-1, 1]
    angle, scale = 0.2 * u[:, 0], 1 + 0.1 * u[:, 1]
    # affine_grid's units: the image spans [-1, 1], so 1/7 of that is 1/14 of the width
    return affine_warp(x, scale * angle.cos(), scale * angle.sin(), u[:, 2:] / 7)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock, so parallel runs of a sweep train one extractor once (no-op where fcntl is missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: at worst two processes train the same net and write the same file
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def train_domain_net(
    x: torch.Tensor, y: torch.Tensor | None, spec: DomainSpec, recipe: DomainRecipe, *,
    device: torch.device | str = "cpu", cache: bool = True, data_fingerprint: str | None = None, log: Log = _quiet,
) -> TrainedNet:
    """Train (or load from the cache) a DomainNet on images x [N, C, H, W] in [-1, 1] and labels y [N].

    Deterministic in ``recipe.seed`` on a given device: initial weights come from a forked RNG
    seeded with it and batches from an explicit generator, so no global random state is touched.
    """
    device = torch.device(device)
    fingerprint = data_fingerprint or Dataset("domain-train", x.float(), y).fingerprint()
    key = domain_key(fingerprint, spec, recipe)
    folder = cache_root() / "extractors"
    weights, meta = folder / f"domain-{key[:24]}.safetensors", folder / f"domain-{key[:24]}.json"
    with _file_lock(folder / f".domain-{key[:24]}.lock") if cache else contextlib.nullcontext():
        if cache and weights.is_file() and meta.is_file():
            loaded = _load_cached(weights, meta, spec, key)
            if loaded is not None:
                return loaded
        net, record = _fit(x, y, spec, recipe, device, log)
        record.update({"format": DOMAIN_FORMAT, "key": key, "data_fingerprint": fingerprint})
        if cache:
            from safetensors.torch import save

            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            atomic_write_bytes(weights, lambda f: f.write(save(state)))
            record["weights_sha256"] = sha256_file(weights)
            atomic_write_json(meta, record)
    return TrainedNet(net.eval().requires_grad_(False), key, record, cache_hit=False)


def _load_cached(weights: Path, meta: Path, spec: DomainSpec, key: str) -> TrainedNet | None:
    from safetensors.torch import load_file

    try:
        record = json.loads(meta.read_text())
        if record.get("key") != key:
            return None
        net = DomainNet(spec)
        net.load_state_dict(load_file(str(weights)))
    except Exception:  # corrupt or foreign cache entry: retrain and overwrite
        return None
    return TrainedNet(net.eval().requires_grad_(False), key, record, cache_hit=True)


def _fit(
    x: torch.Tensor, y: torch.Tensor | None, spec: DomainSpec, recipe: DomainRecipe, device: torch.device, log: Log
) -> tuple[DomainNet, dict[str, Any]]:
    n = len(x)
    if n < 2:
        raise GanforgeError(f"the domain extractor needs at least 2 training images, got {n}; use more data.")
    with single_thread_on_cpu(device):
        return _fit_loop(x, y, spec, recipe, device, log)




def _fit_loop(
    x: torch.Tensor, y: torch.Tensor | None, spec: DomainSpec, recipe: DomainRecipe, device: torch.device, log: Log
) -> tuple[DomainNet, dict[str, Any]]:
    n = len(x)
    with INIT_LOCK, torch.random.fork_rng(devices=[]):  # other threads may be building nets (concurrently)
        torch.manual_seed(recipe.seed)
        net = DomainNet(spec)
    net.to(device, memory_format=torch.channels_last).train()  # channels_last: ~1.5x faster convs on a CPU
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    batch = min(recipe.batch_size, n)
    total = int(min(recipe.epochs * n, recipe.max_kimg * 1000))
    steps = max(1, math.ceil(total / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps, pct_start=0.2)
    gen = torch.Generator().manual_seed(recipe.seed)
    x_dev = x.to(device)
    y_dev = y.to(device) if y is not None else None
    t0 = time.perf_counter()
    order, pos, loss_sum, loss_n = torch.randperm(n, generator=gen), 0, 0.0, 0
    for step in range(steps):
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch].to(device)
        pos += batch
        xb = random_affine(x_dev[idx], gen) if recipe.affine else x_dev[idx]
        _, out = net(xb.contiguous(memory_format=torch.channels_last))
        if y_dev is not None and spec.num_classes > 0:
            loss = F.cross_entropy(out, y_dev[idx])  # logits in, log-softmax inside
        else:
            loss = F.mse_loss(out, xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step >= steps - max(1, steps // 10):  # mean loss over the last 10% of steps
            loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
    seconds = time.perf_counter() - t0
    warped = ", each image warped at random" if recipe.affine else ""
    log(f"domain network: trained {'classifier' if spec.num_classes else 'autoencoder'} on {n} images "
        f"({steps} steps{warped}) in {seconds:.1f} s")
    record = {"spec": asdict(spec), "recipe": asdict(recipe), "n_train": n, "steps": steps,
              "final_loss": loss_sum / max(loss_n, 1), "train_seconds": round(seconds, 2), "device": str(device),
              "torch_version": torch.__version__, "ganforge_version": ganforge.__version__}
    return net.eval().requires_grad_(False), record


@torch.no_grad()
def run_net(
    net: DomainNet, x: torch.Tensor, device: torch.device, batch: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, D], head output [N, ...]) on CPU, in batches, eval mode."""
    net.to(device, memory_format=torch.channels_last).eval()
    feats, outs = [], []
    for i in range(0, len(x), batch):
        f, o = net(x[i : i + batch].to(device, torch.float32).contiguous(memory_format=torch.channels_last))
        feats.append(f.float().cpu())
        outs.append(o.float().cpu())
    if not feats:
        return torch.empty(0, net.spec.feature_dim), torch.empty(0)
    return torch.cat(feats), torch.cat(outs)


def classifier_accuracy(net: DomainNet, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    _, logits = run_net(net, x, device)
    return float((logits.argmax(1) == y).double().mean().item())


@dataclass
class DomainExtractor:
    net: DomainNet
    key: str
    device: torch.device
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "domain"

    @property
    def identity(self) -> str:
        return f"domain:{self.key}"

    @property
    def short_hash(self) -> str:
        return self.key[:12]

    @property
    def preprocessing(self) -> str:
        s = self.net.spec
        return f"float [-1,1] {s.in_channels}x{s.resolution}x{s.resolution}, no resize"

    @property
    def has_logits(self) -> bool:
        return self.net.spec.num_classes > 0

    def features_and_logits(self, x: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, out = run_net(self.net, x, self.device, batch)
        return feats, (out if self.has_logits else None)


@EXTRACTORS.register("domain", help="small CNN trained on the run's real training split (cached); 128-d features")
def build_domain_extractor(
    train_set: Dataset, test_set: Dataset | None = None, *, device: str | torch.device | None = None,
    weights: str | None = None, recipe: DomainRecipe | None = None, cache: bool = True, log: Log = _quiet,
) -> DomainExtractor:
    """Train (or load) the domain network for ``train_set``; report its accuracy on ``test_set``."""
    if train_set.kind != "image":
        raise GanforgeError("the domain extractor is for images; 2D point metrics work on raw coordinates "
                            "(use --extractor raw, or leave the default).")
    if weights is not None:
        raise GanforgeError("--extractor-weights is for --extractor inception; the domain extractor trains its "
                            "own weights (cached under $GANFORGE_CACHE/extractors). Drop --extractor-weights.")
    c, h, w = train_set.shape
    if h != w:
        raise GanforgeError(f"the domain extractor expects square images, got {h}x{w}; set data.resolution.")
    device = pick_device(device)
    recipe = recipe or DomainRecipe()
    labelled = train_set.labelled
    spec = DomainSpec(in_channels=c, resolution=h, num_classes=train_set.num_classes if labelled else 0)
    trained = train_domain_net(train_set.x, train_set.y if labelled else None, spec, recipe, device=device,
                               cache=cache, data_fingerprint=train_set.fingerprint(), log=log)
    info: dict[str, Any] = {
        "kind": "classifier" if labelled else "autoencoder", "feature_dim": spec.feature_dim,
        "trained_on": f"{train_set.name} train split ({len(train_set)} images)", "cache_hit": trained.cache_hit,
        "weights_sha256": trained.record.get("weights_sha256"), "train_seconds": trained.record.get("train_seconds"),
        "test_accuracy": None,
    }
    if test_set is not None and len(test_set) > 0:
        if labelled and test_set.y is not None:
            info["test_accuracy"] = round(classifier_accuracy(trained.net, test_set.x, test_set.y, device), 4)
        elif not labelled:
            _, recon = run_net(trained.net, test_set.x, device)
            info["test_mse"] = round(float(F.mse_loss(recon, test_set.x).item()), 5)
        info["test_images"] = len(test_set)
    return DomainExtractor(trained.net, trained.key, device, info)
