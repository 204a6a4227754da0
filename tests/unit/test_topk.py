"""objective.topk: top-k training (Sinha et al. 2020). G's adversarial loss counts only the fakes D scores highest;
the counted fraction starts at 1 and shrinks by objective.topk_decay per epoch down to objective.topk."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ganforge.data import Dataset
from ganforge.errors import ConfigError
from ganforge.models.layers import DOut
from ganforge.presets import load_config
from ganforge.training.loop import build_training
from ganforge.training.state import seed_everything
from ganforge.variants import VARIANTS

N_DATA = 64


def trainer(overrides: list[str]):
    cfg = load_config("mnist-cgan", ["model.g_channels=16", "model.d_channels=8", "model.embed_dim=4",
                                     "train.batch_size=8", *overrides])
    seed_everything(cfg.train.seed)
    gen = torch.Generator().manual_seed(1)
    data = Dataset("tiny", torch.rand(N_DATA, 1, 28, 28, generator=gen) * 2 - 1, torch.arange(N_DATA) % 10,
                   num_classes=10, class_names=tuple(map(str, range(10))))
    t = build_training(cfg, VARIANTS.get(cfg.variant), data, torch.device("cpu"), None)
    return cfg, t, t.make_step(cfg, torch.device("cpu"))


@pytest.mark.parametrize(("epochs", "fraction"), [(0, 1.0), (1, 0.9), (3, 0.729), (2.5, 0.9**2.5), (7, 0.5),
                                                  (100, 0.5)])
def test_fraction_falls_per_epoch_down_to_the_floor(epochs, fraction):
    _, t, _ = trainer(["objective.topk=0.5", "objective.topk_decay=0.9"])
    t.objective.set_progress(int(epochs * N_DATA))
    assert t.objective.topk_fraction == pytest.approx(fraction)


def test_off_counts_every_fake():
    _, t, _ = trainer([])
    t.objective.set_progress(100 * N_DATA)
    out = DOut(torch.arange(8.0), None, torch.zeros(8, 2))
    assert t.objective.topk_fraction == 1.0 and t.objective.top_k(out) is out


def test_top_k_keeps_the_highest_scores_and_passes_gradient_to_them_only():
    _, t, _ = trainer(["objective.topk=0.25"])
    t.objective.set_progress(1000 * N_DATA)  # at the floor: 2 of 8
    logits = torch.tensor([0.3, -1.0, 2.0, 0.1, 5.0, -3.0, 0.0, 1.0], requires_grad=True)
    kept = t.objective.top_k(DOut(logits, None, torch.zeros(8, 2)))
    assert sorted(kept.logits.tolist()) == [2.0, 5.0]
    kept.logits.sum().backward()
    assert logits.grad.tolist() == [0, 0, 1, 0, 1, 0, 0, 0]


def test_g_step_is_the_top_k_iteration_by_hand():
    """One iteration (reused fakes, at the floor 0.5) equals: D steps on (real, fake); G steps on the non-saturating
    loss of the 4 of its 8 fakes that the updated D scores highest. Without top-k it would step on all 8."""
    cfg, t, step = trainer(["objective.reuse_fakes=true", "objective.topk=0.5", "objective.topk_decay=0.5"])
    G0, D0 = copy.deepcopy(t.nets["G"]), copy.deepcopy(t.nets["D"])
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    t.nets["G"].register_forward_hook(lambda m, args, out: calls.append((args[0].clone(), args[1].clone())))
    real_batches: list[torch.Tensor] = []
    original_next = t.sampler.next
    t.sampler.next = lambda: real_batches.append(original_next()) or real_batches[-1]  # type: ignore[method-assign]
    step(0, 50 * N_DATA)  # 50 epochs in: the fraction is at its floor
    (z, c), = calls
    x, y = t.objective.real_x[real_batches[0]], t.objective.real_y[real_batches[0]]

    opt_g = torch.optim.Adam(G0.parameters(), lr=cfg.optim.lr_g, betas=(cfg.optim.beta1, cfg.optim.beta2))
    opt_d = torch.optim.Adam(D0.parameters(), lr=cfg.optim.lr_d, betas=(cfg.optim.beta1, cfg.optim.beta2))
    fake = G0(z, c)
    real_logits, fake_logits = D0(x, y).logits, D0(fake.detach(), c).logits
    (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()).backward()
    opt_d.step()
    g_logits = D0(fake, c).logits
    top = g_logits.detach().topk(4).indices
    F.softplus(-g_logits[top]).mean().backward()
    opt_g.step()

    for (name, a), b in zip(t.nets["G"].state_dict().items(), G0.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["objective.topk=0"], "objective.topk must be in"),
        (["objective.topk=1.5"], "objective.topk must be in"),
        (["objective.topk_decay=0"], "objective.topk_decay must be in"),
        (["objective.topk=0.5", "train.cuda_graphs=true"], "cannot be combined with train.cuda_graphs"),
    ],
)
def test_bad_values_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config("mnist-cgan", overrides)


def test_families_without_the_gan_g_step_refuse_it():
    def data(size: int) -> Dataset:
        return Dataset("tiny", torch.zeros(4, 1, size, size), torch.zeros(4, dtype=torch.long), num_classes=1,
                       class_names=("a",))

    cfg = load_config("brain-stylegan2-ada", ["objective.topk=0.5"])
    with pytest.raises(ConfigError, match="objective.topk=1"):
        VARIANTS.get(cfg.variant).check(cfg, data(32))
    cfg = load_config("mnist-cgan", ["objective.topk=0.5", "objective.feature_matching=true"])
    with pytest.raises(ConfigError, match="feature_matching"):
        VARIANTS.get(cfg.variant).check(cfg, data(28))
