"""A GAN family: the unit a contributor adds, in one module.

A family declares everything that makes it what it is:

- its **networks** (built from the shared blocks in ``models``) and the **optimizers** that step them;
- its **phases**: which optimizer steps after each, how many times in a row (n_critic), on which interval
  (lazy regularisation), and which phases show real images (training length is measured in those);
- its **losses**, behind one call, ``Objective.accumulate_gradients(phase, batch)``;
- what a **sample** needs (``Objective.draw``: z, a label, ...) and the fixed inputs of the progress grid;
- what it **exports** for ``generate`` (``sample_network``, rebuilt by ``build_generator``).

The training loop runs phases and ticks and never names a family, a network or a loss. A family registers
itself with ``@register``; every module in ``ganforge.variants`` is imported, so a new file is found, and a
third-party package can add one through the ``ganforge.plugins`` entry-point group (``ganforge.plugins``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ganforge.config import Config, ModelConfig, describe_layer, from_dict, to_plain
from ganforge.data.base import Dataset
from ganforge.errors import ConfigError
from ganforge.models.conditioning import Conditioning
from ganforge.registry import Registry

KIND_WORDS = {"image": "images", "points": "2D points"}  # Dataset.kind in a message


@dataclass(frozen=True)
class Phase:
    name: str  # the family's name for it ("D", "Dreg", "G", ...): passed back to accumulate_gradients
    opt: str  # the optimizer (a key of Family.optimizers) that steps after it
    repeats: int = 1  # consecutive steps per iteration (n_critic for a critic)
    interval: int = 1  # run on every interval-th iteration (lazy regularisation)
    shows_real: bool = False  # each step shows a batch of real images (kimg counts these)
    # Networks outside ``opt`` whose parameters keep their gradients on during this phase, because it builds
    # their graph for a later phase of the same iteration (the GAN family's reused fakes: D's phase runs G once
    # with grad, and G's phase backpropagates through that output). Every other network is frozen.
    keeps_graph: tuple[str, ...] = ()


@dataclass(frozen=True)
class OptimizerSpec:
    networks: tuple[str, ...]  # the networks whose parameters it steps
    lr: float
    betas: tuple[float, float] | None = None  # Adam's (beta1, beta2); None: optim.beta1 / optim.beta2


class Objective(ABC):
    """A family's losses and sampling, bound to one run's networks and (device-resident) training data."""

    phases: list[Phase]
    stat_labels: dict[str, str] = {}  # how the log line shows a statistic, e.g. {"D_real": "D(x)"}

    @abstractmethod
    def draw(self, phase: Phase, idx: torch.Tensor) -> Any:
        """Everything one step of ``phase`` needs for the real examples ``idx`` [N] (a batch object).

        Randomness is drawn here and in ``accumulate_gradients`` only, from torch's global generator, in a
        fixed order: that is what makes kill-and-resume exact.
        """

    @abstractmethod
    def accumulate_gradients(self, phase: Phase, batch: Any) -> dict[str, torch.Tensor]:
        """Compute the phase's loss and call backward; return detached statistics (device tensors)."""

    @abstractmethod
    def grid(self, G: nn.Module) -> tuple[torch.Tensor, int | None]:
        """The progress grid from the fixed grid inputs: samples [N, ...] (CPU float) and samples per row."""

    def set_progress(self, images_seen: int) -> None:
        """Called before each iteration with the real images shown to D so far, for a loss whose terms follow a
        schedule (top-k training). Derived from the loop's counter, so a resumed run reads the same values."""
        return None


class Family(ABC):
    """Base class of every family. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    help: ClassVar[str]
    reference: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}  # a config layer below the preset, e.g. {"objective": {...}}
    conditioning: ClassVar[Conditioning] = Conditioning()
    ema_networks: ClassVar[tuple[str, ...]] = ()  # averaged when train.ema_kimg > 0
    data_kinds: ClassVar[tuple[str, ...]] = ("image", "points")  # the Dataset.kind values it trains on
    sample_network: ClassVar[str] = "G"  # what generate samples from (its EMA when there is one)
    # Whether build_networks takes G and D from the architecture registry by ``model.arch``. A family that builds
    # its own networks (StyleGAN2, ProGAN, the translators) refuses a model.arch other than the default, which it
    # would otherwise ignore in silence.
    uses_model_arch: ClassVar[bool] = False
    reuses_fakes: ClassVar[bool] = False  # honours objective.reuse_fakes (the others refuse it)
    selects_topk: ClassVar[bool] = False  # honours objective.topk < 1 (the others refuse it)
    packs_d: ClassVar[bool] = False  # honours model.d_pack > 1, PacGAN (the others refuse it)
    ranks_labels: ClassVar[bool] = False  # honours objective.mismatch_weight > 0 (the others refuse it)
    # The family's own settings, the ``family:`` section of a config (``--set family.cycle_weight=5``): a frozen
    # dataclass whose field defaults are the paper's values; range checks raise ConfigError in __post_init__.
    options: ClassVar[type | None] = None

    def settings(self, cfg: Config) -> Any:
        """``cfg.family`` as this family's typed options (strict: an unknown key names the valid ones)."""
        if self.options is None:
            if cfg.family:
                raise ConfigError(
                    f"variant {self.name!r} takes no family options, but the config sets "
                    f"{', '.join('family.' + k for k in cfg.family)}. Remove them or pick a variant "
                    "that has them (`ganforge list variants`)."
                )
            return None
        return from_dict(self.options, cfg.family, "family")

    def option_defaults(self) -> dict[str, Any]:
        """The options' defaults as a config layer value (what ``ganforge list variants`` shows)."""
        return to_plain(self.options()) if self.options is not None else {}

    @property
    def needs_labels(self) -> bool:
        return self.conditioning.conditional

    @property
    def summary(self) -> str:
        """What ``ganforge list variants`` shows: the help, how labels enter the networks, the defaults."""
        cond = self.conditioning
        labels = f"labels: G {cond.g.name}, D {cond.d.name}" if self.needs_labels else "unconditional"
        text = f"{self.help}\n    {labels}; defaults: {', '.join(describe_layer(self.defaults)) or 'none'}"
        if self.options is not None:
            text += f"\n    options: {', '.join(describe_layer(self.option_defaults(), 'family.'))}"
        return text

    def check(self, cfg: Config, data: Dataset) -> None:
        """Refuse a config or dataset this family cannot train, before anything is written. Here: data of a
        kind the family does not draw (``data_kinds``) and a ``model.arch`` it would ignore
        (``uses_model_arch``); a family that refuses more calls this first."""
        default_arch = ModelConfig().arch
        if not self.uses_model_arch and cfg.model.arch != default_arch:
            raise ConfigError(
                f"variant {self.name} builds its own networks and ignores model.arch={cfg.model.arch}. Remove "
                f"model.arch (or set it to {default_arch}) and size the networks with model.g_channels / "
                "d_channels and family.*, or pick a variant that takes model.arch (`ganforge list variants`)."
            )
        if cfg.model.g_mapping_layers and not self.uses_model_arch:
            raise ConfigError(
                f"variant {self.name} builds its own networks and ignores model.g_mapping_layers (a mapping network "
                "for the dcgan and resnet archs). Remove it, or size the family's own networks with family.*."
            )
        if cfg.model.g_self_modulation and not self.uses_model_arch:
            raise ConfigError(
                f"variant {self.name} builds its own networks and ignores model.g_self_modulation (for the dcgan "
                "arch's G). Remove it, or pick a variant that takes model.arch (`ganforge list variants`)."
            )
        if cfg.objective.reuse_fakes and not self.reuses_fakes:
            raise ConfigError(
                f"variant {self.name} has its own training steps and cannot reuse D's fakes in G's step; "
                "set objective.reuse_fakes=false."
            )
        if cfg.objective.mismatch_weight > 0 and not self.ranks_labels:
            raise ConfigError(
                f"variant {self.name} has its own training steps, without the matching-aware term; set "
                "objective.mismatch_weight=0 or pick a conditional variant of the GAN family (cgan, cwgan-gp, ...)."
            )
        if cfg.objective.topk < 1 and not self.selects_topk:
            raise ConfigError(
                f"variant {self.name} has its own generator step, which does not do top-k training; "
                "set objective.topk=1 or pick a variant of the GAN family (gan, cgan, wgan-gp, ...)."
            )
        if cfg.model.d_pack > 1 and not self.packs_d:
            raise ConfigError(
                f"variant {self.name} builds its own discriminator, which does not score packs of samples; "
                "set model.d_pack=1 or pick variant gan, wgan-gp or ragan (`ganforge list variants`)."
            )
        if cfg.data.clusters and not self.needs_labels:
            raise ConfigError(
                f"data.clusters gives a conditional variant labels to train on, and variant {self.name} is "
                "unconditional: it would ignore them. Pick a conditional variant (e.g. cwgan-gp for wgan-gp) or "
                "remove data.clusters."
            )
        if data.kind not in self.data_kinds:
            draws = " or ".join(KIND_WORDS.get(k, k) for k in self.data_kinds)
            raise ConfigError(
                f"variant {self.name} draws {draws}; dataset {data.name!r} is {data.kind}. "
                "Use variant=gan for 2D points."
            )

    @abstractmethod
    def build_networks(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        """Every network of a run, freshly initialised (called after seeding: weights depend on the seed)."""

    def check_networks(self, cfg: Config, networks: dict[str, nn.Module], data: Dataset) -> None:
        """Refuse networks that cannot work on ``data`` (e.g. a shape check by one tiny forward pass)."""
        return None

    @abstractmethod
    def build_generator(self, model: ModelConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """The exported network alone, for ``load_generator`` (no discriminator, no training code)."""

    def build_exported(self, model: ModelConfig, spec: dict[str, Any]) -> nn.Module:
        """The exported network from ``generator.json``'s fields (by default: its shape and number of classes)."""
        return self.build_generator(model, tuple(spec["shape"]), spec["num_classes"])

    def optimizers(self, cfg: Config) -> dict[str, OptimizerSpec]:
        """Which networks each optimizer steps, at which rate. Default: the G/D pair, at optim.lr_g / lr_d."""
        return {"G": OptimizerSpec(("G",), cfg.optim.lr_g), "D": OptimizerSpec(("D",), cfg.optim.lr_d)}

    def own_labels(self, cfg: Config) -> int:
        """How many labels G draws for itself (InfoGAN's latent codes); 0 when G's labels are the data's."""
        return 0

    def label_info(self, cfg: Config, data: Dataset, nets: dict[str, nn.Module] | None = None) -> dict[str, Any]:
        """What ``generator.json`` records about the labels G takes: their number and names, and (``cluster_prior``)
        the frequencies at which G draws them itself when they are not the data's classes (k-means clusters,
        InfoGAN's codes): such a generator is sampled, and evaluated, as an unconditional one. ``nets``: the
        run's networks as trained so far, for a family that learns those frequencies (InfoGAN's prior)."""
        info: dict[str, Any] = {"num_classes": data.num_classes, "class_names": list(data.class_names)}
        if "cluster_prior" in data.meta:
            info["cluster_prior"] = data.meta["cluster_prior"]
        return info

    def export_info(self) -> dict[str, Any]:
        """What ``generator.json`` records about the family beyond its name (e.g. how labels enter)."""
        return {"conditioning": self.conditioning.to_dict()}

    @abstractmethod
    def objective(
        self,
        cfg: Config,
        networks: dict[str, nn.Module],
        data: Dataset,
        real_x: torch.Tensor,
        real_y: torch.Tensor | None,
    ) -> Objective:
        """The run's objective; ``real_x`` / ``real_y`` are the training data on the training device."""


VARIANTS: Registry[Family] = Registry("variant")

F = TypeVar("F", bound=type[Family])


def register(cls: F) -> F:
    """Class decorator: register one instance of the family under ``cls.name``."""
    family = cls()
    VARIANTS.add(cls.name, family, help=family.summary)
    return cls
