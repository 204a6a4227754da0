"""Data-parallel training on CPU: 2 gloo processes (``torch.multiprocessing.spawn``, ``file://`` rendezvous, no
port) against one process on the same global batch. For a batch-norm- and dropout-free run, every tick's
losses and the final G, D and G_ema agree within 1e-5; a 2-process checkpoint resumes in 1 process and ends
where the 1-process run ends; a killed rank stops the run and its last checkpoint resumes; on CPU batch norm
keeps every rank identical (running statistics follow rank 0)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ganforge.experiments.runner import resume_run, start_run
from ganforge.presets import load_config
from ganforge.training import distributed
from ganforge.training.checkpoint import load_checkpoint
from ganforge.training.rundir import read_history, training_records

# The sine MLP without dropout (per-rank randomness would differ from one process's): batch 32 = 2 x 16,
# one tick (a metrics.jsonl record) per step, 8 steps.
RECIPE = ("model.d_dropout=[0.0]", "train.kimg=0.256", "train.tick_kimg=0.001", "train.grid_size=16")


def _worker(
    rank: int, world: int, rendezvous: str, out: str, overrides: tuple[str, ...], die_at: int, resume: bool,
    nan_at: int = 0,
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    nets: list = []
    real_broadcast = distributed.broadcast_buffers

    def remember(modules, w):  # called once per iteration with (G, D): keep them to dump this rank's final state
        nets[:] = modules
        real_broadcast(modules, w)

    distributed.broadcast_buffers = remember
    try:
        if die_at and rank == 1:  # a rank lost mid-run: exits hard at its die_at-th tick
            seen, real = [0], distributed.mean_over_ranks

            def dying(values, w):
                seen[0] += 1
                if seen[0] == die_at:
                    os._exit(1)
                return real(values, w)

            distributed.mean_over_ranks = dying
        if nan_at:  # the losses of the nan_at-th tick are NaN (on every rank: they are averaged over ranks)
            calls, averaged = [0], distributed.mean_over_ranks

            def diverging(values, w):
                calls[0] += 1
                values = averaged(values, w)
                return {**values, "loss_D": float("nan")} if calls[0] == nan_at else values

            distributed.mean_over_ranks = diverging
        if resume:  # overrides: the resume overrides (train.kimg=...)
            resume_run(Path(out), overrides, progress=False, log=lambda _: None)
        else:
            start_run(load_config("sine", overrides), out, progress=False, log=lambda _: None)
        state = {f"{name}.{k}": v for name, net in zip("GD", nets) for k, v in net.state_dict().items()}
        torch.save(state, Path(out).parent / f"{Path(out).name}-rank{rank}.pt")  # outside the run folder
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _spawn(out: Path, overrides: tuple[str, ...] = RECIPE, die_at: int = 0, resume: bool = False,
           nan_at: int = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = (2, str(Path(tmp) / "rdv"), str(out), overrides, die_at, resume, nan_at)
        mp.spawn(_worker, args=args, nprocs=2, join=True)


def _ticks(run: Path) -> list[dict]:
    """The training records of metrics.jsonl (a resume that changes the config also records the change)."""
    records, _ = read_history(run)
    return training_records(records)


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Weights within 1e-5, allowing Adam its one known amplifier of rounding: a weight whose gradient is near
    zero (|g| ~ eps = 1e-8, after cancellation) moves by lr * g / (|g| + eps), so summing a batch in two halves
    instead of one can move it by up to ~lr/10. At most 1 in 10,000 weights may differ by more than 1e-5, and
    none by more than 1e-4; a real error (a missing all-reduce, a wrong shard) moves most weights by ~lr."""
    assert a.keys() == b.keys()
    if not a:  # no G_ema in this preset
        return
    diff = torch.cat([(x.float() - b[k].float()).abs().reshape(-1) for k, x in a.items() if x.is_floating_point()])
    assert diff.max().item() <= 1e-4, f"largest difference {diff.max().item():.2e}"
    assert (diff > 1e-5).sum().item() <= max(1, diff.numel() // 10_000), f"{(diff > 1e-5).sum().item()} weights off"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    start_run(load_config("sine", RECIPE), str(root / "one"), progress=False, log=lambda _: None)
    _spawn(root / "two")
    return root / "one", root / "two"


@pytest.mark.slow
def test_two_processes_equal_one_process_on_the_same_global_batch(runs):
    one, two = runs
    a, b = _ticks(one), _ticks(two)
    assert len(a) == len(b) == 8  # one tick per step: per-step statistics
    for ra, rb in zip(a, b):
        assert ra["kimg"] == rb["kimg"]  # images counted globally: 32 per step, not 16
        for key in ("loss_D", "loss_G", "D_real", "D_fake"):
            assert rb[key] == pytest.approx(ra[key], abs=1e-5), (ra["tick"], key)
    ck1, ck2 = load_checkpoint(one / "checkpoints" / "latest.pt"), load_checkpoint(two / "checkpoints" / "latest.pt")
    for net in [n for n in ("G", "D", "G_ema") if n in ck1]:
        _close(ck1[net], ck2[net])
    assert ck2["world_size"] == 2 and ck1["world_size"] == 1
    assert (two / "generator.safetensors").is_file() and (two / "summary.json").is_file()
    rank0, rank1 = _rank_states(two)
    assert len(rank0) == len(rank1) == len(ck2["G"]) + len(ck2["D"])
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # the ranks never drift apart


@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_in_one_process_and_ends_where_one_process_ends(runs, tmp_path):
    import shutil

    one, two = runs
    for run in (one, two):
        shutil.copytree(run, tmp_path / run.name)
    with pytest.warns(UserWarning, match="written by 2 process"):
        resume_run(tmp_path / "two", ["train.kimg=0.32"], progress=False, log=lambda _: None)
    resume_run(tmp_path / "one", ["train.kimg=0.32"], progress=False, log=lambda _: None)
    ck1 = load_checkpoint(tmp_path / "one" / "checkpoints" / "latest.pt")
    ck2 = load_checkpoint(tmp_path / "two" / "checkpoints" / "latest.pt")
    assert ck1["images_seen"] == ck2["images_seen"] == 320
    for net in [
        n for n in ("G", "D", "G_ema") if n in ck1
    ]:  # the data order and latents continued exactly across world sizes
        _close(ck1[net], ck2[net])


@pytest.mark.slow
def test_a_two_process_run_resumed_on_two_processes_continues_bit_for_bit(runs, tmp_path):
    import shutil

    _, two = runs
    shutil.copytree(two, tmp_path / "resumed")
    _spawn(tmp_path / "resumed", ("train.kimg=0.32",), resume=True)
    _spawn(tmp_path / "straight", tuple("train.kimg=0.32" if o.startswith("train.kimg") else o for o in RECIPE))
    a, b = _ticks(tmp_path / "resumed"), _ticks(tmp_path / "straight")
    assert len(a) == len(b) == 10
    for ra, rb in zip(a, b):
        assert {k: ra[k] for k in ("loss_D", "loss_G", "D_real", "D_fake")} == {
            k: rb[k] for k in ("loss_D", "loss_G", "D_real", "D_fake")
        }
    ck_a = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "latest.pt")
    ck_b = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    for net in ("G", "D"):
        assert all(torch.equal(ck_a[net][k], ck_b[net][k]) for k in ck_a[net])


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_and_the_last_checkpoint_resumes(tmp_path):
    with pytest.raises(mp.ProcessExitedException):
        _spawn(tmp_path / "run", die_at=4)
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ck["tick"] == 3  # ticks 1-3 were written; the 4th never completed
    result = resume_run(tmp_path / "run", progress=False, log=lambda _: None)
    assert result.summary["images_seen"] == 256 and result.summary["ticks"] == 8


def _rank_states(run: Path) -> tuple[dict, dict]:
    return tuple(torch.load(run.parent / f"{run.name}-rank{r}.pt", weights_only=True) for r in (0, 1))


@pytest.mark.slow
def test_nan_rollback_under_two_processes_rolls_every_rank_back_together(tmp_path):
    _spawn(tmp_path / "nan", (*RECIPE, "train.nan_policy=rollback"), nan_at=3)
    history, _ = read_history(tmp_path / "nan")
    rollbacks = [r for r in history if r.get("type") == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["to_kimg"] == pytest.approx(0.064)  # written once, by rank 0
    assert [r["tick"] for r in training_records(history)] == list(range(1, 9))  # tick 3 redone, then on to 8
    ck = load_checkpoint(tmp_path / "nan" / "checkpoints" / "latest.pt")
    assert ck["opt_G"]["param_groups"][0]["lr"] == pytest.approx(0.5 * load_config("sine").optim.lr_g)
    rank0, rank1 = _rank_states(tmp_path / "nan")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # both ranks rolled back to the same state


@pytest.mark.slow
def test_batch_norm_on_cpu_keeps_the_ranks_identical(tmp_path):
    # G with batch norm: each rank normalises its own 16 rows, so the ranks' batch statistics differ; the
    # averaged gradients keep the weights equal and the running statistics are rank 0's on every rank.
    overrides = ("model.g_batchnorm=[true]", *RECIPE)
    _spawn(tmp_path / "bn", overrides)
    rank0, rank1 = _rank_states(tmp_path / "bn")
    running = [k for k in rank0 if k.endswith("running_mean")]
    assert running, "the preset should have batch norm"
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    ck = load_checkpoint(tmp_path / "bn" / "checkpoints" / "latest.pt")
    assert all(torch.equal(ck["G"][k[2:]], rank0[k]) for k in rank0 if k.startswith("G."))


def test_batch_size_must_split_over_the_processes():
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="multiple of 3"):
        distributed.check_batch(32, distributed.World(0, 3))
    distributed.check_batch(32, distributed.World(1, 2))


def test_shard_takes_each_ranks_contiguous_rows():
    x = torch.arange(8)
    assert distributed.shard(x, distributed.World(0, 2)).tolist() == [0, 1, 2, 3]
    assert distributed.shard(x, distributed.World(1, 2)).tolist() == [4, 5, 6, 7]
    assert distributed.shard(x, distributed.World()).tolist() == list(range(8))


def test_shard_batch_splits_the_global_batch_fields_of_a_family_draw():
    from dataclasses import dataclass

    @dataclass
    class Draw:
        real_img: torch.Tensor
        real_c: torch.Tensor | None
        gen_z: torch.Tensor
        table: torch.Tensor  # not per sample: kept whole

    draw = Draw(torch.arange(8.0).view(8, 1), None, torch.arange(16.0).view(8, 2), torch.zeros(3))
    mine = distributed.shard_batch(draw, 8, distributed.World(1, 2))
    assert mine.real_img.view(-1).tolist() == [4, 5, 6, 7] and mine.real_c is None
    assert mine.gen_z.shape == (4, 2) and mine.gen_z[0].tolist() == [8, 9] and mine.table.shape == (3,)
    assert distributed.shard_batch(draw, 8, distributed.World()) is draw
    assert distributed.shard_batch({"z": torch.zeros(8, 2)}, 8, distributed.World(0, 2))["z"].shape == (4, 2)
