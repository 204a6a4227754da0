"""The collapse check while training (health.every_ticks) and keep-best (health.keep_best).

The end-to-end tests train runs whose generator is known: one that draws a single image whatever z (collapsed
by construction) and one that replays real digits (as diverse as the data); the check must flag the first and
not the second. Keep-best must keep the generator of the best check and continue exactly across a resume.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.errors import ConfigError
from ganforge.experiments.runner import resume_run, start_run
from ganforge.metrics.health import DIVERSITY_WARN, collapse_warnings, diversity, measure, spread
from ganforge.models.archs import ARCHS
from ganforge.models.dcgan import build_dcgan
from ganforge.presets import load_config
from ganforge.training.export import load_generator

DIGITS = ["data.name=digits", "train.tick_kimg=0.25", "health.every_ticks=1", "health.n=200"]


def quiet(_: str) -> None:
    pass


# ---- the numbers, on features given by hand ------------------------------------------------------------------


def test_spread_is_the_mean_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert spread(x) == pytest.approx((5 + 0 + 5) / 3)
    assert spread(x[:1]) == 0.0


def test_one_output_per_class_has_no_diversity_and_is_flagged():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(400, 16, generator=gen)
    real_y = torch.arange(400) % 4
    gen_y = torch.arange(200) % 4
    collapsed = real[:4][gen_y]  # one (real) image per class, repeated
    h = measure(real, real_y, collapsed, gen_y)
    assert h.diversity == 0.0 and h.diversity_class in range(4)
    assert h.recall < 0.05 and h.precision == 1.0  # four real points: real-looking, covering almost nothing
    warnings = collapse_warnings(h, 0.0, 0)
    assert len(warnings) == 1 and "nearly alike" in warnings[0]


def test_alike_samples_off_the_data_are_not_yet_collapse():
    """An untrained G (or an early EMA copy) draws near-identical blobs far from the data: not flagged."""
    gen = torch.Generator().manual_seed(5)
    real = torch.randn(400, 16, generator=gen)
    blobs = 30 + 0.01 * torch.randn(200, 16, generator=gen)
    h = measure(real, None, blobs, None)
    assert h.diversity < DIVERSITY_WARN and h.precision == 0.0
    assert collapse_warnings(h, 0.0, 0) == []


def test_one_collapsed_class_is_found_among_healthy_ones():
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(800, 8, generator=gen)
    real_y = torch.arange(800) % 4
    fake = torch.randn(400, 8, generator=gen)
    fake_y = torch.arange(400) % 4
    fake[fake_y == 2] = fake[2].clone()  # class 2 draws one point
    div, worst = diversity(real, real_y, fake, fake_y)
    assert worst == 2 and div == 0.0
    assert collapse_warnings(measure(real, real_y, fake, fake_y), 0.0, 0, ("a", "b", "c", "d"))[0].startswith(
        "class c samples"
    )


def test_samples_of_the_real_distribution_are_healthy():
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(500, 8, generator=gen), torch.randn(500, 8, generator=gen)
    h = measure(real, None, fake, None)
    assert 0.9 < h.diversity < 1.1 and h.recall > 0.8 and h.class_acc is None
    assert collapse_warnings(h, h.recall, 1) == []


def test_a_recall_that_falls_far_below_the_runs_best_is_flagged():
    gen = torch.Generator().manual_seed(3)
    centres = torch.randn(10, 8, generator=gen) * 10  # ten separate modes
    real = centres[torch.arange(500) % 10] + torch.randn(500, 8, generator=gen)
    fake = centres[torch.arange(500) % 2] + torch.randn(500, 8, generator=gen)  # two modes, each well drawn
    h = measure(real, None, fake, None)
    assert h.recall < 0.3
    assert h.diversity > DIVERSITY_WARN
    assert collapse_warnings(h, peak_recall=0.9, peak_tick=3) == [f"recall fell to {h.recall:.2f} from 0.90 at tick 3"]
    assert collapse_warnings(h, peak_recall=0.1, peak_tick=3) == []  # never reached a recall worth losing


def test_a_recall_that_stays_low_past_half_the_run_is_flagged():
    """Partial collapse from the start (some modes drawn well, the others never): no peak to fall from, so only
    the real data's own recall and the run's progress tell it from a run that has not learned yet."""
    gen = torch.Generator().manual_seed(3)
    centres = torch.randn(10, 8, generator=gen) * 10
    real = centres[torch.arange(500) % 10] + torch.randn(500, 8, generator=gen)
    fake = centres[torch.arange(500) % 3] + torch.randn(500, 8, generator=gen)  # three of ten modes
    h = measure(real, None, fake, None)
    assert h.recall < 0.4 and h.diversity > DIVERSITY_WARN and h.precision > 0.9
    warned = collapse_warnings(h, peak_recall=h.recall, peak_tick=2, floor_recall=0.95, progress=0.5)
    assert warned == [f"recall {h.recall:.2f} is under half the real data's 0.95 past half the run: "
                      "G draws only part of the data (mode dropping)"]
    assert collapse_warnings(h, h.recall, 2, floor_recall=0.95, progress=0.45) == []  # still learning: no warning
    assert collapse_warnings(h, h.recall, 2, floor_recall=2 * h.recall - 0.01, progress=1.0) == []  # over half
    assert collapse_warnings(h, h.recall, 2, progress=1.0) == []  # no floor measured: no claim


def test_class_accuracy_counts_samples_classified_as_asked():
    gen = torch.Generator().manual_seed(4)
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [5.0, 0.0]]).repeat(2, 1)  # classes 0, 1, 0, 0
    real, fake = torch.randn(20, 2, generator=gen), torch.randn(8, 2, generator=gen)
    h = measure(real, None, fake, torch.tensor([0, 1, 1, 1]).repeat(2), logits)  # asked 0, 1, 1, 1
    assert h.class_acc == pytest.approx(0.5)


# ---- config --------------------------------------------------------------------------------------------------


def test_keep_best_needs_the_check_and_a_known_metric():
    with pytest.raises(ConfigError, match="health.keep_best needs the check"):
        load_config("mnist-cgan", ["health.keep_best=fid"])
    with pytest.raises(ConfigError, match="Choose one of: off, fid, recall, coverage, class_acc"):
        load_config("mnist-cgan", ["health.every_ticks=1", "health.keep_best=fidd"])
    with pytest.raises(ConfigError, match="health.n must be >= 20"):
        load_config("mnist-cgan", ["health.every_ticks=1", "health.n=5"])


def test_class_accuracy_cannot_rank_an_unconditional_run(tmp_path):
    cfg = load_config("mnist-dcgan", [*DIGITS, "train.kimg=0.5", "health.keep_best=class_acc"])
    with pytest.raises(ConfigError, match="class_acc needs a conditional variant"):
        start_run(cfg, str(tmp_path / "r"), progress=False, log=quiet)
    assert not (tmp_path / "r").exists()  # refused before anything was written


# ---- end to end: a collapsing run is caught, a healthy one is not ---------------------------------------------


class OneImage(nn.Module):
    """Draws one real digit per class whatever z (one digit in all when unconditional): collapsed by construction,
    each sample as real as the data."""

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        data = load_dataset(DataConfig(name="digits"), "train")
        self.z_dim = z_dim
        first = torch.stack([(data.y == k).nonzero()[0, 0] for k in range(10)])  # the first digit of each class
        self.register_buffer("images", data.x[first].clone())  # [10, 1, 8, 8]
        self.gain = nn.Parameter(torch.ones(()))  # something for the optimiser to step

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        c = torch.zeros(len(z), dtype=torch.long, device=z.device) if c is None else c
        return self.images[c] * self.gain.clamp(max=1.0) + 0 * z[:, :1, None, None]


class Replay(nn.Module):
    """Returns real training digits picked by z (of the asked class when given one): as diverse as the data."""

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        data = load_dataset(DataConfig(name="digits"), "train")
        self.z_dim = z_dim
        self.register_buffer("images", data.x.clone())
        self.register_buffer("labels", data.y.clone())
        self.gain = nn.Parameter(torch.ones(()))  # something for the optimiser to step

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        pick = (z[:, 0].abs() * 1e4).long()  # [N] a different training image for (almost) every latent
        if c is None:
            return self.images[pick % len(self.images)] * self.gain
        out = torch.empty(len(z), *self.images.shape[1:], device=z.device)
        for k in c.unique():
            pool = (self.labels == k).nonzero().flatten()
            rows = (c == k).nonzero().flatten()
            out[rows] = self.images[pool[pick[rows] % len(pool)]]
        return out * self.gain


class Degrading(Replay):
    """Replays real digits, then, after ``start`` training forwards, blends every sample ever further towards one
    fixed blob: a run that worked and then degrades (as one does whose D stopped learning and left G to drift).
    Deterministic: the health check's samples consume no randomness."""

    def __init__(self, z_dim: int, start: int) -> None:
        super().__init__(z_dim)
        self.start = start
        self.register_buffer("forwards", torch.zeros((), dtype=torch.long))
        self.register_buffer("blob", torch.rand(self.images.shape[1:], generator=torch.Generator().manual_seed(0)))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            self.forwards += 1
        a = min(max(int(self.forwards) - self.start, 0) / (20 * self.start), 0.5)  # about 0.05 more a tick
        return (1 - a) * super().forward(z, c) + a * self.blob


class SomeDigits(Replay):
    """Replays real digits of classes 0 and 1 only, whatever the asked class: each sample real and the samples
    varied, but most of the data never drawn (partial collapse from the start)."""

    def __init__(self, z_dim: int) -> None:
        super().__init__(z_dim)
        keep = self.labels < 2
        self.images, self.labels = self.images[keep].clone(), self.labels[keep].clone()

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(z, None)


DEGRADE_START = 8  # G's training forwards before Degrading starts to drift (DIGITS' ticks hold about 8)


@pytest.fixture
def test_archs():
    def collapsed(cfg, shape, num_classes, cond):
        return OneImage(cfg.z_dim), build_dcgan(cfg, shape, num_classes, cond)[1]

    def replay(cfg, shape, num_classes, cond):
        return Replay(cfg.z_dim), build_dcgan(cfg, shape, num_classes, cond)[1]

    def some(cfg, shape, num_classes, cond):
        return SomeDigits(cfg.z_dim), build_dcgan(cfg, shape, num_classes, cond)[1]

    def degrading(cfg, shape, num_classes, cond):
        return Degrading(cfg.z_dim, start=DEGRADE_START), build_dcgan(cfg, shape, num_classes, cond)[1]

    ARCHS.add("test-one-image", collapsed)
    ARCHS.add("test-replay", replay)
    ARCHS.add("test-some-digits", some)
    ARCHS.add("test-degrading", degrading)
    yield
    for name in ("test-one-image", "test-replay", "test-some-digits", "test-degrading"):
        ARCHS._entries.pop(name)


def health_records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("type") == "health"]


@pytest.mark.parametrize("preset", ["mnist-cgan", "mnist-dcgan"])
def test_a_collapsing_run_is_flagged_while_it_trains_and_a_healthy_one_is_not(tmp_path, test_archs, preset):
    from ganforge.reporting.html import write_report

    runs = {}
    for arch in ("test-one-image", "test-replay"):
        cfg = load_config(preset, [*DIGITS, "train.kimg=0.5", f"model.arch={arch}"])
        runs[arch] = start_run(cfg, str(tmp_path / arch), progress=False, log=quiet).run_dir
    bad, good = health_records(runs["test-one-image"]), health_records(runs["test-replay"])
    assert len(bad) == len(good) == 2  # one per tick
    assert all(r["collapse"] and "nearly alike" in r["warnings"][0] for r in bad)
    assert all(r["diversity"] < DIVERSITY_WARN and r["recall"] < 0.05 for r in bad)
    assert not any(r["collapse"] for r in good)
    assert all(r["diversity"] > 0.8 and r["recall"] > 0.5 for r in good)
    assert all(r["recall_floor"] > 0.5 and r["diversity_floor"] > 0.5 for r in good)
    if preset == "mnist-cgan":
        # One real digit per class is the asked class every time: class accuracy cannot see this collapse (the
        # AC-GAN failure), diversity and recall do.
        assert all(r["class_acc"] > 0.9 for r in good) and all(r["class_acc"] > 0.9 for r in bad)
    log = (runs["test-one-image"] / "log.txt").read_text()
    assert "WARNING collapse at tick 1" in log and "WARNING" not in (runs["test-replay"] / "log.txt").read_text()
    report = write_report(runs["test-one-image"]).read_text()
    assert "collapse suspected at 2 of 2 checks, the last one included" in report


def test_a_run_that_draws_part_of_the_data_is_flagged_once_past_half_of_it(tmp_path, test_archs):
    cfg = load_config("mnist-dcgan", [*DIGITS, "train.kimg=1", "model.arch=test-some-digits"])
    run = start_run(cfg, str(tmp_path / "some"), progress=False, log=quiet).run_dir
    records = health_records(run)
    assert [r["kimg"] >= 0.5 for r in records] == [False, True, True, True]  # ticks of ~0.25 kimg
    assert all(r["diversity"] > DIVERSITY_WARN and r["precision"] > 0.5 for r in records)  # not alike, real
    assert all(r["recall"] < 0.5 * r["recall_floor"] for r in records)
    assert [r["collapse"] for r in records] == [False, True, True, True]  # from half the run on
    assert all("mode dropping" in r["warnings"][0] for r in records[1:])
    assert "WARNING collapse at tick 2" in (run / "log.txt").read_text()


def test_a_run_that_worked_and_then_degrades_is_flagged(tmp_path, test_archs):
    cfg = load_config("mnist-dcgan", [*DIGITS, "train.kimg=1.25", "model.arch=test-degrading"])
    run = start_run(cfg, str(tmp_path / "degrading"), progress=False, log=quiet).run_dir
    records = health_records(run)
    fids = [r["fid"] for r in records]
    assert len(records) == 5 and fids[0] < 5 * records[0]["fid_floor"]  # it worked: near the real data's own FID
    assert fids[-1] > 1.8 * min(fids)  # and then degraded
    flagged = [r["collapse"] for r in records]
    assert flagged[0] is False and flagged[-1] is True
    for r in records:  # flagged exactly when FID is over 1.8x the best before it
        best = min(fids[: r["tick"] - 1], default=math.inf)
        assert r["collapse"] == (r["fid"] > 1.8 * best)
        if r["collapse"]:
            assert any(w.startswith(f"FID rose to {r['fid']:.3g}") and "degrading" in w for w in r["warnings"])
    # it is caught before the samples lose recall or diversity: some check warns of FID alone
    assert any(len(r["warnings"]) == 1 and r["warnings"][0].startswith("FID rose") for r in records)
    assert "the run is degrading" in (run / "log.txt").read_text()


def test_a_fid_rise_is_flagged_only_once_the_run_had_come_near_the_data():
    gen = torch.Generator().manual_seed(6)
    real, fake = torch.randn(500, 8, generator=gen), torch.randn(500, 8, generator=gen) + 1.0
    h = measure(real, None, fake, None)  # FID about 8 (a shift of 1 in each of 8 coordinates)
    assert collapse_warnings(h, h.recall, 1, best_fid=h.fid / 2, best_fid_tick=4, floor_fid=1.0) == [
        f"FID rose to {h.fid:.3g}, 2.0x its best {h.fid / 2:.3g} at tick 4: the run is degrading "
        "(health.keep_best=fid keeps the best generator)"
    ]
    assert collapse_warnings(h, h.recall, 1, best_fid=h.fid / 1.5, floor_fid=1.0) == []  # a check's own swing
    assert collapse_warnings(h, h.recall, 1, best_fid=h.fid / 2, floor_fid=h.fid / 20) == []  # never near the data
    assert collapse_warnings(h, h.recall, 1, best_fid=h.fid / 2) == []  # no floor measured: no claim


# ---- keep-best -----------------------------------------------------------------------------------------------


def test_keep_best_keeps_the_best_checks_generator_and_resumes_exactly(tmp_path):
    over = [*DIGITS, "health.keep_best=fid", "train.snapshot_ticks=1"]
    straight = start_run(
        load_config("mnist-cgan", [*over, "train.kimg=1.5"]), str(tmp_path / "straight"), progress=False, log=quiet
    ).run_dir
    stopped = start_run(
        load_config("mnist-cgan", [*over, "train.kimg=0.75"]), str(tmp_path / "stopped"), progress=False, log=quiet
    ).run_dir
    resume_run(stopped, ["train.kimg=1.5"], progress=False, log=quiet)

    checks = health_records(straight)
    assert len(checks) == 6 and all(r.pop("seconds") >= 0 for r in checks)
    again = health_records(stopped)
    assert [r.pop("seconds") >= 0 for r in again]
    # The warnings read the run's planned length ("past half the run"), which the resume changed (0.75 -> 1.5
    # kimg): the numbers must match, the judgements may not.
    for r in checks + again:
        r.pop("collapse"), r.pop("warnings")
    assert checks == again  # same checks, same numbers, none repeated
    best = min(checks, key=lambda r: r["fid"])
    assert [r["tick"] for r in checks if r["best"]][-1] == best["tick"]
    kept = load_generator(straight / "best")
    assert kept.spec["kimg"] == pytest.approx(best["kimg"])
    for name in ("generator.safetensors", "generator.json"):
        assert (straight / "best" / name).read_bytes() == (stopped / "best" / name).read_bytes()
    assert (straight / "generator.safetensors").read_bytes() == (stopped / "generator.safetensors").read_bytes()
    summary = json.loads((straight / "summary.json").read_text())["health"]
    assert summary["best_tick"] == best["tick"] and math.isclose(summary["best_value"], best["fid"])
    if best["tick"] != checks[-1]["tick"]:  # the kept generator is not simply the last one
        assert (straight / "best" / "generator.safetensors").read_bytes() != (
            straight / "generator.safetensors"
        ).read_bytes()


def test_health_checks_do_not_change_training(tmp_path):
    base = ["data.name=digits", "train.tick_kimg=0.25", "train.kimg=0.5"]
    plain = start_run(load_config("mnist-cgan", base), str(tmp_path / "plain"), progress=False, log=quiet).run_dir
    checked = start_run(
        load_config("mnist-cgan", [*base, "health.every_ticks=1", "health.keep_best=recall"]),
        str(tmp_path / "checked"),
        progress=False,
        log=quiet,
    ).run_dir
    assert (plain / "generator.safetensors").read_bytes() == (checked / "generator.safetensors").read_bytes()
