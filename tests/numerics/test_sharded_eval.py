"""``evaluate`` and ``generate`` under torchrun: 2 gloo processes (``file://`` rendezvous) split the samples and
their features, every rank gets the values one process gets, and rank 0 alone writes."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ganforge.generate import generate_dataset
from ganforge.metrics.evaluate import evaluate_run
from ganforge.presets import load_config
from ganforge.training import distributed
from ganforge.training.distributed import World
from ganforge.training.export import export_generator
from ganforge.variants import VARIANTS

METRICS = ["fid", "kid", "precision", "recall", "fid_per_class"]
N = 301  # odd: the ranks' shares differ by one row


def _export(run_dir: Path) -> Path:
    """An untrained conditional generator, exported as a run directory (evaluation needs no trained one)."""
    cfg = load_config("mnist-cgan", ["model.g_channels=16", "model.d_channels=8", "train.kimg=1"])
    family = VARIANTS.get(cfg.variant)
    torch.manual_seed(0)
    G = family.build_generator(cfg.model, (1, 28, 28), 10)
    info = {"shape": [1, 28, 28], "num_classes": 10, "class_names": [str(k) for k in range(10)], "kind": "image",
            **family.export_info(), "variant": cfg.variant, "ema": False, "kimg": 0.0}
    run_dir.mkdir(parents=True)
    export_generator(run_dir, G, cfg, info)
    return run_dir


def _job(run: Path, out: Path, world: World) -> dict:
    generate_dataset(run, out / "synth", per_class=7, seed=3, fmt="npz", world=world)
    result = evaluate_run(run, n=N, metrics=METRICS, extractor="raw", n_boot=0, world=world, log=lambda _: None)
    return {k: v.value for k, v in result.values.items()}


def _worker(rank: int, rendezvous: str, run: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        values = _job(Path(run), Path(out), distributed.current())
        (Path(out).parent / f"values-rank{rank}.json").write_text(json.dumps(values))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    one_run, two_run = _export(root / "one" / "run"), root / "two" / "run"
    shutil.copytree(one_run, two_run)
    one = _job(one_run, root / "one", World())
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(str(Path(tmp) / "rdv"), str(two_run), str(root / "two")), nprocs=2, join=True)
    return root, one


def test_two_ranks_give_every_rank_the_values_of_one_process(both):
    root, one = both
    ranks = [json.loads((root / f"values-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # the same on every rank, so any rank could report
    assert set(ranks[0]) == set(METRICS)
    for name in METRICS:
        assert ranks[0][name] == pytest.approx(one[name], rel=1e-4, abs=1e-6), name


def test_rank_zero_alone_writes_and_the_samples_equal_one_process(both):
    root, _ = both
    assert json.loads((root / "two" / "run" / "eval.json").read_text())["n_generated"] == N
    history = (root / "two" / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(history) == 1  # one evaluate record, not one per rank
    a = np.load(root / "one" / "synth" / "samples.npz")
    b = np.load(root / "two" / "synth" / "samples.npz")
    assert (a["labels"] == b["labels"]).all() and len(b["labels"]) == 70
    # the same latents through the same network, in other batch compositions: uint8 equal up to a rounding step
    diff = np.abs(a["images"].astype(int) - b["images"].astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
    manifest = json.loads((root / "two" / "synth" / "manifest.json").read_text())
    assert manifest["n"] == 70 and manifest["counts_per_class"]["3"] == 7


@pytest.mark.parametrize("n, size", [(7, 2), (8, 2), (2, 3), (10, 4)])
def test_row_ranges_cover_every_row_once_in_order(n, size):
    ranges = [distributed.row_range(n, World(r, size)) for r in range(size)]
    rows = [i for lo, hi in ranges for i in range(lo, hi)]
    assert rows == list(range(n))
    assert max(hi - lo for lo, hi in ranges) - min(hi - lo for lo, hi in ranges) <= 1
