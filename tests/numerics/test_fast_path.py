"""The fast path changes speed, not results.

- CPU: for a fixed seed, the study-style loop (``benchmarks/plain_loop.py``) and ganforge's step give
  the same losses, step by step, for the MNIST MLP and the PathMNIST DCGAN.
- CUDA (skipped without a GPU; CI has none, run it on a GPU machine): ``GraphedStep`` gives the losses
  and weights of ``EagerStep`` across objectives (BCE, WGAN-GP with 5 critic steps, lazy R1 with two
  captured phase patterns, conditional G/D, EMA, bf16 + channels_last), falls back to eager when the
  iteration cannot be captured, and neither step synchronises with the host.
"""

from __future__ import annotations

import copy
import os
import traceback
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.plain_loop import plain_train
from benchmarks.train_speed import build_trainer, synthetic_images
from ganforge.models import build_models
from ganforge.presets import load_config
from ganforge.training.fast import GraphedStep
from ganforge.training.step import EagerStep
from ganforge.variants import VARIANTS

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _models(cfg, shape, num_classes=1):
    torch.manual_seed(123)
    return build_models(cfg.model, shape, num_classes, VARIANTS.get(cfg.variant).conditioning)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _ganforge_losses(trainer, steps):
    out = []
    for i in range(steps):
        trainer.step(i, 0)  # images seen: only the EMA ramp-up (off here) reads it
        values = trainer.stats.read_and_reset()
        out.append((values["loss_D"], values["loss_G"]))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize(
    ("preset", "shape", "batch", "n"),
    [("mnist-mlp", (1, 28, 28), 64, 320), ("pathmnist-dcgan", (3, 28, 28), 32, 160)],
)
def test_plain_loop_and_ganforge_step_agree_on_cpu(preset, shape, batch, n):
    cfg = load_config(preset, [f"train.batch_size={batch}", "train.seed=3", "train.device=cpu"])
    x = synthetic_images(n, shape, seed=1)  # n / batch / 2 iterations per epoch: several epochs
    steps = 12
    models = _models(cfg, shape)
    plain_models = copy.deepcopy(models)

    trainer = build_trainer(cfg, x, None, 0, torch.device("cpu"), models)  # seeds the global RNG with train.seed
    assert isinstance(trainer.step, EagerStep)
    ours = _ganforge_losses(trainer, steps)

    torch.manual_seed(cfg.train.seed)
    r = plain_train(*plain_models, x, batch_size=batch, iterations=steps, lr_g=cfg.optim.lr_g, lr_d=cfg.optim.lr_d,
                    betas=(cfg.optim.beta1, cfg.optim.beta2), seed=cfg.train.seed)
    theirs = torch.tensor(list(zip(r.loss_D, r.loss_G)), dtype=torch.float64)

    assert torch.isfinite(ours).all() and ours.std(0).min() > 0  # losses move: a real comparison
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # Weights: Adam turns gradients near 0 (e.g. of a bias before batch norm) into +-lr steps, so compare
    # all of G's weights as one vector, not element by element.
    assert _rel(_flat(trainer.G), _flat(plain_models[0])) < 1e-4


# Ops that make the host wait for a CUDA device: a value read (.item(), a tensor passed as a number) or an output
# whose size depends on the data (nonzero, unique, boolean-mask indexing, masked_select). On a CPU they dispatch
# the same ops, so a CPU test can find them.
_SYNCING = {"_local_scalar_dense", "nonzero", "_unique", "_unique2", "unique_dim", "unique_consecutive",
            "masked_select", "repeat_interleave"}


class _HostReads(TorchDispatchMode):
    """Where the host would wait for the device (``_SYNCING``): on CUDA each such op stalls the launch queue, and
    inside a CUDA graph capture it is an error. Adam's own CPU path is left out:
    it reads its step counters on a CPU only (on CUDA ganforge runs it fused, captured ``capturable``)."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.name().split("::")[-1].split(".")[0] in _SYNCING:
            stack = traceback.extract_stack()[:-1]
            if not any(f"torch{os.sep}optim{os.sep}" in f.filename for f in stack):
                self.reads.append(" < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stack[::-1][:4]))
        return func(*args, **(kwargs or {}))


HOST_CASES = {  # preset, image shape, classes, overrides
    "dcgan-ema": ("pathmnist-dcgan", (3, 28, 28), 0, ["train.ema_kimg=0.5"]),
    "dcgan-ema-rampup": ("pathmnist-dcgan", (3, 28, 28), 0, ["train.ema_kimg=0.5", "train.ema_rampup=0.05"]),
    "cgan-projection": ("mnist-cgan-projection", (1, 28, 28), 10, []),  # per-class minibatch std, lazy R1, EMA
    "acgan": ("mnist-acgan", (1, 28, 28), 10, []),
    "cwgan-gp": ("mnist-cwgan-gp", (1, 28, 28), 10, []),
    "cragan": ("mnist-cragan", (1, 28, 28), 10, []),
    "projection-resnet": ("mnist-projection", (1, 28, 28), 10, []),
    "mnist-best": ("mnist-best", (1, 28, 28), 10, []),  # conditional BN and the embedded label in G, projection D, R1
    "wgan-gp": ("mnist-wgan-gp", (1, 28, 28), 0, []),
    "infogan": ("mnist-infogan", (1, 28, 28), 10, []),  # 10 codes drawn on the device (the labels unused), a Q head
}


@pytest.mark.parametrize("case", list(HOST_CASES))
def test_the_step_never_waits_for_the_device(case):
    """The CPU stand-in for the CUDA sync test below, over the presets whose layers differ: what the step does on a
    GPU, it does here too. Found on an H200 (2026-12-04), both invisible on a CPU: the EMA update passed its weight
    (a 0-dim tensor, so that a captured graph reads its current value) to ``_foreach_lerp_``, which has no
    tensor-weight overload, so it went through ``.item()`` every step and could not be captured; and the per-class
    minibatch std looped over ``c.unique().tolist()`` with ``nonzero``, several syncs per D forward, which made
    mnist-best (then the projection recipe), AC-GAN, cWGAN-GP and cRaGAN train at ~500 img/s on the GPU where the
    cGAN trained at ~9,500."""
    preset, shape, k, overrides = HOST_CASES[case]
    cfg = load_config(preset, ["train.batch_size=16", "train.seed=0", "train.device=cpu", *overrides])
    y = torch.arange(64) % 7 if k else None  # 16 labels of 7 classes per batch: pairs and classes seen once
    trainer = build_trainer(cfg, synthetic_images(64, shape), y, k, torch.device("cpu"), _models(cfg, shape, max(k, 1)))
    assert trainer.G_ema is not None
    before = _flat(trainer.G_ema).clone()
    trainer.step(0, 0)  # first step: lazy state (optimiser moments) is made
    with _HostReads() as mode:
        for i in range(1, 5):  # an epoch is 4 iterations: the reshuffle is inside
            trainer.step(i, 16 * i)
    assert mode.reads == []
    assert not torch.equal(_flat(trainer.G_ema), before)  # the EMA did move


# ---------------------------------------------------------------------------------------------------------
# CUDA: GraphedStep == EagerStep

GPU_CASES = {
    "dcgan-bce-ema": ("pathmnist-dcgan", (3, 28, 28), 0, ["train.ema_kimg=0.5"]),
    "mlp-dropout": ("mnist-mlp", (1, 28, 28), 0, []),
    "dcgan-lazy-r1": ("pathmnist-dcgan", (3, 28, 28), 0, ["objective.r1_gamma=1.0", "objective.r1_interval=4"]),
    "dcgan-wgan-gp": ("pathmnist-dcgan", (3, 28, 28), 0, [
        "objective.loss=wasserstein", "objective.gp_weight=10", "objective.n_critic=5", "model.d_batchnorm=[false]"]),
    "dcgan-cgan": ("pathmnist-dcgan", (3, 28, 28), 9, ["variant=cgan"]),
    "mlp-acgan": ("mnist-mlp", (1, 28, 28), 10, ["variant=acgan", "model.g_batchnorm=[true]"]),
    "dcgan-bf16-channels-last": ("pathmnist-dcgan", (3, 28, 28), 0, ["train.amp=bf16", "train.channels_last=true"]),
}


def _trainers(case, copies=2, batch=64, n=640, seed=5):
    """``copies`` eager trainers and one graphed trainer of ``case``, all from the same initial weights."""
    preset, shape, k, overrides = GPU_CASES[case]
    base = [f"train.batch_size={batch}", f"train.seed={seed}", *overrides]
    x = synthetic_images(n, shape, seed=2)
    y = torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(0)) if k else None
    cfgs = [load_config(preset, base)] * copies + [load_config(preset, base + ["train.cuda_graphs=true"])]
    models = _models(cfgs[0], shape, max(k, 1))
    dev = torch.device("cuda")
    return [build_trainer(cfg, x, y, k, dev, copy.deepcopy(models)) for cfg in cfgs]


def _pair(case, **kw):
    return _trainers(case, copies=1, **kw)


@cuda
@pytest.mark.parametrize("case", list(GPU_CASES))
def test_graphed_step_matches_eager_step(case):
    steps = 24
    eager, eager_again, graphed = _trainers(case)
    assert isinstance(eager.step, EagerStep) and isinstance(graphed.step, GraphedStep)
    seed = torch.initial_seed()
    runs = []
    for trainer in (eager, eager_again, graphed):
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a capture failure would be a RuntimeWarning
            runs.append(_ganforge_losses(trainer, steps))
    ref, ref_again, got = runs
    assert graphed.step.graphs and graphed.step.failed is None
    assert torch.isfinite(got).all()
    bf16 = "bf16" in case
    # The graph may differ from eager by about as much as eager differs from itself (cuDNN's nondeterministic
    # kernels; WGAN-GP's double backward differs by ~1e-3 from the second step on), plus a small floor.
    def within_noise(rows: slice, floor: float) -> None:
        noise = (ref_again[rows] - ref[rows]).abs().max().item()
        assert (got[rows] - ref[rows]).abs().max().item() <= 3 * noise + floor * ref[rows].abs().max().item()

    # The first replays follow the eager warm-up iterations: same weights and, if the graph draws the random
    # numbers eager would, the same losses up to rounding. Other latents or data would move them by ~1e-2.
    within_noise(slice(0, graphed.step.warmup + 2), 1e-3 if bf16 else 1e-4)
    # Later, GAN training amplifies rounding.
    within_noise(slice(0, steps), 2e-2 if bf16 else 2e-3)
    for a, b, c in ((graphed.G, eager.G, eager_again.G), (graphed.D, eager.D, eager_again.D),
                    (graphed.G_ema, eager.G_ema, eager_again.G_ema)):
        if b is not None:
            noise = _rel(_flat(c), _flat(b))
            assert _rel(_flat(a), _flat(b)) <= 3 * noise + (1e-2 if bf16 else 1e-3)


@cuda
def test_lazy_regularisation_captures_one_graph_per_phase_pattern():
    _, graphed = _pair("dcgan-lazy-r1")
    for i in range(20):
        graphed.step(i, 0)
    assert len(graphed.step.graphs) == 2  # iterations with and without the R1 phase


@cuda
def test_capture_failure_falls_back_to_eager_with_the_same_results(monkeypatch):
    original = EagerStep.run_phase

    def with_host_sync(self, phase, idx):
        stats = original(self, phase, idx)
        torch.cuda.synchronize()  # not allowed while capturing
        return stats

    monkeypatch.setattr(EagerStep, "run_phase", with_host_sync)
    eager, graphed = _pair("mlp-dropout")
    torch.manual_seed(1)
    ref = _ganforge_losses(eager, 10)
    torch.manual_seed(1)
    with pytest.warns(RuntimeWarning, match="could not be captured"):
        got = _ganforge_losses(graphed, 10)
    assert graphed.step.failed is not None and not graphed.step.graphs
    torch.testing.assert_close(got, ref, rtol=2e-3, atol=2e-4)


@cuda
@pytest.mark.parametrize("graphs", [False, True])
def test_no_host_device_sync_inside_the_step(graphs):
    eager, graphed = _pair("dcgan-bce-ema", batch=128, n=1000)  # an epoch every ~4 iterations
    trainer = graphed if graphs else eager
    for i in range(6):  # warm-up and capture synchronise on purpose
        trainer.step(i, 0)  # images seen: only the EMA ramp-up (off here) reads it
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(6, 30):
            trainer.step(i, 0)  # images seen: only the EMA ramp-up (off here) reads it
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(torch.tensor(list(trainer.stats.read_and_reset().values()))))
