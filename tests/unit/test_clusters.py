"""data.clusters: a conditional variant trained on k-means clusters of the training images instead of labels.

The clusters are a deterministic, label-free fit that recovers most of MNIST's classes; the exported generator
draws clusters at their training frequency; evaluate measures the run as an unconditional generator against the
data as it is (the same protocol ids as any run on that data); what cannot work is refused with the fix."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import numpy as np
import pytest
import torch

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.errors import ConfigError, DataError, RunDirError
from ganforge.generate import choose_labels, generate_dataset
from ganforge.metrics.evaluate import evaluate_run
from ganforge.presets import load_config
from ganforge.training.export import LoadedGenerator, by_label, load_generator
from ganforge.training.setup import prepare
from tests.unit.test_evaluate import make_untrained_run

LIMIT = ["data.limit=1000"]


def purity(clusters: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of images whose cluster's most common label is their own."""
    hits = sum(Counter(labels[clusters == c].tolist()).most_common(1)[0][1] for c in clusters.unique())
    return hits / len(labels)


def test_labels_become_clusters_fit_on_the_training_pixels():
    plain = DataConfig(limit=1000)
    train, test = load_dataset(plain, "train"), load_dataset(plain, "test")
    clustered = dataclasses.replace(plain, clusters=20)
    c_train, c_test = load_dataset(clustered, "train"), load_dataset(clustered, "test")
    assert torch.equal(c_train.x, train.x) and torch.equal(c_test.x, test.x)  # the pixels are untouched
    assert c_train.num_classes == 20 and c_train.class_names[3] == "cluster 3"
    assert set(c_train.y.unique().tolist()) == set(range(20)) and c_test.y.max() < 20
    prior = c_train.meta["cluster_prior"]
    assert np.allclose(prior, torch.bincount(c_train.y, minlength=20).double() / len(c_train.y))
    # Label-free, yet most images share a cluster with their class (random: about 0.2; 0.70 here, 0.85 on 4,000).
    assert purity(c_train.y, train.y) > 0.6 and purity(c_test.y, test.y) > 0.6
    again = load_dataset(clustered, "train")
    assert torch.equal(again.y, c_train.y)  # deterministic in data.seed
    other_seed = load_dataset(dataclasses.replace(clustered, seed=1), "train")
    assert not torch.equal(other_seed.y, c_train.y)


def test_refusals_name_the_fix():
    with pytest.raises(ConfigError, match="data.clusters must be 0"):
        load_config("mnist-cwgan-gp", ["data.clusters=1"])
    with pytest.raises(DataError, match="single-domain image data"):
        load_dataset(DataConfig(name="ring8", clusters=4), "train")
    with pytest.raises(DataError, match="Lower data.clusters"):
        load_dataset(DataConfig(limit=30, clusters=20), "train")
    cfg = load_config("mnist-wgan-gp", ["data.clusters=20", *LIMIT])  # unconditional: it would ignore them
    with pytest.raises(ConfigError, match="Pick a conditional variant"):
        prepare(cfg)


def make_cluster_run(run_dir, overrides: list[str]):
    """An untrained cluster-conditioned run, exported as the training loop exports it."""
    return make_untrained_run(run_dir, "mnist-cwgan-gp", ["data.clusters=20", "model.g_channels=16",
                                                          "model.d_channels=8", *LIMIT, *overrides])


def test_the_generator_draws_clusters_at_their_training_frequency(tmp_path):
    gen = load_generator(make_cluster_run(tmp_path / "run", []))
    assert gen.conditional and gen.num_classes == 20 and not by_label(gen)
    _, labels = gen.sample(4000, seed=0)
    freq = torch.bincount(labels, minlength=20).double() / len(labels)
    assert torch.allclose(freq, torch.tensor(gen.cluster_prior, dtype=torch.float64), atol=0.025)
    one = dataclasses.replace(gen, spec={**gen.spec, "cluster_prior": [0.0] * 7 + [1.0] + [0.0] * 12})
    assert set(one.sample(50, seed=0)[1].tolist()) == {7}  # the prior, not a uniform draw
    _, asked = gen.sample(8, seed=0, labels=torch.full((8,), 3))  # a cluster can still be asked for
    assert asked.tolist() == [3] * 8


def test_evaluate_measures_a_cluster_run_unconditionally_against_the_data_as_it_is(tmp_path, monkeypatch):
    run_dir = make_cluster_run(tmp_path / "run", [])
    asked: list = []
    sample = LoadedGenerator.sample

    def spy(self, *args, **kwargs):  # the labels the evaluator asks for: none, the generator draws its clusters
        asked.append(kwargs.get("labels"))
        return sample(self, *args, **kwargs)

    monkeypatch.setattr(LoadedGenerator, "sample", spy)
    result = evaluate_run(run_dir, n=200, metrics=["fid"], device="cpu", n_boot=0, log=lambda _: None)
    assert asked and all(labels is None for labels in asked)
    plain = load_dataset(DataConfig(limit=1000), "train")
    assert result["fid"].protocol["reference_fingerprint"] == plain.fingerprint()[:16]
    assert result["fid"].protocol["extractor_test_accuracy"] > 0.5  # the classifier of the digits, not clusters
    with pytest.raises(Exception, match="class_acc"):  # per-class metrics do not apply: clusters are not classes
        evaluate_run(run_dir, n=200, metrics=["class_acc"], device="cpu", n_boot=0, log=lambda _: None)


@pytest.mark.parametrize("prior", [[0.5, 0.5], [0.1] * 20, "uniform"])
def test_a_damaged_cluster_prior_is_named(tmp_path, prior):
    run_dir = make_cluster_run(tmp_path / "run", [])
    spec = json.loads((run_dir / "generator.json").read_text())
    (run_dir / "generator.json").write_text(json.dumps({**spec, "cluster_prior": prior}))
    with pytest.raises(RunDirError, match="'cluster_prior' is not one frequency per class"):
        load_generator(run_dir)


def test_generate_draws_clusters_at_their_frequency_unless_asked(tmp_path):
    run_dir = make_cluster_run(tmp_path / "run", [])
    gen = load_generator(run_dir)
    assert choose_labels(gen, 100, None, None) == (100, None)  # gen.sample draws them from the prior
    n, per = choose_labels(gen, None, None, 2)
    assert n == 40 and per.tolist() == [c for c in range(20) for _ in range(2)]  # --per-class still gives each
    generate_dataset(run_dir, n=60, out=tmp_path / "synth")
    manifest = json.loads((tmp_path / "synth" / "manifest.json").read_text())
    assert manifest["labels_assigned"].startswith("clusters at their training frequency")


def test_a_trained_cluster_run_exports_its_prior_and_resumes_on_the_same_clusters(tmp_path):
    """Through the training loop: the export carries the clusters' frequencies (the prior the data computed), the
    health check runs on clusters, and a resumed run finds the same clusters (the fit is deterministic)."""
    from ganforge.experiments.runner import resume_run, start_run

    cfg = load_config("mnist-wgan-gp-clusters", ["model.g_channels=16", "model.d_channels=8", "train.kimg=0.128",
                                                 "train.tick_kimg=0.064", "train.batch_size=32", "health.n=40",
                                                 "train.amp=off", "data.limit=200", "data.clusters=4"])
    quiet = {"progress": False, "log": lambda _: None}
    start_run(cfg, str(tmp_path / "run"), **quiet)
    gen = load_generator(tmp_path / "run")
    expected = load_dataset(cfg.data, "train").meta["cluster_prior"]
    assert gen.cluster_prior == pytest.approx(expected) and gen.num_classes == 4
    assert not by_label(gen)
    resume_run(tmp_path / "run", ["train.kimg=0.192"], **quiet)
    start_run(replace_kimg(cfg, 0.192), str(tmp_path / "straight"), **quiet)
    assert load_generator(tmp_path / "run").sha256 == load_generator(tmp_path / "straight").sha256


def replace_kimg(cfg, kimg: float):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, kimg=kimg))


@pytest.mark.parametrize(("classes", "per_class", "row"), [(10, 6, 6), (20, 3, 9), (50, 1, 10)])
def test_the_progress_grid_keeps_rows_readable_with_many_clusters(classes, per_class, row):
    """One row per class while each has 5 samples or more; with many clusters several share a row of 10 or so."""
    from ganforge.data import Dataset
    from ganforge.training.loop import build_training
    from ganforge.variants import VARIANTS

    cfg = load_config("mnist-cwgan-gp", ["model.g_channels=16", "model.d_channels=8", "train.batch_size=8"])
    data = Dataset("tiny", torch.rand(100, 1, 28, 28) * 2 - 1, torch.arange(100) % classes, num_classes=classes,
                   class_names=tuple(f"cluster {i}" for i in range(classes)))
    t = build_training(cfg, VARIANTS.get(cfg.variant), data, torch.device("cpu"), None)
    fake, nrow = t.objective.grid(t.nets["G"])
    assert len(fake) == classes * per_class and nrow == row
