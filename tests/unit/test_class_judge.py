"""``class_acc``'s judge: a classifier of the real data sharper than the feature extractor's head, trained on warped
images, cached like the extractor and named in the metric's protocol; the extractor (and so FID's ids) untouched."""

from __future__ import annotations

import pytest
import torch

from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.metrics import METRICS
from ganforge.metrics.class_accuracy import JUDGE_RECIPE, build_judge
from ganforge.metrics.domain_extractor import (
    DomainRecipe,
    DomainSpec,
    build_domain_extractor,
    domain_key,
    random_affine,
)
from ganforge.metrics.features import sha256_json
from ganforge.metrics.protocol import EvalContext


@pytest.fixture(scope="module")
def digits():
    cfg = DataConfig(name="digits")  # scikit-learn's 8x8 digits: the judge trains in seconds
    return load_dataset(cfg, "train"), load_dataset(cfg, "test")


def test_the_extractor_keeps_its_key_so_recorded_protocol_ids_still_hold():
    train = load_dataset(DataConfig(name="mnist5k"), "train")
    spec = DomainSpec(in_channels=1, resolution=28, num_classes=10)
    key = domain_key(train.fingerprint(), spec, DomainRecipe())
    # the extractor every MNIST table in the README and docs/variants-measured.md names
    assert key[:12] == "db0506ffc412"
    old_fields = {k: v for k, v in DomainRecipe().__dict__.items() if k != "affine"}
    assert key == sha256_json({"format": "ganforge-domain-net/1", "data": train.fingerprint(),
                               "spec": spec.__dict__ | {"widths": list(spec.widths)}, "recipe": old_fields})
    assert domain_key(train.fingerprint(), spec, JUDGE_RECIPE) != key  # the judge is another network


def test_random_affine_is_small_seeded_and_leaves_the_global_generator_alone():
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = random_affine(x, torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.testing.assert_close(a, random_affine(x, torch.Generator().manual_seed(5)), rtol=0, atol=0)
    assert not torch.allclose(a, random_affine(x, torch.Generator().manual_seed(6)))
    assert a.shape == x.shape and 0 < (a - x).abs().mean() < 1.0
    flat = torch.full((4, 3, 28, 28), -0.5)  # the border repeats: a flat image stays flat, no black corners
    torch.testing.assert_close(random_affine(flat, torch.Generator().manual_seed(0)), flat)


def test_the_judge_reads_real_digits_better_than_the_extractor_head(digits):
    train, test = digits
    judge = build_judge(train, test, log=lambda _: None)
    extractor = build_domain_extractor(train, test, device="cpu")
    assert judge.test_accuracy >= 0.99 > extractor.info["test_accuracy"]
    assert len(judge.test_per_class) == 10 and min(judge.test_per_class) >= 0.95
    assert build_judge(train, test, log=lambda _: None).key == judge.key  # from the cache, same network


def _context(digits, shift: int) -> EvalContext:
    """class_acc on 'generated' digits that are real training digits of the asked class plus ``shift``."""
    train, test = digits
    by_class = [(train.y == k).nonzero()[:, 0] for k in range(10)]

    def sample(n: int, seed: int, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert labels is not None
        gen = torch.Generator().manual_seed(seed)
        pools = [by_class[(int(k) + shift) % 10] for k in labels]
        idx = torch.stack([pool[int(torch.randint(len(pool), (1,), generator=gen))] for pool in pools])
        return train.x[idx], labels

    return EvalContext(train, test, build_domain_extractor(train, test, device="cpu"), sample, conditional=True,
                       num_classes=10, n=500, seed=0, n_boot=0, log=lambda _: None)


def test_class_acc_counts_the_asked_class_and_records_its_judge(digits):
    spec = METRICS.get("class_acc")
    right, wrong = spec.run(_context(digits, 0)), spec.run(_context(digits, 1))
    assert right.value >= 0.98 and wrong.value <= 0.05
    judge = build_judge(*digits, log=lambda _: None)
    assert right.floor == pytest.approx(judge.test_accuracy)  # the judge on the real test split
    assert right.protocol["judge_hash"] == judge.key[:12] and right.protocol["extractor_hash"] != judge.key[:12]
    assert right.protocol_id == wrong.protocol_id  # same measurement, other generators
    assert set(right.details) >= {"per_class", "lowest_class", "lowest", "judge_lowest_on_real"}
    assert wrong.details["lowest"] <= 0.1
