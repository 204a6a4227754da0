"""DiffAugment: differentiable, and the same augmentation for real and generated images.
Classic augmentation: keeps shape and range."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.config import AugmentConfig
from ganforge.errors import ConfigError
from ganforge.models.layers import DOut
from ganforge.objectives.augment import POLICIES, classic_augment, diff_augment, parse_policy
from ganforge.presets import load_config
from tests.conftest import stub_objective


@pytest.mark.parametrize("policy", [(p,) for p in POLICIES] + [POLICIES])
def test_diffaugment_keeps_shape_and_passes_gradients_to_g(policy):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
    x = G(torch.randn(16, 4))
    out = diff_augment(x, policy)
    assert out.shape == x.shape
    out.square().sum().backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_translation_moves_whole_pixels_within_an_eighth_of_the_size():
    torch.manual_seed(0)
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(64, 1, 4, 4) + 1  # distinct nonzero values 1..16 per pixel
    x = x.repeat(1, 1, 4, 4)[:, :, :16, :16]  # 16x16 -> max shift round(16 / 8) = 2 px
    out = diff_augment(x, ("translation",))
    values = set(out.unique().tolist())
    assert values <= set(x.unique().tolist()) | {0.0}  # nearest sampling: no interpolated values
    zero_cols = (out[:, 0] == 0).all(1).sum(1)  # columns shifted in from outside
    zero_rows = (out[:, 0] == 0).all(2).sum(1)
    assert zero_cols.max() <= 2 and zero_rows.max() <= 2 and (zero_cols + zero_rows).max() > 0


def test_cutout_zeroes_at_most_a_quarter_of_each_image():
    torch.manual_seed(0)
    x = torch.ones(256, 1, 16, 16)
    out = diff_augment(x, ("cutout",))
    frac = (out == 0).float().mean((1, 2, 3))
    assert frac.max().item() == pytest.approx(0.25)  # an 8x8 square fully inside: exactly 64 of 256 pixels
    assert frac.min() > 0  # some part of the square always lands in the image


def test_color_leaves_mask_channels_alone_while_geometry_moves_them_with_the_image():
    torch.manual_seed(0)
    img = torch.rand(32, 1, 16, 16) * 2 - 1
    mask = torch.where(torch.rand(32, 1, 16, 16) > 0.5, 1.0, -1.0)
    x = torch.cat([img, mask], 1)
    out = diff_augment(x, ("color",), mask_channels=1)
    assert torch.equal(out[:, 1], mask[:, 0]) and not torch.allclose(out[:, 0], img[:, 0])
    assert not torch.equal(diff_augment(x, ("color",))[:, 1], mask[:, 0])  # without the flag the mask is recoloured
    torch.manual_seed(1)
    moved = diff_augment(x, ("translation",), mask_channels=1)
    torch.manual_seed(1)
    assert torch.equal(moved[:, 1:], diff_augment(mask, ("translation",)))  # the same shift as its image


class Recorder(nn.Module):
    """D that remembers what it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, x, c=None):
        self.seen.append(x.detach().clone())
        return DOut(x.flatten(1).sum(1) * self.p, None, x.flatten(1))


class ZeroG(nn.Module):
    z_dim = 2

    def __init__(self, shape) -> None:
        super().__init__()
        self.shape = shape
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, z, c=None):
        return torch.zeros(len(z), *self.shape) + self.b


def seen_by_d(policy: str, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(what D saw of the real batch, what it saw of the generated batch) in one D step."""
    cfg = load_config(None, ["train.kimg=1"] + ([f"augment.diffaugment={policy}"] if policy else []))
    D = Recorder()
    obj = stub_objective("gan", ZeroG(real.shape[1:]), D, cfg, 0, tuple(real.shape[1:]))
    D.seen.clear()  # the family's shape check ran D once
    obj.step("D", real, None, torch.zeros(len(real), 2), None)
    assert len(D.seen) == 2
    return D.seen[0], D.seen[1]


def test_real_and_generated_batches_get_the_same_augmentation_distribution():
    torch.manual_seed(0)
    n = 4096
    real_seen, gen_seen = seen_by_d("color", torch.zeros(n, 1, 4, 4))
    # A constant image keeps one value under colour jitter: its brightness shift, U(-0.5, 0.5).
    real_shift, gen_shift = real_seen[:, 0, 0, 0], gen_seen[:, 0, 0, 0]
    for shift in (real_shift, gen_shift):
        assert shift.mean().abs() < 0.02 and shift.std().item() == pytest.approx(12**-0.5, abs=0.01)
    assert (real_shift.mean() - gen_shift.mean()).abs() < 0.02
    assert (real_shift.std() - gen_shift.std()).abs() < 0.01
    assert not torch.equal(real_shift, gen_shift)  # independent draws, not one shared draw


class OnesG(ZeroG):
    def forward(self, z, c=None):
        return torch.ones(len(z), *self.shape) + self.b


def test_real_and_generated_both_get_translation_and_cutout():
    torch.manual_seed(0)
    n = 2048
    cfg = load_config(None, ["train.kimg=1", "augment.diffaugment=translation,cutout"])
    D = Recorder()
    obj = stub_objective("gan", OnesG((1, 16, 16)), D, cfg, 0, (1, 16, 16))
    D.seen.clear()  # the family's shape check ran D once
    obj.step("D", torch.ones(n, 1, 16, 16), None, torch.zeros(n, 2), None)
    # Both batches are all ones: the share of pixels kept is the statistic of the two augmentations.
    real_kept, gen_kept = (seen.mean((1, 2, 3)) for seen in D.seen)
    assert real_kept.mean().item() == pytest.approx(gen_kept.mean().item(), abs=0.01)
    assert real_kept.std().item() == pytest.approx(gen_kept.std().item(), abs=0.01)
    assert real_kept.mean() < 0.8  # something was cut


def test_no_policy_means_d_sees_the_images_untouched():
    real = torch.randn(8, 1, 4, 4)
    real_seen, gen_seen = seen_by_d("", real)
    assert torch.equal(real_seen, real) and torch.equal(gen_seen, torch.zeros_like(real))


def test_unknown_policy_is_refused():
    with pytest.raises(ConfigError, match="colour"):
        parse_policy("colour")
    assert parse_policy(" color, cutout ") == ("color", "cutout")


def test_classic_augment_keeps_shape_and_range():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 28, 28) * 2 - 1
    out = classic_augment(x, AugmentConfig(rotation=15, shift=0.1, zoom=0.1))
    assert out.shape == x.shape
    assert out.min() >= -1 and out.max() <= 1
    assert not torch.allclose(out, x)


def test_classic_augment_with_nothing_enabled_is_the_identity():
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert torch.allclose(classic_augment(x, AugmentConfig()), x, atol=1e-5)


def test_classic_augment_rotation_keeps_a_centred_blobs_mass():
    # Rotation only: the image's mean stays put (border padding of a constant border) for a centred blob.
    x = -torch.ones(16, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1
    out = classic_augment(x, AugmentConfig(rotation=30))
    assert out.mean().item() == pytest.approx(x.mean().item(), abs=0.02)


def batch_spread(x: torch.Tensor) -> float:
    """The minibatch-std statistic: mean over pixels of the std over the batch."""
    return (x.var(0, unbiased=False) + 1e-8).sqrt().mean().item()


@pytest.mark.parametrize("policy", [(p,) for p in POLICIES] + [POLICIES, ("translation", "cutout")])
def test_batch_draws_keep_a_collapsed_batch_collapsed(policy):
    # Issue 11: with one draw per image, translation + cutout gave 16 copies of one image almost the pixel spread
    # of a varied batch, so the minibatch-std channel (or batch norm) in D no longer saw a collapsed G.
    torch.manual_seed(0)
    one = (torch.rand(1, 1, 16, 16) > 0.7).float() * 2 - 1  # a sparse "digit" on a -1 background
    collapsed, varied = one.expand(16, 1, 16, 16), (torch.rand(16, 1, 16, 16) > 0.7).float() * 2 - 1
    shared = diff_augment(collapsed.clone(), policy, per_batch=True)
    assert torch.equal(shared, shared[:1].expand_as(shared)) and batch_spread(shared) < 1e-3
    assert batch_spread(diff_augment(varied, policy, per_batch=True)) > 0.3
    assert batch_spread(diff_augment(collapsed.clone(), policy)) > 0.1  # per-image draws: "varied"


@pytest.mark.parametrize("name", POLICIES)
def test_batch_draws_give_each_image_the_same_distribution_as_image_draws(name):
    torch.manual_seed(0)
    x = torch.ones(4096, 1, 16, 16)
    per_image = diff_augment(x, (name,)).mean((1, 2, 3))  # one value per image: its kept mass / brightness
    per_batch = torch.cat([diff_augment(x[:4], (name,), per_batch=True).mean((1, 2, 3)) for _ in range(1024)])
    assert per_batch.mean().item() == pytest.approx(per_image.mean().item(), abs=0.02)
    assert per_batch.std().item() == pytest.approx(per_image.std().item(), rel=0.1, abs=0.01)


class BatchNormRecorder(Recorder):
    """A Recorder that, like mnist-cgan's D, has a batch norm (unused here: only its presence matters)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1)


@pytest.mark.parametrize(
    ("draw", "d_class", "shared"),
    [
        ("batch", Recorder, True),
        ("image", BatchNormRecorder, False),
        ("auto", BatchNormRecorder, True),
        ("auto", Recorder, False),
    ],
)
def test_diffaugment_draw_reaches_d_and_auto_shares_draws_for_a_d_with_batch_statistics(draw, d_class, shared):
    torch.manual_seed(0)
    real = torch.ones(64, 1, 16, 16)
    over = ["train.kimg=1", "augment.diffaugment=translation,cutout", f"augment.diffaugment_draw={draw}"]
    D = d_class()
    obj = stub_objective("gan", OnesG((1, 16, 16)), D, load_config(None, over), 0, (1, 16, 16))
    D.seen.clear()
    obj.step("D", real, None, torch.zeros(64, 2), None)
    for seen in D.seen:  # the real batch and the (collapsed: all ones) generated batch
        assert torch.equal(seen, seen[:1].expand_as(seen)) == shared
    assert not torch.equal(D.seen[0], D.seen[1])  # real and generated always get independent draws


@pytest.mark.parametrize("fill", [-1.0, 0.0, 0.5])
def test_translation_and_cutout_fill_with_the_chosen_value_and_keep_the_rest(fill):
    torch.manual_seed(0)
    x = torch.full((256, 1, 16, 16), 0.25)  # a value no fill here takes
    moved, cut = diff_augment(x, ("translation",), fill=fill), diff_augment(x, ("cutout",), fill=fill)
    assert set(moved.unique().tolist()) == {0.25, fill}  # shifted in: exactly the fill, nothing interpolated
    assert set(cut.unique().tolist()) == {0.25, fill}
    assert (cut == fill).float().mean((1, 2, 3)).max().item() == pytest.approx(0.25)  # the same 8x8 square
    black = torch.full((8, 1, 16, 16), -1.0)  # a digit's empty background stays empty under a black fill
    assert torch.equal(diff_augment(black, ("translation", "cutout"), fill=-1.0), black)


def test_diffaugment_fill_reaches_d_and_is_checked():
    torch.manual_seed(0)
    over = ["train.kimg=1", "augment.diffaugment=cutout", "augment.diffaugment_fill=-1"]
    D = Recorder()
    obj = stub_objective("gan", OnesG((1, 16, 16)), D, load_config(None, over), 0, (1, 16, 16))
    D.seen.clear()
    obj.step("D", torch.ones(64, 1, 16, 16), None, torch.zeros(64, 2), None)
    assert all(set(seen.unique().tolist()) == {-1.0, 1.0} for seen in D.seen)
    with pytest.raises(ConfigError, match="diffaugment_fill must be in"):
        load_config(None, ["augment.diffaugment_fill=2"])


@pytest.mark.parametrize("per_batch", [False, True])
def test_diffaugment_p_applies_each_op_to_a_share_p_of_the_draws(per_batch):
    torch.manual_seed(0)
    x = torch.ones(512, 1, 16, 16)  # cutout always paints part of an all-ones image: changed <=> applied
    assert torch.equal(diff_augment(x, ("cutout",), p=torch.tensor(0.0)), x)
    assert (diff_augment(x, ("cutout",), p=torch.tensor(1.0)) != x).any(1).any(1).any(1).all()
    changed = torch.stack([(diff_augment(x, ("cutout",), per_batch=per_batch, p=torch.tensor(0.3)) != x)
                           .flatten(1).any(1) for _ in range(8)])  # [8 batches, 512 images]
    assert changed.float().mean().item() == pytest.approx(0.3, abs=0.06 if per_batch else 0.02)
    if per_batch:  # one draw for the whole batch: all of it or none of it
        assert all(row.all() or not row.any() for row in changed)


def test_diffaugment_p_draws_the_same_random_numbers_whatever_p():
    x = torch.rand(32, 1, 16, 16)
    states = []
    for p in (0.0, 0.5, 1.0):
        torch.manual_seed(0)
        diff_augment(x, ("color", "translation", "cutout"), p=torch.tensor(p))
        states.append(torch.rand(1))
    assert states[0] == states[1] == states[2]


def test_diffaugment_p_reaches_d():
    torch.manual_seed(0)
    over = ["train.kimg=1", "augment.diffaugment=translation,cutout", "augment.diffaugment_p=0"]
    D = Recorder()
    obj = stub_objective("gan", OnesG((1, 16, 16)), D, load_config(None, over), 0, (1, 16, 16))
    D.seen.clear()
    real = torch.rand(64, 1, 16, 16)
    obj.step("D", real, None, torch.zeros(64, 2), None)
    assert torch.equal(D.seen[0], real) and torch.equal(D.seen[1], torch.ones(64, 1, 16, 16))  # p = 0: untouched


def _adaptive_objective(over):
    from ganforge.data.base import Dataset
    from ganforge.variants import VARIANTS

    cfg = load_config(None, ["train.kimg=1", "train.batch_size=16", *over])
    data = Dataset("stub", torch.zeros(2, 1, 16, 16), None, num_classes=0, kind="image")
    family = VARIANTS.get("gan")
    family.check(cfg, data)
    nets = {"G": OnesG((1, 16, 16)), "D": ConfidentD()}
    nets.update({k: v for k, v in family.build_networks(cfg, data).items() if k not in ("G", "D")})
    return nets, family.objective(cfg, nets, data, data.x, None)


class ConfidentD(Recorder):
    """D that calls every image real (logit 1): the overfitting that ADA's r_t measures."""

    def forward(self, x, c=None):
        self.seen.append(x.detach().clone())
        return DOut(torch.ones(len(x)) + 0 * self.p, None, x.flatten(1))


def test_diffaugment_target_adapts_p_from_zero_and_keeps_it_in_a_checkpointed_network():
    from ganforge.variants.base import Phase
    from ganforge.variants.gan import Batch

    over = ["augment.diffaugment=cutout", "augment.diffaugment_target=0.6", "augment.diffaugment_kimg=1"]
    nets, obj = _adaptive_objective(over)
    state = nets["diffaugment"]
    assert sum(p.numel() for p in state.parameters()) == 0 and set(state.state_dict()) >= {"p", "r_t", "steps"}
    real = torch.ones(16, 1, 16, 16)
    batch = Batch(real, None, torch.zeros(16, 2), None)
    stats = [obj.accumulate_gradients(Phase("D", "D", shows_real=True), batch) for _ in range(8)]
    # r_t = 1 > 0.6 at every update (each 4 D steps): p rises by 4 x 16 images / 1 kimg twice
    assert [round(s["ada_p"].item(), 4) for s in stats] == [0, 0, 0, 0.064, 0.064, 0.064, 0.064, 0.128]
    assert stats[-1]["ada_rt"].item() == 1.0
    assert torch.equal(nets["D"].seen[0], real)  # the first step ran at p = 0: D saw the batch untouched


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (["augment.diffaugment_p=0.5"], "augment.diffaugment is empty"),
        (["augment.diffaugment_target=0.6"], "augment.diffaugment is empty"),
        (["augment.diffaugment=cutout", "augment.diffaugment_target=0.6", "augment.diffaugment_p=0.5"], "not both"),
        (["augment.diffaugment=cutout", "augment.diffaugment_target=0.6", "objective.loss=wasserstein"],
         "Wasserstein critic"),
    ],
)
def test_inconsistent_diffaugment_probability_settings_are_refused(over, message):
    with pytest.raises(ConfigError, match=message):
        _adaptive_objective(over)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("augment.diffaugment_p=1.5", "diffaugment_p must be in"),
        ("augment.diffaugment_target=1", "diffaugment_target must be in"),
        ("augment.diffaugment_kimg=0", "diffaugment_kimg must be > 0"),
    ],
)
def test_diffaugment_probability_values_are_checked(setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [setting])
