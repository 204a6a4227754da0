"""The GAN family (Goodfellow et al. 2014): one generator G and one discriminator D, trained in turns.

This module owns the family's whole behaviour; the other variants in this package subclass it and change one
piece (how labels enter, a loss term, the defaults):

- networks: G and D from the architecture registry (``model.arch``: mlp, dcgan, ...), labels entering through
  the variant's ``Conditioning`` pieces; G's EMA when ``train.ema_kimg`` > 0;
- phases: ``D`` (``objective.n_critic`` steps, each showing a real batch), ``Dreg`` (lazy R1 every
  ``objective.r1_interval`` iterations, Mescheder et al. 2018), ``G``;
- losses: the adversarial loss ``objective.loss`` on real and generated logits, plus the terms a config turns
  on: WGAN-GP's gradient penalty, R1, feature matching (Salimans et al. 2016), one-sided label smoothing, and
  for a D given the label the matching-aware term (``objective.mismatch_weight``, after Reed et al. 2016's
  GAN-CLS): D ranks each real image under its own label above the same image under a wrong one.
  DiffAugment (``augment.diffaugment``) sits in front of D for real and generated images alike. Top-k training
  (``objective.topk``, Sinha et al. 2020) keeps, in G's adversarial loss, only the fakes D scores highest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ganforge.config import Config, ModelConfig
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models import build_models
from ganforge.models.layers import DOut, MinibatchStd, PackedDiscriminator
from ganforge.objectives.ada import AdaptiveProbability
from ganforge.objectives.adversarial import LOSSES
from ganforge.objectives.augment import classic_augment, diff_augment, parse_policy, uses_classic
from ganforge.objectives.regularizers import gradient_penalty, r1_penalty
from ganforge.variants.base import Family, Objective, Phase, register

Term = tuple[str | None, torch.Tensor, float]  # (statistic name or None, loss term, weight)


@dataclass
class Batch:
    real_img: torch.Tensor  # [N, C, H, W] or [N, D]
    real_c: torch.Tensor | None  # [N] labels of the real examples
    gen_z: torch.Tensor  # [N, z_dim]
    gen_c: torch.Tensor | None  # [N] labels asked of G


class GANObjective(Objective):
    """The losses of one G/D pair. Subclasses add terms through ``d_terms`` / ``g_terms`` or replace the
    adversarial loss through ``d_adversarial`` / ``g_adversarial``."""

    stat_labels = {"D_real": "D(x)", "D_fake": "D(G(z))", "loss_aux": "aux", "ada_p": "p", "ada_rt": "r_t",
                   "mismatch": "mismatch",
                   "topk": "top-k", "loss_info": "info"}

    def __init__(self, family: GAN, cfg: Config, G: nn.Module, D: nn.Module, data: Dataset,
                 real_x: torch.Tensor, real_y: torch.Tensor | None) -> None:
        self.G, self.D, self.cond, self.cfg, self.ocfg = G, D, family.conditioning, cfg, cfg.objective
        self.real_x, self.real_y, self.device = real_x, real_y, real_x.device
        self.batch = cfg.train.batch_size
        self.mask_channels = data.mask_channels  # paired data's trailing mask channels: DiffAugment keeps their colour
        self.loss = LOSSES.get(cfg.objective.loss)
        self.policy = parse_policy(cfg.augment.diffaugment)
        self.fill = cfg.augment.diffaugment_fill
        self.per_batch = cfg.augment.diffaugment_draw == "batch" or (
            cfg.augment.diffaugment_draw == "auto" and uses_batch_statistics(D)
        )
        self.classic = uses_classic(cfg.augment)
        # DiffAugment's probability: None (always on), a fixed p, or ADA's adaptive p (family.build_networks)
        self.adaptive: AdaptiveProbability | None = None
        a = cfg.augment
        self.augment_p = torch.tensor(a.diffaugment_p, device=self.device) if a.diffaugment_p < 1 else None
        self.reuse = self.ocfg.reuse_fakes
        self.num_classes = data.num_classes  # the matching-aware term draws wrong labels among these
        # top-k training: the fraction of fakes G's adversarial loss counts (set_progress moves it)
        self.topk_fraction, self.epoch_images = 1.0, max(len(data), 1)
        self.topk_stat = torch.ones([], device=self.device)  # the same, logged: filled in place, no copy per G step
        self.kept: tuple[torch.Tensor, Batch] | None = None  # reuse_fakes: the last D step's fakes, with G's graph
        self.phases = [Phase("D", "D", repeats=self.ocfg.n_critic, shows_real=True,
                             keeps_graph=("G",) if self.reuse else ())]
        if self.ocfg.r1_gamma > 0:
            self.phases.append(Phase("Dreg", "D", interval=self.ocfg.r1_interval))
        self.phases.append(Phase("G", "G"))
        self._make_grid_inputs(data)

    # ---- what a step needs ----------------------------------------------------------------------------------

    def draw(self, phase: Phase, idx: torch.Tensor) -> Batch:
        real_img = self.real_x[idx]  # [N, C, H, W] or [N, D]
        real_c = self.real_y[idx] if self.real_y is not None else None
        if phase.name == "D" and self.classic:
            real_img = classic_augment(real_img, self.cfg.augment)
        gen_z = torch.randn(self.batch, self.G.z_dim, device=self.device)
        gen_c = real_c  # D: generated labels follow the real batch's labels
        if phase.name == "G" and self.real_y is not None:  # G: labels from the data's label distribution
            gen_c = self.real_y[torch.randint(0, len(self.real_y), (self.batch,), device=self.device)]
        return Batch(real_img, real_c, gen_z, gen_c)

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> DOut:
        if self.policy:
            p = self.adaptive.p if self.adaptive is not None else self.augment_p
            img = diff_augment(img, self.policy, self.mask_channels, self.per_batch, self.fill, p)  # real and fake
        return self.D(img, c if self.cond.d.conditional else None)

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.G(z, c if self.cond.g.conditional else None)

    def set_progress(self, images_seen: int) -> None:
        o = self.ocfg
        if o.topk < 1:  # Sinha et al. 2020: k = max(decay ** epoch, floor) x batch
            self.topk_fraction = max(o.topk_decay ** (images_seen / self.epoch_images), o.topk)
            self.topk_stat.fill_(self.topk_fraction)

    def top_k(self, gen_out: DOut) -> DOut:
        """The fakes G's adversarial loss counts: the top ``topk_fraction`` of the batch by D's score (top-k
        training; every fake when it is 1). The other terms (AC-GAN's classifier, ...) still see every fake."""
        n = len(gen_out.logits)
        k = max(1, round(self.topk_fraction * n))
        if k >= n:
            return gen_out
        keep = gen_out.logits.detach().topk(k).indices  # D's score orders the fakes; the choice is no gradient
        return gen_out._replace(logits=gen_out.logits[keep])

    # ---- losses ---------------------------------------------------------------------------------------------

    def d_adversarial(self, real_out: DOut, gen_out: DOut) -> torch.Tensor:
        return self.loss.d_loss(real_out.logits, gen_out.logits, self.ocfg.label_smoothing)

    def g_adversarial(self, batch: Batch, gen_out: DOut) -> torch.Tensor:
        return self.loss.g_loss(gen_out.logits)

    def d_terms(self, batch: Batch, real_out: DOut, gen_out: DOut, gen_img: torch.Tensor) -> Iterator[Term]:
        """Terms added to D's adversarial loss, in order. Here: WGAN-GP's gradient penalty and the matching-aware
        term, each if on."""
        if self.ocfg.gp_weight > 0:
            pack = self.cfg.model.d_pack  # PacGAN: one eps and one gradient norm per pack of samples
            eps = torch.rand(len(batch.real_img) // pack, device=self.device, dtype=batch.real_img.dtype)
            gp = gradient_penalty(lambda x: self.run_D(x, batch.real_c).logits, batch.real_img, gen_img,
                                  eps.repeat_interleave(pack), pack)
            yield "gp", gp, self.ocfg.gp_weight
        if self.ocfg.mismatch_weight > 0:
            # run_D augments (DiffAugment, ADA) with a fresh draw, so with augmentation on the two scores compare two
            # draws of the same image: the ranking's pull on the label is the same, with more noise
            wrong_out = self.run_D(batch.real_img, wrong_labels(batch.real_c, self.num_classes))
            yield "mismatch", mismatch_ranking(real_out.logits, wrong_out.logits), self.ocfg.mismatch_weight

    def g_terms(self, batch: Batch, gen_out: DOut) -> Iterator[Term]:
        """Terms added to G's loss, in order. None here."""
        yield from ()

    def accumulate_gradients(self, phase: Phase, batch: Batch) -> dict[str, torch.Tensor]:
        if phase.name == "D":
            with torch.set_grad_enabled(self.reuse):  # reuse_fakes: keep G's graph for the G step
                gen_img = self.run_G(batch.gen_z, batch.gen_c)
            if self.reuse:
                self.kept, gen_img = (gen_img, batch), gen_img.detach()
            real_out = self.run_D(batch.real_img, batch.real_c)
            gen_out = self.run_D(gen_img, batch.gen_c)
            loss = self.d_adversarial(real_out, gen_out)
            stats = self._d_stats(real_out, gen_out)
            for key, term, weight in self.d_terms(batch, real_out, gen_out, gen_img):
                loss = loss + weight * term
                if key is not None:
                    stats[key] = term.detach()
            stats["loss_D"] = loss.detach()
            loss.backward()
            return stats
        if phase.name == "Dreg":
            o = self.ocfg
            r1 = r1_penalty(lambda x: self.run_D(x, batch.real_c).logits, batch.real_img)
            (r1 * (o.r1_gamma / 2) * o.r1_interval).backward()  # lazy: scale by the interval
            return {"r1": r1.detach()}
        if phase.name == "G":
            if self.kept is not None:  # reuse_fakes: the D step's fakes, latents and labels; D since updated
                (gen_img, d_batch), self.kept = self.kept, None
                batch = Batch(batch.real_img, batch.real_c, d_batch.gen_z, d_batch.gen_c)
            else:
                gen_img = self.run_G(batch.gen_z, batch.gen_c)
            gen_out = self.run_D(gen_img, batch.gen_c)
            if self.ocfg.feature_matching:
                # Salimans et al. 2016: || E f(x) - E f(G(z)) ||^2 on D's penultimate features.
                with torch.no_grad():
                    real_feat = self.run_D(batch.real_img, batch.real_c).features.mean(0)
                loss = (real_feat - gen_out.features.mean(0)).pow(2).sum()
            else:
                loss = self.g_adversarial(batch, self.top_k(gen_out))
            for _, term, weight in self.g_terms(batch, gen_out):
                loss = loss + weight * term
            loss.backward()
            if self.ocfg.topk < 1:
                return {"loss_G": loss.detach(), "topk": self.topk_stat.clone()}
            return {"loss_G": loss.detach()}
        raise ValueError(f"the GAN family has no phase {phase.name!r}")

    def _d_stats(self, real_out: DOut, gen_out: DOut) -> dict[str, torch.Tensor]:
        real, gen = real_out.logits.detach().float(), gen_out.logits.detach().float()
        thr = self.loss.logit_threshold
        # D accuracy: real scored above the decision threshold, fake below. Not a measure of quality.
        acc = 0.5 * ((real > thr).float().mean() + (gen <= thr).float().mean())
        if self.loss.probabilities:
            real, gen = torch.sigmoid(real), torch.sigmoid(gen)
        stats = {"D_real": real.mean(), "D_fake": gen.mean(), "D_acc": acc}
        steered = self.steered()
        if steered is not None:  # the D step is where ADA reads r_t's input, sign(D(real))
            steered.accumulate(real_out.logits)
            stats["ada_p"], stats["ada_rt"] = steered.p.clone(), steered.r_t.clone()
        return stats

    def steered(self) -> AdaptiveProbability | None:
        """The augmentation probability that D's logits on real images steer (ADA), if any."""
        return self.adaptive

    # ---- the progress grid ----------------------------------------------------------------------------------

    def _make_grid_inputs(self, data: Dataset) -> None:
        """Fixed latents (and labels: one row per class; classes with fewer than 5 samples each, as with many
        clusters, share a row: 10 samples to a row) for comparable grids across ticks and runs."""
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 12345)  # its own generator: training RNG untouched
        grid_n, self.grid_c, self.grid_rows = self.cfg.train.grid_size, None, None
        if self.cond.g.conditional:
            k = self.grid_classes(data)
            per_row = max(1, min(10, grid_n // max(k, 1)))
            self.grid_c = torch.arange(k).repeat_interleave(per_row).to(self.device)
            grid_n, self.grid_rows = len(self.grid_c), per_row if per_row >= 5 else per_row * (10 // per_row)
        self.grid_z = torch.randn(grid_n, self.G.z_dim, generator=gen).to(self.device)

    def grid_classes(self, data: Dataset) -> int:
        """The labels G's grid rows show (the data's classes here)."""
        return data.num_classes

    @torch.no_grad()
    def grid(self, G: nn.Module) -> tuple[torch.Tensor, int | None]:
        was_training = G.training
        G.eval()  # eval mode: BN uses running statistics, dropout is off, and no RNG is consumed
        fake = G(self.grid_z, self.grid_c).float().cpu()
        G.train(was_training)
        return fake, self.grid_rows


def wrong_labels(c: torch.Tensor, num_classes: int) -> torch.Tensor:
    """For each label in ``c`` [N], another class drawn uniformly from the other ``num_classes - 1``."""
    return (c + torch.randint(1, num_classes, c.shape, device=c.device)) % num_classes


def mismatch_ranking(right: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """The matching-aware term: mean softplus(D(x, wrong) - D(x, y)) over D's logits [N] on the same real images.

    GAN-CLS (Reed et al. 2016) adds the wrong pair to D's fakes. Under a Wasserstein critic that term has no
    floor: the gradient penalty constrains only the image, so the critic could drive every wrong pair towards
    minus infinity through the label alone. The logistic ranking is bounded below by 0 and its pull fades once
    the right label outscores the wrong one by a few units, under any ``objective.loss``. G is asked nothing
    new: its adversarial score D(G(z, y), y) now also says whether the image shows y.
    """
    return nn.functional.softplus(wrong - right).mean()


def uses_batch_statistics(D: nn.Module) -> bool:
    """Whether D looks across the samples of a batch (batch norm, minibatch std): how it can see a collapsed G."""
    return any(isinstance(m, (nn.modules.batchnorm._BatchNorm, MinibatchStd)) for m in D.modules())


@register
class GAN(Family):
    name = "gan"
    help = "unconditional GAN; loss from objective.loss (bce non-saturating by default, minimax, ls, hinge, ...)"
    reference = "Goodfellow et al. 2014, Generative Adversarial Nets"
    ema_networks = ("G",)
    uses_model_arch = True  # G and D from ARCHS (a family with networks of its own sets this back to False)
    reuses_fakes = True  # GANObjective's D and G steps (a family with steps of its own sets this back to False)
    selects_topk = True  # GANObjective's G step (likewise)
    packs_d = True  # model.d_pack: build_networks wraps D (an unconditional one: ``check``)
    ranks_labels = True  # GANObjective's D step (a conditional D that takes the label: ``check``)
    objective_class: type[GANObjective] = GANObjective

    def check(self, cfg: Config, data: Dataset) -> None:
        super().check(cfg, data)
        loss = LOSSES.get(cfg.objective.loss)
        parse_policy(cfg.augment.diffaugment)
        if self.needs_labels and not data.labelled:
            raise ConfigError(
                f"variant {cfg.variant!r} is conditional but dataset {data.name!r} has no labels. "
                "Use a labelled dataset (one subfolder per class for image folders) or variant=gan."
            )
        if cfg.objective.mismatch_weight > 0 and not (self.conditioning.d.scores_pairs and data.num_classes >= 2):
            raise ConfigError(
                f"objective.mismatch_weight scores real images under a wrong label, which needs a D that is given "
                f"the label (variant {self.name}'s D: {self.conditioning.d.name!r}) and data with at least 2 "
                "classes. Set objective.mismatch_weight=0, or pick cgan, cwgan-gp, cragan or a projection variant."
            )
        if cfg.model.d_pack > 1 and (self.conditioning.d.conditional or self.own_labels(cfg)):
            raise ConfigError(
                f"model.d_pack={cfg.model.d_pack} makes D score packs of samples, but variant {self.name}'s D judges "
                "each sample with its label or code. PacGAN is for unconditional D: use variant gan, wgan-gp or "
                "ragan, or set model.d_pack=1."
            )
        if cfg.augment.diffaugment and data.kind != "image":
            raise ConfigError("augment.diffaugment works on images only; clear it for 2D point data.")
        a = cfg.augment
        if not a.diffaugment and (a.diffaugment_p < 1 or a.diffaugment_target > 0):
            raise ConfigError("augment.diffaugment_p and augment.diffaugment_target set how often DiffAugment's ops "
                              "apply, but augment.diffaugment is empty. Set augment.diffaugment=translation,cutout "
                              "(or color,...) or leave them at their defaults.")
        if a.diffaugment_target > 0 and a.diffaugment_p < 1:
            raise ConfigError("augment.diffaugment_p fixes DiffAugment's probability and augment.diffaugment_target "
                              "adapts it (from 0): set one of them, not both.")
        if a.diffaugment_target > 0 and cfg.objective.loss == "wasserstein":
            raise ConfigError("augment.diffaugment_target steers p by the sign of D(real), which a Wasserstein "
                              "critic does not have (its output has no fixed zero). Use a fixed augment.diffaugment_p "
                              "or objective.loss bce / hinge / ls.")
        if cfg.objective.topk < 1 and cfg.objective.feature_matching:
            raise ConfigError("objective.topk selects the fakes of G's adversarial loss, which "
                              "objective.feature_matching replaces. Set one of them, not both.")
        if cfg.objective.label_smoothing > 0 and not loss.smoothing:
            raise ConfigError(
                f"objective.label_smoothing={cfg.objective.label_smoothing} has no effect with "
                f"objective.loss={cfg.objective.loss} (it has no real-class target to soften). Use loss bce or ls, "
                "or set objective.label_smoothing=0."
            )

    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        num_classes = max(self.own_labels(cfg) or data.num_classes, 1)
        G, D = build_models(cfg.model, data.shape, num_classes, self.conditioning)
        if cfg.model.d_pack > 1:  # PacGAN: D built for `pack` samples stacked along the channels
            k = cfg.model.d_pack
            _, inner = build_models(cfg.model, (data.shape[0] * k, *data.shape[1:]), num_classes, self.conditioning)
            D = PackedDiscriminator(inner, k)
        a = cfg.augment
        if not a.diffaugment_target:
            return {"G": G, "D": D}
        # ADA's adaptive p for DiffAugment: buffers only, so p and its running r_t ride in every checkpoint
        interval = 4  # D steps between updates of p, as in ADA
        threshold = LOSSES.get(cfg.objective.loss).logit_threshold
        p = AdaptiveProbability(a.diffaugment_target, interval, a.diffaugment_kimg, cfg.train.batch_size, p=0.0,
                                threshold=threshold)
        return {"G": G, "D": D, "diffaugment": p}

    def build_generator(self, model: ModelConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return build_models(model, shape, max(num_classes, 1), self.conditioning)[0]

    def check_networks(self, cfg: Config, networks: dict[str, nn.Module], data: Dataset) -> None:
        G, D = networks["G"], networks["D"]
        if cfg.objective.gp_weight > 0 and any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in D.modules()):
            raise ConfigError(
                "objective.gp_weight > 0 penalises each sample's gradient, but D has batch norm, which mixes the "
                "samples of a batch (Gulrajani et al. 2017, section 4). Set model.d_batchnorm=[false] (the wgan-gp "
                "variants do unless a preset turns it back on)."
            )
        with torch.no_grad():  # shape check: one tiny forward pass on CPU
            G.eval(), D.eval()
            n = 2 * cfg.model.d_pack  # D scores packs of d_pack samples
            c = torch.zeros(n, dtype=torch.long)
            fake = G(torch.zeros(n, G.z_dim), c)
            if tuple(fake.shape[1:]) != data.shape:
                made = tuple(fake.shape[1:])
                raise ConfigError(f"model.arch={cfg.model.arch} makes {made} samples but the data is {data.shape}.")
            D(fake, c)

    def objective(self, cfg: Config, networks: dict[str, nn.Module], data: Dataset, real_x: torch.Tensor,
                  real_y: torch.Tensor | None) -> GANObjective:
        objective = self.objective_class(self, cfg, networks["G"], networks["D"], data, real_x, real_y)
        objective.adaptive = networks.get("diffaugment")  # type: ignore[assignment]
        return objective
