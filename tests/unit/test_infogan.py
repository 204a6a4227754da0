"""InfoGAN: G takes z and a uniform categorical code, D never sees the code, D's Q head and G both minimise the
code's cross-entropy on generated images (and only there), no label of the data is used, and the exported
generator draws its codes itself, so it is sampled and evaluated as an unconditional generator."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.generate import choose_labels, generate_dataset
from ganforge.metrics.health import build_monitor
from ganforge.presets import load_config
from ganforge.training.export import LoadedGenerator, by_label, load_generator
from ganforge.training.setup import prepare
from ganforge.variants import VARIANTS
from tests.unit.test_evaluate import make_untrained_run

TINY = ["variant=infogan", "model.g_channels=16", "model.d_channels=8", "data.limit=200", "train.batch_size=32",
        "train.amp=off"]


def objective(overrides: list[str] = ()):
    cfg = load_config("mnist-wgan-gp", [*TINY, "objective.reuse_fakes=false", *overrides])
    setup = prepare(cfg)
    torch.manual_seed(0)
    nets = setup.build_networks()
    data = setup.train_set
    return setup.family.objective(cfg, nets, data, data.x, data.y)


def test_codes_are_uniform_and_the_data_labels_are_not_used():
    obj = objective(["family.codes=4"])
    phase_d, phase_g = obj.phases[0], obj.phases[-1]
    torch.manual_seed(1)
    codes = torch.cat([obj.draw(phase, torch.arange(32)).gen_c for phase in (phase_d, phase_g) for _ in range(40)])
    assert codes.min() == 0 and codes.max() == 3
    freq = torch.bincount(codes, minlength=4).double() / len(codes)
    assert torch.allclose(freq, torch.full((4,), 0.25, dtype=torch.float64), atol=0.03)
    batch = obj.draw(phase_d, torch.arange(32))
    assert batch.real_c is None  # the digits' labels never reach a loss
    assert obj.G.embed.num_embeddings == 4 and obj.D.aux.out_features == 4  # a code embedding in G, a Q head on D


def test_d_never_sees_the_code():
    obj = objective()  # mnist-wgan-gp's critic has a minibatch-std channel, which would group by a label it got
    seen: list = []
    forward = obj.D.forward

    def spy(x, c=None):
        seen.append(c)
        return forward(x, c)

    obj.D.forward = spy
    for phase in obj.phases:
        obj.accumulate_gradients(phase, obj.draw(phase, torch.arange(32)))
    assert seen and all(c is None for c in seen)


def test_q_learns_the_code_on_generated_images_only():
    obj = objective()
    phase = obj.phases[0]
    torch.manual_seed(2)
    batch = obj.draw(phase, torch.arange(32))
    with torch.no_grad():
        expected = F.cross_entropy(obj.D(obj.G(batch.gen_z, batch.gen_c)).aux_logits, batch.gen_c)
    stats = obj.accumulate_gradients(phase, batch)
    assert stats["loss_info"].item() == pytest.approx(expected.item(), rel=1e-5)
    # D's loss is the adversarial loss + GP + lambda x the code's cross-entropy: with lambda 0 it drops by exactly it
    off = objective(["family.info_weight=0"])
    stats_off = off.accumulate_gradients(phase, batch)
    assert (stats["loss_D"] - stats_off["loss_D"]).item() == pytest.approx(expected.item(), rel=1e-4)


def test_g_is_pushed_to_make_its_code_recoverable():
    on, off = objective(), objective(["family.info_weight=0"])
    phase = on.phases[-1]
    torch.manual_seed(3)
    batch = on.draw(phase, torch.arange(32))
    with torch.no_grad():
        gen_out = on.D(on.G(batch.gen_z, batch.gen_c))
        ce = F.cross_entropy(gen_out.aux_logits, batch.gen_c)
    gap = on.accumulate_gradients(phase, batch)["loss_G"] - off.accumulate_gradients(phase, batch)["loss_G"]
    assert gap.item() == pytest.approx(ce.item(), rel=1e-4)
    assert on.G.fc.weight.grad is not None and not torch.allclose(on.G.fc.weight.grad, off.G.fc.weight.grad)


def test_bad_options_and_clusters_are_refused():
    with pytest.raises(ConfigError, match="family.codes must be in"):
        prepare(load_config("mnist-wgan-gp", [*TINY, "family.codes=1"]))
    with pytest.raises(ConfigError, match="family.info_weight must be in"):
        prepare(load_config("mnist-wgan-gp", [*TINY, "family.info_weight=-1"]))
    with pytest.raises(ConfigError, match="Pick a conditional variant"):  # the codes are its own labels
        prepare(load_config("mnist-wgan-gp", [*TINY, "data.clusters=4"]))
    assert not VARIANTS.get("infogan").needs_labels


def test_the_health_check_samples_codes_and_measures_unconditionally():
    cfg = load_config("mnist-wgan-gp", [*TINY, "family.codes=4", "health.n=40"])
    setup = prepare(cfg)
    G = setup.build_networks()["G"]
    monitor = build_monitor(cfg, setup.family, setup.train_set, G)
    assert monitor.labels is None  # no per-class measure: the codes are not the digits' classes
    assert monitor.draw_labels.tolist() == [i % 4 for i in range(40)]


def test_a_trained_run_exports_a_generator_that_draws_its_own_codes(tmp_path):
    from ganforge.experiments.runner import resume_run, start_run

    cfg = load_config("mnist-wgan-gp", [*TINY, "family.codes=4", "train.kimg=0.128", "train.tick_kimg=0.064",
                                        "health.n=40"])
    quiet = {"progress": False, "log": lambda _: None}
    start_run(cfg, str(tmp_path / "run"), **quiet)
    gen = load_generator(tmp_path / "run")
    assert gen.conditional and gen.num_classes == 4 and gen.class_names == ("code 0", "code 1", "code 2", "code 3")
    assert gen.cluster_prior == [0.25] * 4 and not by_label(gen)
    _, codes = gen.sample(2000, seed=0)
    assert torch.bincount(codes, minlength=4).min() > 400  # uniform, drawn by the generator itself
    x3, asked = gen.sample(8, seed=0, labels=torch.full((8,), 3))  # a code can still be asked for
    assert asked.tolist() == [3] * 8 and not torch.allclose(x3, gen.sample(8, seed=0, labels=torch.zeros(8).long())[0])
    assert choose_labels(gen, 100, None, None) == (100, None)
    generate_dataset(tmp_path / "run", n=40, out=tmp_path / "synth")
    manifest = json.loads((tmp_path / "synth" / "manifest.json").read_text())
    assert manifest["labels_assigned"].startswith("drawn by the generator from its own prior")
    # exact resume: 2 ticks + 1 more equals 3 straight
    resume_run(tmp_path / "run", ["train.kimg=0.192"], **quiet)
    straight = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, kimg=0.192))
    start_run(straight, str(tmp_path / "straight"), **quiet)
    assert load_generator(tmp_path / "run").sha256 == load_generator(tmp_path / "straight").sha256


def test_evaluate_measures_it_as_an_unconditional_generator(tmp_path, monkeypatch):
    from ganforge.metrics.evaluate import evaluate_run

    run_dir = make_untrained_run(tmp_path / "run", "mnist-wgan-gp", [*TINY, "data.limit=1000"])
    asked: list = []
    sample = LoadedGenerator.sample

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("labels"))
        return sample(self, *args, **kwargs)

    monkeypatch.setattr(LoadedGenerator, "sample", spy)
    evaluate_run(run_dir, n=200, metrics=["fid"], device="cpu", n_boot=0, log=lambda _: None)
    assert asked and all(labels is None for labels in asked)
    with pytest.raises(Exception, match="class_acc"):  # the codes are not the digits' classes
        evaluate_run(run_dir, n=200, metrics=["class_acc"], device="cpu", n_boot=0, log=lambda _: None)


def test_the_learned_prior_waits_then_follows_q_on_real_batches():
    obj = objective(["family.codes=4", "family.prior_kimg=1"])
    prior, phase = obj.prior, obj.phases[0]
    assert prior is not None and torch.equal(prior.probs, torch.full((4,), 0.25))
    with torch.no_grad():  # Q reads every real digit as code 2 with probability 0.7, the others 0.1
        obj.D.aux.weight.zero_()
        obj.D.aux.bias.copy_(torch.tensor([0.1, 0.1, 0.7, 0.1]).log())
    torch.manual_seed(4)
    obj.set_progress(999)  # before family.prior_kimg: uniform, and the D step leaves it so
    obj.accumulate_gradients(phase, obj.draw(phase, torch.arange(32)))
    assert torch.equal(prior.probs, torch.full((4,), 0.25))
    obj.set_progress(1000)  # from family.prior_kimg on, each D step moves it towards Q's mean posterior
    obj.accumulate_gradients(phase, obj.draw(phase, torch.arange(32)))
    step = torch.tensor([0.1, 0.1, 0.7, 0.1]) - 0.25
    assert torch.allclose(prior.probs, 0.25 + prior.rate * step, atol=1e-6)
    assert prior.rate == pytest.approx(1 - 0.5 ** (32 / 10_000))  # a half-life of 10 kimg
    for _ in range(20_000):  # ~64 half-lives: it settles on Q's posterior
        prior.update(torch.tensor([[0.1, 0.1, 0.7, 0.1]]).log())
    assert torch.allclose(prior.probs, torch.tensor([0.1, 0.1, 0.7, 0.1]), atol=1e-4)
    codes = torch.cat([obj.draw(obj.phases[-1], torch.arange(32)).gen_c for _ in range(100)])
    assert abs((codes == 2).double().mean().item() - 0.7) < 0.05  # G's codes are drawn from it


def test_the_prior_is_uniform_unless_asked_and_a_bad_value_is_refused():
    assert objective(["family.codes=4"]).prior is None
    with pytest.raises(ConfigError, match="family.prior_kimg must be 0"):
        prepare(load_config("mnist-wgan-gp", [*TINY, "family.prior_kimg=-1"]))


def test_a_learned_prior_is_exported_sampled_and_resumed_exactly(tmp_path):
    from ganforge.experiments.runner import resume_run, start_run

    cfg = load_config("mnist-wgan-gp", [*TINY, "family.codes=4", "family.prior_kimg=0.064", "train.kimg=0.128",
                                        "train.tick_kimg=0.064", "health.n=40"])
    quiet = {"progress": False, "log": lambda _: None}
    start_run(cfg, str(tmp_path / "run"), **quiet)
    gen = load_generator(tmp_path / "run")
    prior = gen.cluster_prior
    assert prior is not None and sum(prior) == pytest.approx(1) and prior != [0.25] * 4  # learned in the 2nd tick
    assert not by_label(gen)
    torch.manual_seed(0)
    _, codes = gen.sample(4000, seed=0)
    freq = torch.bincount(codes, minlength=4).double() / 4000
    assert torch.allclose(freq, torch.tensor(prior, dtype=torch.float64), atol=0.03)  # sampled at its frequencies
    # exact resume: 2 ticks + 1 more equals 3 straight, the prior's state included
    resume_run(tmp_path / "run", ["train.kimg=0.192"], **quiet)
    straight = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, kimg=0.192))
    start_run(straight, str(tmp_path / "straight"), **quiet)
    resumed, fresh = load_generator(tmp_path / "run"), load_generator(tmp_path / "straight")
    assert resumed.sha256 == fresh.sha256 and resumed.cluster_prior == fresh.cluster_prior


def test_the_health_check_draws_the_codes_at_the_learned_prior(monkeypatch):
    from ganforge.metrics.health import HealthMonitor, stratified_labels

    assert stratified_labels([0.25] * 4, 10).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]  # uniform: as before
    assert torch.bincount(stratified_labels([0.5, 0.2, 0.2, 0.1], 40), minlength=4).tolist() == [20, 8, 8, 4]
    assert torch.bincount(stratified_labels([0.7, 0.3, 0.0, 0.0], 500), minlength=4).tolist() == [350, 150, 0, 0]
    cfg = load_config("mnist-wgan-gp", [*TINY, "family.codes=4", "family.prior_kimg=1", "health.n=40"])
    setup = prepare(cfg)
    nets = setup.build_networks()
    monitor = build_monitor(cfg, setup.family, setup.train_set, nets["G"])
    nets["code_prior"].probs.copy_(torch.tensor([0.5, 0.2, 0.2, 0.1]))
    asked: list = []
    monkeypatch.setattr(HealthMonitor, "_sample", lambda self, net: asked.append(self.draw_labels.clone()) or
                        torch.zeros(40, *setup.train_set.shape))
    monitor.check(1, 1.0, nets["G"], setup.family.label_info(cfg, setup.train_set, nets))
    assert torch.bincount(asked[0], minlength=4).tolist() == [20, 8, 8, 4]  # as generate draws them


def _prior_rank(rank: int, rendezvous: str, out: str) -> None:
    import torch.distributed as dist

    from ganforge.variants.infogan import CodePrior

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        prior = CodePrior(2, batch=64)
        prior.active.fill_(1.0)
        share = torch.tensor([[0.0, -50.0]] if rank == 0 else [[-50.0, 0.0]]).repeat(32, 1)  # all 0s / all 1s
        prior.update(share)
        torch.save(prior.probs, f"{out}-{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_under_several_processes_every_rank_learns_the_global_batchs_prior(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_prior_rank, args=(str(tmp_path / "rdv"), str(tmp_path / "probs")), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"probs-{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(rank0, rank1) and torch.allclose(rank0, torch.tensor([0.5, 0.5]))  # the mean of both shares
