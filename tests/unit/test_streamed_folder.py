"""A large image folder streams from disk (data/stream.py): above ``data.max_memory_mb`` it is read per batch, gives
the same batches as the in-memory folder, trains to the same generator and resumes bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.stream import StreamedImages
from ganforge.experiments.runner import resume_run, start_run
from ganforge.presets import config_from_layers

TINY_MB = 1e-4  # 100 bytes: every folder below streams


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of 12 RGB images each, 20x14 (so data.resolution resizes and center-crops)."""
    root = tmp_path_factory.mktemp("cats")
    rng = np.random.default_rng(0)
    for k in ("a", "b"):
        (root / k).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (14, 20, 3), dtype=np.uint8)).save(root / k / f"{i}.png")
    return root


def _data(folder, **kw) -> DataConfig:
    return DataConfig(name="folder", path=str(folder), resolution=8, resize="center-crop", **kw)


def test_a_folder_over_the_threshold_streams_and_reads_the_same_pixels(folder):
    memory = load_dataset(_data(folder), "train")
    streamed = load_dataset(_data(folder, max_memory_mb=TINY_MB, loader_threads=3), "train")
    assert isinstance(memory.x, torch.Tensor) and isinstance(streamed.x, StreamedImages)
    assert streamed.shape == memory.shape == (3, 8, 8) and len(streamed) == len(memory)
    assert torch.equal(streamed.y, memory.y)
    idx = torch.tensor([5, 0, 17, 5, 3, 11, 2])  # any order, repeats: rows come back as asked, whatever thread reads
    assert torch.equal(streamed.x[idx], memory.x[idx])
    assert torch.equal(streamed.x[2:9], memory.x[2:9]) and torch.equal(streamed.x[4], memory.x[4])
    assert torch.equal(streamed.x[:, :1], memory.x[:, :1])
    with pytest.raises(IndexError):
        streamed.x[torch.tensor([len(memory)])]
    assert streamed.fingerprint() != memory.fingerprint()  # cached features never mix the two
    assert streamed.fingerprint() == load_dataset(_data(folder, max_memory_mb=TINY_MB), "train").fingerprint()


def test_classes_and_limit_pick_rows_and_a_small_remainder_is_loaded(folder):
    memory = load_dataset(_data(folder, classes=(1,), limit=5), "train")
    cfg = _data(folder, classes=(1,), limit=5, max_memory_mb=TINY_MB)
    streamed = load_dataset(cfg, "train")
    assert isinstance(streamed.x, StreamedImages) and len(streamed) == 5
    assert torch.equal(streamed.x[torch.arange(5)], memory.x) and torch.equal(streamed.y, memory.y)
    # five 8x8 RGB images are 3,840 bytes: under a 0.01 MB threshold what is left after limit is read into memory
    small = load_dataset(dataclasses.replace(cfg, max_memory_mb=0.01), "train")
    assert isinstance(small.x, torch.Tensor) and torch.equal(small.x, memory.x)


def _config(folder, kimg: float, streamed: bool):
    return config_from_layers(
        [
            {
                "name": "streamed",
                "variant": "gan",
                "data": {
                    "name": "folder",
                    "path": str(folder),
                    "resolution": 8,
                    "resize": "center-crop",
                    "max_memory_mb": TINY_MB if streamed else 4096,
                },
                "model": {"arch": "dcgan", "z_dim": 8, "g_channels": 16, "d_channels": 8},
                "train": {
                    "kimg": kimg,
                    "tick_kimg": 0.016,
                    "batch_size": 8,
                    "grid_size": 4,
                    "device": "cpu",
                    "ema_kimg": 0.02,
                    "seed": 2,
                },
            }
        ]
    )


def test_streamed_training_matches_in_memory_and_resumes_exactly(folder, tmp_path):
    torch.set_num_threads(1)
    quiet = {"progress": False, "log": lambda _: None}
    memory, straight, stopped = tmp_path / "memory", tmp_path / "straight", tmp_path / "stopped"
    start_run(_config(folder, 0.064, streamed=False), str(memory), **quiet)  # 0.064 kimg: more than 2 epochs
    start_run(_config(folder, 0.064, streamed=True), str(straight), **quiet)
    start_run(_config(folder, 0.024, streamed=True), str(stopped), **quiet)
    resume_run(stopped, ["train.kimg=0.064"], **quiet)
    same = (memory / "generator.safetensors").read_bytes()
    assert (straight / "generator.safetensors").read_bytes() == same
    assert (stopped / "generator.safetensors").read_bytes() == same
