"""The exported generator: ``generator.safetensors`` (weights) + ``generator.json`` (how to build it).

``load_generator(run_dir)`` rebuilds G with its variant's ``build_generator`` from these two files alone:
no training code, no discriminator, no pickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import ganforge
from ganforge.config import Config, ModelConfig, config_from_dict, from_dict
from ganforge.errors import GanforgeError, RunDirError
from ganforge.models.conditioning import Conditioning
from ganforge.training import distributed
from ganforge.training.checkpoint import atomic_write_bytes, atomic_write_json, sha256_file, weights_problem
from ganforge.training.distributed import World
from ganforge.training.rundir import read_generator_spec
from ganforge.variants import VARIANTS

WEIGHTS, SPEC = "generator.safetensors", "generator.json"
FORMAT = "ganforge-generator/1"


def export_generator(run_dir: Path, G: nn.Module, cfg: Config, info: dict[str, Any]) -> str:
    """Write the generator files atomically; return the SHA-256 of the weights file."""
    state = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    atomic_write_bytes(run_dir / WEIGHTS, lambda f: f.write(_safetensors_bytes(state)))
    spec = {"format": FORMAT, "ganforge_version": ganforge.__version__, "config": cfg.to_dict(), **info}
    atomic_write_json(run_dir / SPEC, spec)
    return sha256_file(run_dir / WEIGHTS)


def _safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(state)


def draw_noise_seeds(G: nn.Module, n: int, gen: torch.Generator) -> torch.Tensor | None:
    """[n] seeds for the per-sample noise maps of a generator with noise inputs (``has_noise_inputs``), else None."""
    return torch.randint(0, 2**62, (n,), generator=gen) if getattr(G, "has_noise_inputs", False) else None


@dataclass
class LoadedGenerator:
    G: nn.Module
    config: Config
    shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    kind: str
    conditioning: Conditioning
    sha256: str
    spec: dict[str, Any]

    @property
    def mask_channels(self) -> int:
        """Trailing channels of each sample that are segmentation masks (0: plain images)."""
        return int(self.spec.get("mask_channels", 0))

    @property
    def conditional(self) -> bool:
        return self.conditioning.g.conditional

    @property
    def cluster_prior(self) -> list[float] | None:
        """The clusters' training frequencies when the run's labels were k-means clusters (``data.clusters``):
        such a run samples, and is evaluated, as an unconditional generator. None for the data's own labels."""
        return self.spec.get("cluster_prior")

    def check_truncation(self, psi: float) -> None:
        if psi != 1 and not getattr(self.G, "supports_truncation", False):
            raise GanforgeError(f"--truncation-psi needs a generator with a mapping network (stylegan2, cstylegan2); "
                                f"this one is {self.config.variant}. Drop --truncation-psi.")

    @torch.no_grad()
    def sample(
        self, n: int, seed: int = 0, labels: torch.Tensor | None = None, batch: int = 1024,
        device: torch.device | str = "cpu", world: World | None = None, truncation_psi: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n samples (CPU float32) and their labels. Deterministic in ``seed`` whatever ``batch`` is.

        ``world``: the ranks of ``torchrun`` (``ganforge generate/evaluate --nproc N``) each compute their share
        of the rows and every rank gets all n, the same samples one process makes.
        ``truncation_psi`` < 1 pulls each intermediate latent towards the mean (generators with a mapping network).
        Generators with noise inputs (StyleGAN2) get a seed per sample for its noise maps, drawn after z and the
        labels: each sample has its own noise, as in training, instead of one map shared by all."""
        self.check_truncation(truncation_psi)
        kwargs = {"truncation_psi": truncation_psi} if truncation_psi != 1 else {}
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.G.z_dim, generator=gen)  # all latents drawn up front: batch-size invariant
        if self.conditional and labels is None:  # uniform over classes; clusters at their training frequency
            prior = self.cluster_prior
            labels = (torch.randint(0, self.num_classes, (n,), generator=gen) if prior is None else
                      torch.multinomial(torch.tensor(prior, dtype=torch.float64), n, replacement=True, generator=gen))
        noise_seeds = draw_noise_seeds(self.G, n, gen)
        if labels is not None and not self.conditional:
            raise GanforgeError("this generator is unconditional; it cannot sample by label. Drop --label/--per-class.")
        self.G.to(device).eval()
        world = world or World()
        lo, hi = distributed.row_range(n, world)
        out = [torch.empty(0, *self.shape)]
        for i in range(lo, hi, batch):
            j = min(i + batch, hi)
            c = labels[i:j].to(device) if labels is not None else None
            noise = {} if noise_seeds is None else {"noise_seeds": noise_seeds[i:j]}
            out.append(self.G(z[i:j].to(device), c, **kwargs, **noise).float().cpu())
        return distributed.gather_rows(torch.cat(out), n, world), labels


def by_label(gen: Any) -> bool:
    """Whether ``gen`` (a LoadedGenerator, or a stand-in with its facts) is measured per class. A generator
    conditioned on k-means clusters (``data.clusters``) is not: it draws its clusters itself, at their training
    frequency, and the clusters are not the data's classes."""
    return bool(gen.conditional) and getattr(gen, "cluster_prior", None) is None


def load_generator(run_dir: Path | str) -> LoadedGenerator:
    run_dir = Path(run_dir)
    spec_path, weights_path = run_dir / SPEC, run_dir / WEIGHTS
    if not spec_path.is_file() or not weights_path.is_file():
        raise RunDirError(
            f"{str(run_dir)!r} has no exported generator ({SPEC} + {WEIGHTS}). "
            "Point at a finished ganforge run directory (training writes them at every tick)."
        )
    spec = read_generator_spec(run_dir, FORMAT)  # one line naming the file and the fault, if damaged
    try:
        cfg = config_from_dict(spec["config"])
        family = VARIANTS.get(cfg.variant)
        cond = Conditioning.from_dict(spec.get("conditioning", {}))
        shape = tuple(spec["shape"])
        G = family.build_exported(from_dict(ModelConfig, spec["config"]["model"]), spec)
    except (GanforgeError, ValueError, TypeError, KeyError, RuntimeError) as e:  # the file's content, not a bug
        raise RunDirError(f"{str(spec_path)!r} does not describe a generator ganforge can build ({e}); resume the "
                          "run to re-export it or restore the file.") from None
    load_weights(G, weights_path)
    G.eval()
    return LoadedGenerator(
        G=G, config=cfg, shape=shape, num_classes=spec["num_classes"], class_names=tuple(spec["class_names"]),
        kind=spec["kind"], conditioning=cond, sha256=sha256_file(weights_path), spec=spec,
    )


def load_weights(G: nn.Module, path: Path) -> None:
    """generator.safetensors into G, checked: readable, the right tensors, finite."""
    fix = "resume the run to re-export it (every tick rewrites it) or restore the file"
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated or garbage files
        raise RunDirError(f"{str(path)!r} is not a readable safetensors file ({type(e).__name__}); {fix}.") from None
    problem = weights_problem(state, G, "generator")
    if problem:
        raise RunDirError(f"{str(path)!r} {problem}; {fix}.")
    G.load_state_dict(state)


__all__ = ["LoadedGenerator", "export_generator", "load_generator", "save_file"]
