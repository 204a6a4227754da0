"""objective.reuse_fakes: G's step backpropagates through the fakes of the iteration's D step (the PyTorch DCGAN
example's scheme) instead of generating new ones."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ganforge.data import Dataset
from ganforge.errors import ConfigError
from ganforge.presets import load_config
from ganforge.training.loop import build_training
from ganforge.training.state import seed_everything
from ganforge.variants import VARIANTS


def trainer(overrides: list[str]):
    cfg = load_config("mnist-cgan", ["model.g_channels=16", "model.d_channels=8", "model.embed_dim=4",
                                     "train.batch_size=8", *overrides])
    seed_everything(cfg.train.seed)
    gen = torch.Generator().manual_seed(1)
    data = Dataset("tiny", torch.rand(64, 1, 28, 28, generator=gen) * 2 - 1, torch.arange(64) % 10, num_classes=10,
                   class_names=tuple(map(str, range(10))))
    t = build_training(cfg, VARIANTS.get(cfg.variant), data, torch.device("cpu"), None)
    return cfg, t, t.make_step(cfg, torch.device("cpu"))


def record_g_calls(G: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    G.register_forward_hook(lambda m, args, out: calls.append((args[0].clone(), args[1].clone())))
    return calls


@pytest.mark.parametrize("reuse, forwards", [(False, 2), (True, 1)])
def test_one_g_forward_per_iteration_when_reusing(reuse, forwards):
    _, t, step = trainer([f"objective.reuse_fakes={str(reuse).lower()}"])
    calls = record_g_calls(t.nets["G"])
    step(0, 0)
    assert len(calls) == forwards


def test_reused_step_is_the_dcgan_example_iteration():
    """One iteration equals, by hand: fake = G(z, c); D steps on (real, fake.detach()); G steps on D'(fake), with
    D' the updated D, on the same z and labels."""
    cfg, t, step = trainer(["objective.reuse_fakes=true"])
    G0, D0 = copy.deepcopy(t.nets["G"]), copy.deepcopy(t.nets["D"])
    calls = record_g_calls(t.nets["G"])
    real_batches: list[torch.Tensor] = []
    original_next = t.sampler.next
    t.sampler.next = lambda: real_batches.append(original_next()) or real_batches[-1]  # type: ignore[method-assign]
    step(0, 0)
    (z, c), = calls
    idx = real_batches[0]
    x, y = t.objective.real_x[idx], t.objective.real_y[idx]
    assert torch.equal(c, y)  # D's fakes use the real batch's labels

    opt_g = torch.optim.Adam(G0.parameters(), lr=cfg.optim.lr_g, betas=(cfg.optim.beta1, cfg.optim.beta2))
    opt_d = torch.optim.Adam(D0.parameters(), lr=cfg.optim.lr_d, betas=(cfg.optim.beta1, cfg.optim.beta2))
    fake = G0(z, c)
    real_logits, fake_logits = D0(x, y).logits, D0(fake.detach(), c).logits
    loss_d = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    g_logits = D0(fake, c).logits
    F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits)).backward()
    opt_g.step()

    for mine, ref in ((t.nets["G"], G0), (t.nets["D"], D0)):
        for (name, a), b in zip(mine.state_dict().items(), ref.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-6), name
    assert all(p.requires_grad for net in t.nets.values() for p in net.parameters())  # nothing left frozen
    assert t.objective.kept is None  # the kept graph is released after G's step


def test_families_with_their_own_steps_refuse_it():
    cfg = load_config("brain-stylegan2-ada", ["objective.reuse_fakes=true"])
    family = VARIANTS.get(cfg.variant)
    data = Dataset("tiny", torch.zeros(4, 1, 32, 32), torch.zeros(4, dtype=torch.long), num_classes=1,
                   class_names=("a",))
    with pytest.raises(ConfigError, match="reuse_fakes=false"):
        family.check(cfg, data)
