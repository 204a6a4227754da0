"""Typed, frozen, strict configs.

A run's config is resolved in layers, each a nested dict checked against the dataclasses below:

    dataclass defaults  <-  the variant's defaults  <-  preset YAML (``extends:`` chains)  <-  ``--set`` overrides

``ganforge.presets`` does the resolving, since the variants' defaults live a layer above this module.
Unknown keys fail with the nearest valid name; values are coerced to the annotated type and range checked;
the resolved config is written into the run directory and into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ganforge.errors import ConfigError
from ganforge.registry import closest

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist5k"  # a registered dataset (`ganforge list datasets`)
    path: str | None = None  # file or folder for file-backed datasets (MedMNIST .npz, image folder)
    resolution: int | None = None  # resize images to this square size; None keeps the native size
    channels: int | None = None  # 1 (grayscale) or 3 (RGB); None keeps the native channels
    resize: Literal["resize", "center-crop"] = "resize"  # how non-square / other-size images are fitted
    n_points: int = 1024  # toy 2D sets: number of training points
    noise: float = 0.05  # toy 2D sets: noise standard deviation
    classes: tuple[int, ...] | None = None  # keep only these labels (None: all)
    limit: int | None = None  # keep at most this many training examples (None: all)
    test_fraction: float = 0.2  # held-out share for datasets that ship no test split
    download: bool = False  # allow downloading (full MNIST through torchvision)
    domains: tuple[str, ...] | None = None  # two-domain datasets: domain A and B, e.g. [flair, ct]; None: its default
    seed: int = 0  # seed for toy data generation and for deterministic train/test splits
    # image folders whose decoded pixels (float32) exceed this stay on disk and are read per batch (data/stream.py)
    max_memory_mb: float = 4096.0
    loader_threads: int = 4  # threads that decode a streamed batch
    # > 0: replace the labels with this many k-means clusters of the training images (data/clusters.py), so a
    # conditional variant trains without annotations and samples clusters at their frequency. 0: the data's labels.
    clusters: int = 0


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "dcgan"  # a registered architecture (`ganforge list archs`)
    z_dim: int = 100  # latent size
    embed_dim: int = 50  # label embedding size for conditional variants
    # MLP pair (per-layer lists; a scalar applies to every hidden layer)
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (512, 256)
    g_act: Literal["relu", "leaky_relu"] = "relu"
    d_act: Literal["relu", "leaky_relu"] = "leaky_relu"
    leaky_slope: float = 0.2
    g_batchnorm: tuple[bool, ...] = (False,)
    d_batchnorm: tuple[bool, ...] = (False,)
    g_dropout: tuple[float, ...] = (0.0,)
    d_dropout: tuple[float, ...] = (0.0,)
    # convolutional pair (DCGAN)
    g_channels: int = 128  # channels of G's first feature map (halved at each upsampling)
    d_channels: int = 64  # channels of D's first conv (doubled at each downsampling)
    g_extra_layers: int = 0  # extra stride-1 conv layers in G (the MNIST depth study)
    # StyleGAN's mapping network (Karras et al. 2019) between z and G's first layer: this many fully connected
    # layers (width z_dim, leaky ReLU, equalised lr), room for G to fold the Gaussian latent before drawing. dcgan
    # and resnet archs.
    g_mapping_layers: int = 0
    # The mapping's learning rate as a fraction of G's: StyleGAN's 0.01 is tuned for millions of images; in a
    # 200-kimg MNIST run it moves the weights by 0.05-0.35%, so the mapping stays the random warp it started as.
    # mnist-dcgan-mapping and mnist-wgan-gp-mapping use 0.2. 1: the mapping learns at G's rate.
    g_mapping_lr_mul: float = 0.01
    # Self-modulated batch norm in G (Chen et al. 2019): every batch norm's gain and bias are computed from the
    # sample's latent (the mapping network's output when there is one) by a small MLP. dcgan arch.
    g_self_modulation: bool = False
    d_extra_layers: int = 0  # extra stride-1 conv layers in D
    spectral_norm_d: bool = False
    spectral_norm_g: bool = False
    d_mbstd: bool = False  # minibatch standard deviation channel before D's last layer (Karras et al. 2018)
    # The resnet arch's D activation: SNGAN's ReLU, or leaky ReLU (slope leaky_slope), which keeps a ResNet D
    # without spectral norm from dying (every unit of its last block negative: one output for every image). Its own
    # key, not d_act: run directories written before it record d_act=leaky_relu, which never applied to this arch.
    resnet_d_act: Literal["relu", "leaky_relu"] = "relu"
    # PacGAN (Lin et al. 2018): D scores packs of this many samples, stacked along the channel axis, all real or
    # all generated, so a G that drops modes makes packs that look alike. 1: one sample at a time. Unconditional
    # D only; the batch must be a multiple of it.
    d_pack: int = 1


@dataclass(frozen=True)
class ObjectiveConfig:
    loss: str = "bce"  # a registered adversarial loss (`ganforge list losses`)
    n_critic: int = 1  # D steps per G step
    gp_weight: float = 0.0  # WGAN-GP lambda (0 disables)
    r1_gamma: float = 0.0  # R1 penalty weight (0 disables)
    r1_interval: int = 16  # lazy regularisation: apply R1 every this many D steps
    label_smoothing: float = 0.0  # one-sided: real targets become 1 - s
    feature_matching: bool = False  # G matches D's mean features instead of fooling D
    # G's step reuses the fakes (and latents, labels) of the iteration's last D step instead of drawing new ones,
    # as the PyTorch DCGAN example does: one G forward per iteration instead of two (GAN-family variants only).
    reuse_fakes: bool = False
    aux_weight: float = 1.0  # AC-GAN: weight of the auxiliary classification loss
    # Matching-aware D (Reed et al. 2016, GAN-CLS), for a D that is given the label (cgan, cwgan-gp, cragan,
    # projection): each real image is scored again under a wrong label and D is asked, with this weight, to rank
    # it below the same image under its own label (softplus(D(x, wrong) - D(x, y))). 0: off.
    mismatch_weight: float = 0.0
    # Top-k training (Sinha et al. 2020): G's adversarial loss counts only the fraction of each batch's fakes that
    # D scores highest, so the worst samples stop pulling G towards the space between modes. The fraction starts
    # at 1 and is multiplied by topk_decay per epoch of the training set, down to this floor. 1: off, every fake
    # counts. The paper: floor 0.5, decay 0.99.
    topk: float = 1.0
    topk_decay: float = 0.99


@dataclass(frozen=True)
class AugmentConfig:
    diffaugment: str = ""  # comma-separated: color, translation, cutout (applied to real and fake)
    # One draw of DiffAugment's parameters per image (the paper's) or per batch. A D that sees collapse through
    # batch statistics (batch norm, minibatch std) needs "batch": per-image draws make a collapsed batch look varied.
    # "auto": "batch" for such a D, "image" for a D that judges each image alone.
    diffaugment_draw: Literal["auto", "image", "batch"] = "auto"
    # The value translation shifts in and cutout paints, in the [-1, 1] pixel range: 0 (mid-grey) as in the
    # reference code; -1 is black, the background of digits and scans, so a moved or cut digit still looks drawn
    # on black.
    diffaugment_fill: float = 0.0
    # The probability that each DiffAugment op is applied to an image (to the batch, with "batch" draws); 1 is the
    # paper's always-on DiffAugment.
    diffaugment_p: float = 1.0
    # > 0: p adapts instead, as in ADA (Karras et al. 2020). It starts at 0; every 4 D steps the overfitting
    # heuristic r_t = E[sign(D(real))] is measured and p steps up if r_t is above this target, down if below, fast
    # enough to cross [0, 1] in diffaugment_kimg kimg. A D that does not overfit keeps p near 0. ADA's target: 0.6.
    diffaugment_target: float = 0.0
    diffaugment_kimg: float = 100.0
    rotation: float = 0.0  # classic augmentation of real images: max rotation in degrees
    shift: float = 0.0  # max shift as a fraction of the image size
    zoom: float = 0.0  # max zoom as a fraction (0.1: 0.9x .. 1.1x)


@dataclass(frozen=True)
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # Both learning rates stay as set until this fraction of the run, then fall linearly to 0 at its end
    # (SNGAN and WGAN-GP's CIFAR scripts: 0, from the start; CycleGAN: 0.5). 1: constant, no decay.
    lr_decay_start: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    kimg: float | None = None  # length in thousands of real images shown to D
    epochs: float | None = None  # alternative length in passes over the training set
    batch_size: int = 64
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tick_kimg: float | None = None  # maintenance interval; None: about 20 ticks per run
    snapshot_ticks: int = 10  # keep a periodic checkpoint every this many ticks (latest is always kept)
    grid_size: int = 64  # samples in the per-tick grid (points for 2D data)
    ema_kimg: float = 0.0  # half-life of G's EMA in kimg (0 disables EMA)
    ema_rampup: float = 0.0  # cap the EMA half-life at this times the images seen (StyleGAN2-ADA: 0.05); 0: off
    amp: Literal["off", "bf16", "auto"] = "off"  # bf16 autocast (CUDA; CPUs with AVX512-BF16/AMX); auto: where native
    channels_last: bool = False
    cuda_graphs: bool = False  # capture the fixed-shape training step (CUDA only)
    tensorboard: bool = False
    nan_policy: Literal["stop", "rollback"] = "stop"  # on NaN/inf losses: stop, or reload the last checkpoint
    nan_rollbacks: int = 3  # rollback: at most this many per process, then stop
    nan_lr_factor: float = 0.5  # rollback: multiply both learning rates by this each time


@dataclass(frozen=True)
class EvalConfig:
    every_ticks: int = 0  # evaluate during training every this many ticks (0: never)
    metrics: tuple[str, ...] = ()  # registered metrics; () means the dataset kind's default set
    n: int = 2000  # generated samples per evaluation
    extractor: str = "domain"


@dataclass(frozen=True)
class HealthConfig:
    """The collapse check while training (``metrics.health``) and keeping the best generator by its numbers."""

    every_ticks: int = 0  # check every this many ticks (0: never)
    n: int = 500  # generated samples per check, compared with as many real training samples
    keep_best: Literal["off", "fid", "recall", "coverage", "class_acc"] = "off"  # keep best/ by this check's number


@dataclass(frozen=True)
class Config:
    name: str = ""
    description: str = ""
    variant: str = "gan"  # a registered GAN variant (`ganforge list variants`)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    # The family's own settings (a cycle-loss weight, a mapping depth...): a free mapping here, checked strictly
    # against the family's ``options`` dataclass when the config is resolved (``presets``), since the schema
    # depends on ``variant`` and this module sits below the families.
    family: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------------------------
# validation


def _non_finite(obj: Any, prefix: str = "") -> str | None:
    """The dotted key of the first float value that is inf or nan (None: all finite)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if is_dataclass(value):
            found = _non_finite(value, key + ".")
            if found:
                return found
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                return key
    return None


# Upper bounds: far beyond any published setting, low enough that a typo (1e12) fails here, in one line,
# instead of as an allocation error minutes later. Each says why it is where it is.
def _maxima(cfg: Config) -> list[tuple[str, float, float, str]]:
    t, m, d = cfg.train, cfg.model, cfg.data
    return [
        ("train.kimg", t.kimg or 0, 1e6, "StyleGAN2-ADA's longest runs are 25,000"),
        ("train.epochs", t.epochs or 0, 1e6, "a million passes over the data"),
        ("train.batch_size", t.batch_size, 65536, "larger batches do not fit in memory"),
        ("train.seed", t.seed, 2**32 - 1, "numpy seeds are 32-bit"),
        ("train.grid_size", t.grid_size, 4096, "a sample grid, not a dataset: use ganforge generate"),
        ("train.snapshot_ticks", t.snapshot_ticks, 1e9, "ticks of a run"),
        ("train.ema_kimg", t.ema_kimg, 1e6, "as train.kimg"),
        ("train.nan_rollbacks", t.nan_rollbacks, 100, "a run that diverges this often needs other settings"),
        ("optim.lr_g", cfg.optim.lr_g, 1.0, "Adam steps beyond 1 always diverge"),
        ("optim.lr_d", cfg.optim.lr_d, 1.0, "Adam steps beyond 1 always diverge"),
        ("model.z_dim", m.z_dim, 65536, "larger latents do not fit in memory"),
        ("model.embed_dim", m.embed_dim, 65536, "larger embeddings do not fit in memory"),
        ("model.*_hidden", max(m.g_hidden + m.d_hidden, default=0), 65536, "larger layers do not fit in memory"),
        ("model.*_channels", max(m.g_channels, m.d_channels), 16384, "larger layers do not fit in memory"),
        ("model.*_extra_layers", max(m.g_extra_layers, m.d_extra_layers), 64, "deeper stacks do not train"),
        ("model.d_pack", m.d_pack, 64, "PacGAN packs 2 to 4 samples"),
        ("model.g_mapping_layers", m.g_mapping_layers, 64, "StyleGAN's mapping network has 8"),
        ("objective.n_critic", cfg.objective.n_critic, 1000, "WGAN uses 5"),
        ("objective.r1_interval", cfg.objective.r1_interval, 1e6, "steps between lazy R1 penalties"),
        ("data.n_points", d.n_points, 1e8, "larger toy sets do not fit in memory"),
        ("data.resolution", d.resolution or 0, 4096, "larger images do not fit in memory"),
        ("data.seed", d.seed, 2**32 - 1, "numpy seeds are 32-bit"),
        ("data.clusters", d.clusters, 1000, "k-means labels for a conditional G; the MNIST presets use 20"),
        ("eval.n", cfg.eval.n, 1e7, "FID uses 50,000"),
        ("eval.every_ticks", cfg.eval.every_ticks, 1e9, "ticks of a run"),
        ("health.every_ticks", cfg.health.every_ticks, 1e9, "ticks of a run"),
        ("health.n", cfg.health.n, 1e5, "a check during training, not an evaluation: use ganforge evaluate"),
    ]


def validate(cfg: Config) -> Config:
    """Range checks that a type cannot express. Raises ConfigError naming key and fix."""
    checks: list[tuple[bool, str]] = [
        (cfg.optim.lr_g > 0, "optim.lr_g must be > 0"),
        (cfg.optim.lr_d > 0, "optim.lr_d must be > 0"),
        (0 <= cfg.optim.beta1 < 1, "optim.beta1 must be in [0, 1)"),
        (0 <= cfg.optim.beta2 < 1, "optim.beta2 must be in [0, 1)"),
        (0 <= cfg.optim.lr_decay_start <= 1, "optim.lr_decay_start must be in [0, 1] (1: no decay)"),
        (cfg.train.batch_size >= 1, "train.batch_size must be >= 1"),
        (cfg.train.seed >= 0 and cfg.data.seed >= 0, "train.seed and data.seed must be >= 0"),
        (cfg.train.kimg is None or cfg.train.kimg > 0, "train.kimg must be > 0"),
        (cfg.train.epochs is None or cfg.train.epochs > 0, "train.epochs must be > 0"),
        (cfg.train.tick_kimg is None or cfg.train.tick_kimg > 0, "train.tick_kimg must be > 0"),
        (cfg.train.snapshot_ticks >= 1, "train.snapshot_ticks must be >= 1"),
        (cfg.train.grid_size >= 1, "train.grid_size must be >= 1"),
        (cfg.train.ema_kimg >= 0, "train.ema_kimg must be >= 0"),
        (0 <= cfg.train.ema_rampup <= 1, "train.ema_rampup must be in [0, 1] (StyleGAN2-ADA uses 0.05)"),
        (cfg.model.z_dim >= 1, "model.z_dim must be >= 1"),
        (cfg.model.embed_dim >= 1, "model.embed_dim must be >= 1"),
        (cfg.model.leaky_slope >= 0, "model.leaky_slope must be >= 0"),
        (all(w >= 1 for w in cfg.model.g_hidden + cfg.model.d_hidden), "model.*_hidden widths must be >= 1"),
        (all(0 <= p < 1 for p in cfg.model.g_dropout + cfg.model.d_dropout), "model.*_dropout must be in [0, 1)"),
        (cfg.model.g_channels >= 1 and cfg.model.d_channels >= 1, "model.*_channels must be >= 1"),
        (cfg.model.g_extra_layers >= 0 and cfg.model.d_extra_layers >= 0, "model.*_extra_layers must be >= 0"),
        (cfg.model.g_mapping_layers >= 0, "model.g_mapping_layers must be >= 0 (0: z enters G directly)"),
        (0 < cfg.model.g_mapping_lr_mul <= 1,
         "model.g_mapping_lr_mul must be in (0, 1] (a fraction of G's learning rate; StyleGAN's is 0.01)"),
        (cfg.model.d_pack >= 1, "model.d_pack must be >= 1 (1: D scores one sample at a time)"),
        (cfg.train.batch_size % max(cfg.model.d_pack, 1) == 0,
         f"train.batch_size={cfg.train.batch_size} must be a multiple of model.d_pack={cfg.model.d_pack}"),
        (cfg.objective.n_critic >= 1, "objective.n_critic must be >= 1"),
        (cfg.objective.gp_weight >= 0, "objective.gp_weight must be >= 0"),
        (cfg.objective.r1_gamma >= 0, "objective.r1_gamma must be >= 0"),
        (cfg.objective.r1_interval >= 1, "objective.r1_interval must be >= 1"),
        (0 <= cfg.objective.label_smoothing < 0.5, "objective.label_smoothing must be in [0, 0.5)"),
        (cfg.objective.aux_weight >= 0, "objective.aux_weight must be >= 0"),
        (cfg.objective.mismatch_weight >= 0, "objective.mismatch_weight must be >= 0 (0: off)"),
        (0 < cfg.objective.topk <= 1, "objective.topk must be in (0, 1] (the fraction of fakes G learns from; 1: all)"),
        (0 < cfg.objective.topk_decay <= 1, "objective.topk_decay must be in (0, 1] (per epoch; the paper's 0.99)"),
        (cfg.augment.rotation >= 0 and cfg.augment.shift >= 0 and cfg.augment.zoom >= 0, "augment.* must be >= 0"),
        (-1 <= cfg.augment.diffaugment_fill <= 1, "augment.diffaugment_fill must be in [-1, 1] (the pixel range)"),
        (0 <= cfg.augment.diffaugment_p <= 1, "augment.diffaugment_p must be in [0, 1] (a probability)"),
        (0 <= cfg.augment.diffaugment_target < 1, "augment.diffaugment_target must be in [0, 1) (0: a fixed p)"),
        (cfg.augment.diffaugment_kimg > 0, "augment.diffaugment_kimg must be > 0"),
        (cfg.data.n_points >= 1, "data.n_points must be >= 1"),
        (cfg.data.noise >= 0, "data.noise must be >= 0"),
        (cfg.data.resolution is None or cfg.data.resolution >= 4, "data.resolution must be >= 4"),
        (cfg.data.channels in (None, 1, 3), "data.channels must be 1, 3 or null"),
        (cfg.data.limit is None or cfg.data.limit >= 1, "data.limit must be >= 1"),
        (cfg.data.max_memory_mb >= 0, "data.max_memory_mb must be >= 0 (0 streams every image folder from disk)"),
        (1 <= cfg.data.loader_threads <= 256, "data.loader_threads must be in [1, 256]"),
        (cfg.data.clusters == 0 or cfg.data.clusters >= 2, "data.clusters must be 0 (the data's labels) or >= 2"),
        (0 < cfg.data.test_fraction < 1, "data.test_fraction must be in (0, 1)"),
        (cfg.eval.every_ticks >= 0, "eval.every_ticks must be >= 0"),
        (cfg.eval.n >= 2, "eval.n must be >= 2"),
        (cfg.health.every_ticks >= 0, "health.every_ticks must be >= 0"),
        (cfg.health.n >= 20, "health.n must be >= 20 (k-NN recall needs a few samples per neighbourhood)"),
        (cfg.health.keep_best == "off" or cfg.health.every_ticks > 0,
         "health.keep_best needs the check that measures it: set health.every_ticks too, e.g. health.every_ticks=2"),
        (cfg.train.nan_rollbacks >= 0, "train.nan_rollbacks must be >= 0"),
        (0 < cfg.train.nan_lr_factor < 1, "train.nan_lr_factor must be in (0, 1)"),
        # A captured CUDA graph holds the optimiser's old state tensors; a rollback replaces them.
        (
            not (cfg.train.cuda_graphs and cfg.train.nan_policy == "rollback"),
            "train.nan_policy=rollback cannot be combined with train.cuda_graphs (use one of them)",
        ),
        # A captured Adam step holds the learning rate it was captured with.
        (
            not (cfg.train.cuda_graphs and cfg.optim.lr_decay_start < 1),
            "optim.lr_decay_start < 1 cannot be combined with train.cuda_graphs (use one of them)",
        ),
        # A captured G step holds the number of fakes it kept; top-k training changes it every epoch.
        (
            not (cfg.train.cuda_graphs and cfg.objective.topk < 1),
            "objective.topk < 1 cannot be combined with train.cuda_graphs (use one of them)",
        ),
    ]
    bad = _non_finite(cfg)
    if bad:
        raise ConfigError(f"bad value: {bad} must be a finite number, not inf or nan. Fix it in the preset or --set.")
    checks += [(value <= most, f"{key} must be <= {most:g} ({why})") for key, value, most, why in _maxima(cfg)]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"bad value: {message}. Fix it in the preset or with --set.")
    if cfg.train.kimg is None and cfg.train.epochs is None:
        raise ConfigError("the training length is not set: give train.kimg (or train.epochs), e.g. --set train.kimg=20")
    return cfg


# ----------------------------------------------------------------------------------------------
# strict dict -> dataclass conversion


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping of keys to values, got {clip(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(unknown_key_message(dotted, key, names, where))
        kwargs[key] = _coerce(hints[key], value, dotted)
    return cls(**kwargs)


def clip(value: Any, limit: int = 60) -> str:
    """repr(value), cut short: a message stays one short line whatever the input size."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<a {type(value).__name__} too long to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_key_message(dotted: str, key: str, names: list[str], where: str) -> str:
    msg = f"unknown config key {clip(dotted)}."
    near = closest(str(key), names)
    if near:
        msg += f" Did you mean {(where + '.' if where else '') + near!r}?"
    msg += f" Valid keys{' under ' + repr(where) if where else ''}: {', '.join(names)}."
    return msg


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping of keys to values, got {clip(value)}")
        return to_plain(value)
    if origin is Literal:
        if isinstance(value, bool) and ("on" if value else "off") in args:
            value = "on" if value else "off"  # YAML 1.1 reads a bare off/on (e.g. --set train.amp=off) as a bool
        if value not in args:
            raise ConfigError(f"bad value for {where}: {clip(value)}. Choose one of: {', '.join(map(str, args))}.")
        return value
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        inner = args[0]
        return tuple(_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(items))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"bad value for {where}: {clip(value)} is not true/false.")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"bad value for {where}: {clip(value)} is not an integer.")
        try:
            as_float = float(value)
        except ValueError:
            raise ConfigError(f"bad value for {where}: {clip(value)} is not an integer.") from None
        if not math.isfinite(as_float) or as_float != int(as_float):
            raise ConfigError(f"bad value for {where}: {clip(value)} is not an integer.")
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"bad value for {where}: {clip(value)} is not a number.")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"bad value for {where}: {clip(value)} is not a number.") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"bad value for {where}: expected text, got {clip(value)}.")
        return str(value)
    raise TypeError(f"config type {tp} of {where} is not supported")  # a bug, not a user error


def to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


# ----------------------------------------------------------------------------------------------
# layers: presets, variant defaults, overrides


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_description(name: str) -> str:
    data = _read_yaml(PRESET_DIR / f"{name}.yaml")
    return str(data.get("description", ""))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist. Check the path.") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {e.start}); save it as UTF-8.") from None
    except OSError as e:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({e.strerror}). Check the path.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {problem}.") from None
    except RecursionError:
        raise ConfigError(f"config file {str(path)!r} is nested too deeply to be a config.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level.")
    return data


def resolve_source(source: str) -> Path:
    """A preset name (``sine``) or a path to a YAML file."""
    path = Path(source)
    if source.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {source!r} does not exist. Check the path, or use a preset name.")
        return path
    preset = PRESET_DIR / f"{source}.yaml"
    if not preset.is_file():
        msg = f"unknown preset {source!r}."
        near = closest(source, preset_names())
        if near:
            msg += f" Did you mean {near!r}?"
        msg += f" Presets: {', '.join(preset_names())}. Or pass a path to a YAML file."
        raise ConfigError(msg)
    return preset


def read_layers(path: Path, _seen: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    """The YAML file and the chain of files it ``extends``, base first."""
    if path.resolve() in _seen:
        raise ConfigError(f"config {str(path)!r} extends itself in a loop.")
    data = _read_yaml(path)
    base = data.pop("extends", None)
    if base is None:
        return [data]
    base_path = resolve_source(str(base)) if not str(base).endswith(".yaml") else (path.parent / base)
    return read_layers(base_path, _seen + (path.resolve(),)) + [data]


def parse_override(text: str) -> dict[str, Any]:
    """``train.kimg=20`` -> {"train": {"kimg": 20}}; values parse as YAML (lists: ``[64,32]``)."""
    if "=" not in text:
        raise ConfigError(f"override {clip(text)} must look like key=value, e.g. train.kimg=20")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {clip(text)} has no key; write it like train.kimg=20")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError):  # ValueError: an integer of more than 4300 digits
        value = raw
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    # A layer that sets one training length replaces the other one set below it.
    train = layer.get("train")
    if isinstance(train, dict) and isinstance(out.get("train"), dict):
        if "kimg" in train and "epochs" in train and train["kimg"] is not None and train["epochs"] is not None:
            raise ConfigError("set train.kimg or train.epochs, not both")
        if train.get("kimg") is not None:
            out["train"] = {**out["train"], "epochs": None}
        if train.get("epochs") is not None:
            out["train"] = {**out["train"], "kimg": None}
    return out


def describe_layer(layer: dict[str, Any], prefix: str = "") -> list[str]:
    """{"objective": {"loss": "hinge"}} -> ["objective.loss=hinge"] (the --set form of a config layer)."""
    out = []
    for k, v in layer.items():
        if isinstance(v, dict):
            out += describe_layer(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}={json.dumps(v) if not isinstance(v, str) else v}")
    return out


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a resolved config (e.g. from a run directory) without re-applying layers."""
    return validate(from_dict(Config, data))


def replace(cfg: Any, **changes: Any) -> Any:
    return dataclasses.replace(cfg, **changes)


def total_kimg(cfg: Config, n_train: int) -> float:
    if cfg.train.kimg is not None:
        return cfg.train.kimg
    assert cfg.train.epochs is not None
    return cfg.train.epochs * n_train / 1000.0
