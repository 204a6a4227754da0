"""The Domain Transfer Network (Taigman et al. 2017, "Unsupervised Cross-Domain Image Generation"), ICLR 2017.

G = g(f(x)) maps a source image (domain A, e.g. sklearn's 8x8 digits) to the target domain (B, MNIST) with f a
FIXED encoder. Here f is the conv trunk of a small classifier trained on the source domain's own labelled training
images before the GAN starts (``family.pretrain_steps`` Adam steps; the paper pretrains on SVHN's labels likewise),
then frozen: its last feature map (``family.feature_channels`` x 7 x 7 at 28 px; the paper uses a pooled 128-d
vector, which collapsed g here, see ``models/dtn.py``) is what G must keep. Only the decoder g and D train.
With s ~ A, t ~ B:

    L_D     = CE(D(G(s)), 0) + CE(D(G(t)), 1) + CE(D(t), 2)          3-way D: fake-from-source | fake-from-target | real
    L_GANG  = CE(D(G(s)), 2) + CE(D(G(t)), 2)                        G: both fakes must pass as real targets
    L_CONST = mean (f(s) - f(G(s)))^2                                 f-constancy (MSE over f's feature map)
    L_TID   = mean (t - G(t))^2                                       G is the identity on the target domain (MSE)
    L_TV    = total variation of G(s)
    L_CLS   = CE(h(f(G(s))), argmax h(f(s)))                          class constancy, h: f's pretraining class head
    L_G     = L_GANG + 15 L_CONST + 15 L_TID + 0 L_TV + 0 L_CLS       the paper's digit weights (alpha, beta, gamma)

L_CLS (``family.class_weight``, not in the paper) asks what the paper's pooled f-constancy asks, that G keep the
digit, without tying G(s) to the source's stroke layout as the feature-map constancy does.

f sees images in domain A's channels, so target images (and G's outputs, for f) are converted to them: gray
repeated to RGB, RGB to luma. The exported network is a ``Translator`` with AtoB = G (f inside it): ``ganforge
translate`` runs it and ``ganforge evaluate`` reports the target-domain classifier's label accuracy on translated
digits (the paper's measure) beside ``--baseline identity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import Config, ModelConfig
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.dtn import Decoder, DTNGenerator, Encoder, TernaryDiscriminator
from ganforge.models.translation import Translator
from ganforge.variants.base import Phase, register
from ganforge.variants.two_domain import PairBatch, TranslationObjective, TwoDomainFamily, image_part

FAKE_SOURCE, FAKE_TARGET, REAL_TARGET = 0, 1, 2  # D's three classes


@dataclass(frozen=True)
class DTNOptions:
    const_weight: float = 15.0  # alpha: f-constancy
    tid_weight: float = 15.0  # beta: the target-identity term
    tv_weight: float = 0.0  # gamma: total variation of G(s) (the paper: 0 for digits, 0.05 for faces)
    feature_channels: int = 32  # channels of f's feature map
    pretrain_steps: int = 600  # Adam steps (batch 64) that train f as a source-domain classifier before the GAN
    pretrain_augment: bool = False  # pretrain f on jittered digits (shift/rotate/scale, thin/thick strokes, noise)
    class_weight: float = 0.0  # class constancy: CE of f's class head on G(s) against its class of s (0: off)

    def __post_init__(self) -> None:
        for key in ("const_weight", "tid_weight", "tv_weight", "class_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"bad value: family.{key} must be >= 0. Fix it in the preset or with --set.")
        if not 1 <= self.feature_channels <= 1024 or not 0 <= self.pretrain_steps <= 1_000_000:
            raise ConfigError(
                "bad value: family.feature_channels must be in [1, 1024] and family.pretrain_steps in "
                "[0, 1000000]. Fix it in the preset or with --set."
            )


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, channels, H, W]: gray repeated to RGB, RGB to ITU-R BT.601 luma."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, both axes."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def augment_digits(x: torch.Tensor) -> torch.Tensor:
    """Jitter images x [N, C, H, W] in [-1, 1] (dark background) the way handwriting varies: a random affine map
    (rotation +-15 degrees, scale 0.85-1.15, shift +-10%), blurry strokes sharpened into thin or thick saturated ones
    (two images in three), and Gaussian pixel noise (sigma up to 0.3). Draws from torch's global generator.

    Why: f-constancy only asks that f(G(s)) match f(s). An f that has only seen the blurry upsampled source digits
    is matched by speckled, ragged strokes it was never shown; an f trained on sharp, thin, thick, shifted and
    noisy digits is not, so g has to draw clean strokes of the same digit."""
    n = len(x)
    angle = (torch.rand(n) * 2 - 1) * (15 * torch.pi / 180)
    scale = 0.85 + 0.3 * torch.rand(n)
    shift = (torch.rand(n, 2) * 2 - 1) * 0.2  # affine_grid's [-1, 1] coordinates: +-10% of the side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)  # [N, H, W, 2]
    x = F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # background stays -1
    # strokes: two images in three sharpened into saturated strokes, a soft threshold of the (max-normalized)
    # image at a random level: a low one draws thick strokes, a high one thin ones (MNIST's look)
    x01 = (x + 1) / 2  # [N, C, H, W] in [0, 1]
    peak = x01.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    level = (0.15 + 0.45 * torch.rand(n, 1, 1, 1)).to(x)
    sharp = torch.sigmoid(12 * (x01 / peak - level)) * 2 - 1
    x = torch.where((torch.rand(n, 1, 1, 1) < 2 / 3).to(x.device), sharp, x)
    noise = torch.randn(x.shape) * (0.3 * torch.rand(n, 1, 1, 1))
    return (x + noise.to(x)).clamp(-1, 1)


def pretrain_encoder(
    f: Encoder,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    steps: int,
    batch: int = 64,
    augment: bool = False,
) -> None:
    """Train f with a linear class head on the source images x [N, C, H, W] and labels y [N] (jittered by
    ``augment_digits`` when ``augment``), then freeze it.

    Draws from torch's global generator (called while the networks are built, after seeding: reproducible)."""
    with torch.no_grad():
        width = f(x[:1]).numel()  # the flattened feature map
    # a linear readout of the whole map: f's own head when it keeps one (class constancy), else thrown away after
    linear = f.head if f.head is not None else nn.Linear(width, num_classes)
    head = nn.Sequential(nn.Flatten(), linear)
    opt = torch.optim.Adam([*f.parameters(), *([] if f.head is not None else linear.parameters())], lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch, len(x)),))
        x_in = augment_digits(x[idx]) if augment else x[idx]
        loss = F.cross_entropy(head(f(x_in)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.cat([head(f(x[i : i + 512])).argmax(1) for i in range(0, len(x), 512)])
        f.source_accuracy.fill_((pred == y).float().mean())
    f.zero_grad(set_to_none=True)  # no stale gradient for an optimizer to apply later
    f.requires_grad_(False)


class DTNObjective(TranslationObjective):
    stat_labels = {"D_real": "D(x)", "D_fake": "D(G(x))"}

    def __init__(
        self, cfg: Config, options: DTNOptions, G: Translator, D: nn.Module, data: Dataset, real_x: torch.Tensor
    ) -> None:
        super().__init__(cfg, G, data, real_x)
        self.D, self.options = D, options
        self.f: Encoder = G.AtoB.f  # type: ignore[union-attr]
        self.c_src = self.real_a.shape[1]
        self.phases = [Phase("D", "D", shows_real=True), Phase("G", "G")]

    def draw(self, phase: Phase, idx: torch.Tensor) -> PairBatch:
        return self.draw_pair(idx, paired=False)  # s and t independent (digits-to-mnist has no pairs anyway)

    def accumulate_gradients(self, phase: Phase, batch: PairBatch) -> dict[str, torch.Tensor]:
        s, t = batch.real_a, batch.real_b  # [N, C_A, H, W] source, [N, C_B, H, W] target
        G, D, o = self.G.AtoB, self.D, self.options
        assert G is not None
        ce = F.cross_entropy
        label = lambda k, x: torch.full((len(x),), k, dtype=torch.long, device=x.device)  # noqa: E731
        if phase.name == "D":
            with torch.no_grad():
                fake_s, fake_t = G(s), G(to_channels(t, self.c_src))
            real_out = D(t)  # [N, 3]
            out_s, out_t = D(fake_s), D(fake_t)
            loss = (
                ce(out_s, label(FAKE_SOURCE, s))
                + ce(out_t, label(FAKE_TARGET, t))
                + ce(real_out, label(REAL_TARGET, t))
            )
            loss.backward()
            p_real, p_fake = real_out.detach().softmax(1)[:, REAL_TARGET], out_s.detach().softmax(1)[:, REAL_TARGET]
            acc = (
                torch.cat(
                    [out_s.argmax(1) == FAKE_SOURCE, out_t.argmax(1) == FAKE_TARGET, real_out.argmax(1) == REAL_TARGET]
                )
                .float()
                .mean()
            )
            # D(x), D(G(x)): D's probability that a real target / a translated source is a real target
            return {"loss_D": loss.detach(), "D_real": p_real.mean(), "D_fake": p_fake.mean(), "D_acc": acc.detach()}
        if phase.name == "G":
            fake_s = G(s)  # [N, C_B, H, W]
            fake_t = G(to_channels(t, self.c_src))
            gan = ce(D(fake_s), label(REAL_TARGET, s)) + ce(D(fake_t), label(REAL_TARGET, t))
            with torch.no_grad():
                feat_s = self.f(s)  # [N, feature_dim], a constant
            feat_fake = self.f(to_channels(fake_s, self.c_src))  # f frozen: gradients reach g through its input
            const = (feat_fake - feat_s).pow(2).mean()  # MSE
            tid = (fake_t - t).pow(2).mean()  # MSE
            loss = gan + o.const_weight * const + o.tid_weight * tid
            stats = {"adv_G": gan.detach(), "const": const.detach(), "tid": tid.detach()}
            if o.class_weight > 0:
                # class constancy: f's classifier must read G(s) as the digit it reads in s (-log p_f(k_s | G(s)))
                cls = ce(self.f.classify(feat_fake), self.f.classify(feat_s).argmax(1))
                loss = loss + o.class_weight * cls
                stats["cls"] = cls.detach()
            if o.tv_weight > 0:
                tv = total_variation(fake_s)
                loss = loss + o.tv_weight * tv
                stats["tv"] = tv.detach()
            loss.backward()
            return {"loss_G": loss.detach(), **stats}
        raise ValueError(f"DTN has no phase {phase.name!r}")


@register
class DTN(TwoDomainFamily):
    name = "dtn"
    help = (
        "domain transfer network A -> B: G = g(f(x)) with f a frozen source-domain classifier's features; "
        "3-way D, f-constancy x15, target identity x15, TV"
    )
    reference = "Taigman et al. 2017, Unsupervised Cross-Domain Image Generation"
    paired = False
    options = DTNOptions
    defaults = {"optim": {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5}}

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)
        if data.y is None or data.num_classes < 2:
            raise ConfigError(
                f"variant dtn pretrains its fixed encoder f as a classifier of domain A's labels, but dataset "
                f"{data.name!r} has none in domain A. Use labelled source data (digits-to-mnist, mnist-styles)."
            )

    def build_translator(
        self,
        model: ModelConfig,
        shape_a: tuple[int, ...],
        shape_b: tuple[int, ...],
        options: Any,
        num_classes: int = 0,
    ) -> Translator:
        """G = g(f(x)); f keeps its class head (``num_classes`` outputs) when ``family.class_weight`` reads it."""
        o = options or DTNOptions()
        head = num_classes if o.class_weight > 0 else 0
        f = Encoder(shape_a[0], shape_a[-1], feature_channels=o.feature_channels, num_classes=head)
        g = Decoder(o.feature_channels, shape_b[0], shape_b[-1], model.g_channels)
        return Translator(DTNGenerator(f, g))

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        o = self.settings(cfg)
        shape_a = image_part(data)
        G = self.build_translator(cfg.model, shape_a, data.shape_b, o, data.num_classes)
        assert data.y is not None
        f = G.AtoB.f  # type: ignore[union-attr]
        x_src = data.x[:, : data.image_channels]
        pretrain_encoder(f, x_src, data.y, data.num_classes, o.pretrain_steps, augment=o.pretrain_augment)
        D = TernaryDiscriminator(data.shape_b[0], data.shape_b[-1], cfg.model.d_channels)
        return {"G": G, "D": D}

    def objective(
        self,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> DTNObjective:
        return DTNObjective(cfg, self.settings(cfg), networks["G"], networks["D"], data, real_x)  # type: ignore[arg-type]
