"""Every shipped preset, run briefly on CPU with a fixed seed, exports a known generator (bit for bit).

The hashes in ``tests/data/preset_hashes.json`` pin the numerics of every preset's whole pipeline (data,
networks, initialisation, objective, phases, RNG draw order, EMA, export). A restructuring must keep them;
a deliberate change of a recipe or of the numerics updates the file in the same commit and says why:

    python tests/numerics/test_preset_hashes.py --write [CASE ...]   # all cases, or only those named
    python tests/numerics/test_preset_hashes.py --pin-here [CASE ...]  # numerics unchanged: add this CPU's table

The hashes are the same on any x86-64 CPU with AVX2: they are computed in a subprocess that pins the kernels
(``PINNED``): ATen's vectorised kernels at AVX2, MKL on its AVX2 reproducible branch (``MKL_CBWR``), numpy's
OpenBLAS at its Haswell (AVX2) kernels and numpy's own loops at x86-64-v3 (AVX2; the brain phantom is rendered
with numpy), one thread, and oneDNN off (its convolutions pick an ISA and a blocking from the CPU they run on).
Without the pinning, an AVX-512 machine and an AVX2 one train the same preset to generators that differ in the
last bits (found when brain-cwgan-gp's hash, recorded on an AVX2 machine, changed on an AVX-512 one).

MKL honours its AVX2 branch on Intel CPUs only: on other CPUs it runs its AUTO branch instead (oneMKL developer
guide, "Getting Started with Conditional Numerical Reproducibility"), so the file holds one table per branch,
"intel" and "other" (every hash recorded on an AMD EPYC differed on an Intel Xeon under the same pinning). A
``--write`` records this machine's table and drops the rewritten cases from the other one, whose machine must
record them again (``--pin-here``, which leaves the other table alone); until it does, those cases are skipped
there, named, and checked on this kind of CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.config import preset_names
from ganforge.experiments.runner import start_run
from ganforge.presets import load_config

HASHES = Path(__file__).resolve().parents[1] / "data" / "preset_hashes.json"
# Short enough for CI (about a second per preset), long enough for several D and G steps, an EMA update,
# lazy regularisation (r1_interval) and a grid.
# fp32 always: train.amp=auto (the demo) is bf16 only on CPUs with AVX512-BF16/AMX, so its hash would depend on the
# machine; tests/unit/test_precision.py checks the bf16 step against the fp32 one instead.
# The health check is off: it leaves training untouched (tests/unit/test_health.py) and the exported generator is
# the last one, not the kept best, so it changes no hash; it cost ~15 s of the brain presets' 20.
OVERRIDES = ["train.kimg=0.4", "train.tick_kimg=0.4", "train.device=cpu", "train.seed=3", "eval.every_ticks=0",
             "train.amp=off", "health.every_ticks=0", "health.keep_best=off"]
# Options and variants that no preset uses on its own, pinned on top of a preset: name -> (preset, overrides).
RECIPES: dict[str, tuple[str, list[str]]] = {
    "dcgan+projection": ("mnist-dcgan", ["variant=projection", "objective.n_critic=2"]),
    "mlp+projection": ("mnist-mlp", ["variant=projection", "objective.n_critic=2"]),
    "mlp+acgan": ("mnist-mlp", ["variant=acgan"]),
    "mlp+cwgan-gp": ("mnist-mlp", ["variant=cwgan-gp", "objective.n_critic=2"]),
    "dcgan+diffaugment": ("mnist-cgan", ["augment.diffaugment=color,translation,cutout"]),
    "dcgan+diffaugment-image-draws": ("mnist-cgan", ["augment.diffaugment=color,translation,cutout",
                                                     "augment.diffaugment_draw=image"]),
    "dcgan+classic-augment": ("mnist-dcgan", ["augment.rotation=10", "augment.shift=0.1", "augment.zoom=0.1"]),
    "dcgan+lazy-r1": ("mnist-dcgan", ["objective.r1_gamma=1.0", "objective.r1_interval=2"]),
    "dcgan+hinge+sn": ("mnist-dcgan", ["objective.loss=hinge", "model.spectral_norm_d=true",
                                       "model.spectral_norm_g=true"]),
    "dcgan+ls+smoothing": ("mnist-dcgan", ["objective.loss=ls", "objective.label_smoothing=0.1"]),
    "mlp+minimax+feature-matching": ("mnist-mlp", ["objective.loss=minimax", "objective.feature_matching=true"]),
    # AC-GAN as the paper trains it on the DCGAN pair (D's classifier also on generated images), with SN in D
    "dcgan+acgan+paper-fake-aux": ("mnist-dcgan", ["variant=acgan", "model.d_batchnorm=[false]",
                                                  "model.spectral_norm_d=true", "train.ema_kimg=5",
                                                  "health.every_ticks=1", "health.keep_best=fid"]),
    "dcgan+sn+mbstd": ("mnist-dcgan", ["model.d_batchnorm=[false]", "model.spectral_norm_d=true",
                                       "model.d_mbstd=true"]),
    "dcgan+cgan+sn+class-mbstd": ("mnist-cgan", ["model.d_batchnorm=[false]", "model.spectral_norm_d=true",
                                                "model.d_mbstd=true"]),
    "cogan+untied": ("mnist-cogan", ["family.tie_weights=false"]),
    # InfoGAN as the paper trains it: BCE, the DCGAN pair with batch norm in D, information weight 1, 4 codes
    "dcgan+infogan": ("mnist-dcgan", ["variant=infogan", "family.codes=4"]),
    # InfoGAN's learned code prior, on from the second half of the 0.4 kimg (the preset's starts at 50 kimg)
    "wgan-gp+infogan+learned-prior": ("mnist-infogan", ["family.prior_kimg=0.2"]),
    # top-k training with its fraction moving within the 0.4 kimg (0.1 epoch of the 4,000 digits: 1 -> 0.63)
    "wgan-gp+topk": ("mnist-wgan-gp", ["objective.topk=0.5", "objective.topk_decay=0.01"]),
    # PacGAN: D scores packs of 2 digits, with R1 (DCGAN) and with the gradient penalty per pack (WGAN-GP)
    "dcgan+pacgan": ("mnist-dcgan", ["model.d_pack=2", "model.d_batchnorm=[false]", "objective.r1_gamma=1.0",
                                     "objective.r1_interval=2"]),
    "wgan-gp+pacgan": ("mnist-wgan-gp", ["model.d_pack=2"]),
    "resnet+cgan+mbstd": ("mnist-cgan", ["model.arch=resnet", "model.d_batchnorm=[false]", "model.g_channels=32",
                                         "model.d_channels=16", "model.d_mbstd=true"]),
}
# The high-resolution presets (issue 13) take minutes to hours per kimg on a CPU: pinned on a short run, and the GPU
# study presets also at 32 px with small networks (their recipe: family, loss, options, schedule; not their size).
SMALL_NETS = ["data.resolution=32", "model.g_channels=16", "model.d_channels=16", "model.z_dim=16",
              "model.embed_dim=8", "family.channel_base=256"]
SG2_SMALL = SMALL_NETS + ["family.w_dim=16"]
SHORTER: dict[str, list[str]] = {
    # Presets whose step is too costly for 0.4 kimg in CI, pinned over fewer images (still several G and D steps).
    "brain-cyclegan": ["train.kimg=0.08", "train.tick_kimg=0.08"],
    "brain-spade": ["train.kimg=0.08", "train.tick_kimg=0.08"],
    "digits-dtn": ["family.pretrain_steps=20"],  # f's 600 pretraining steps cost more than the 0.4 kimg pinned
    "brain-stylegan2-ada": ["train.kimg=0.064", "train.tick_kimg=0.064"],
    "brain-progan": ["train.kimg=0.1", "train.tick_kimg=0.1", "family.stage_kimg=0.032", "family.fade_kimg=0.032"],
    "brain-stylegan2-ada-128": ["train.kimg=0.064", "train.tick_kimg=0.064", *SG2_SMALL],
    "brain-stylegan2-ada-256": ["train.kimg=0.064", "train.tick_kimg=0.064", *SG2_SMALL],
    "brain-progan-256": ["train.kimg=0.1", "train.tick_kimg=0.1", "family.stage_kimg=0.032",
                         "family.fade_kimg=0.032", *SMALL_NETS],
    "afhq-cat-stylegan2-512": ["train.kimg=0.064", "train.tick_kimg=0.064", *SG2_SMALL, "train.batch_size=16",
                               "family.mapping_layers=2"],
}
CASES = {**{name: (name, SHORTER.get(name, [])) for name in preset_names()}, **RECIPES}


def pathmnist_standin(path: Path) -> Path:
    """A deterministic PathMNIST-format .npz (9 classes of random 28x28 RGB tiles) for the pathmnist presets."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 270), ("val", 9), ("test", 90)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 9).reshape(n, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return path


def folder_standin(path: Path) -> Path:
    """A deterministic image folder (8 random 40x40 RGB PNGs) for the presets that read the user's own folder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(path / f"{i}.png")
    return path


def case_sha(case: str, tmp: Path) -> str:
    preset, extra = CASES[case]
    overrides = OVERRIDES + extra
    if preset.startswith("pathmnist"):
        overrides.append(f"data.path={pathmnist_standin(tmp / 'pathmnist.npz')}")
    if preset.startswith("afhq"):
        overrides.append(f"data.path={folder_standin(tmp / 'cats')}")
    result = start_run(load_config(preset, overrides), out=str(tmp / case), progress=False, log=lambda _: None)
    return result.summary["generator_sha256"]


PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
          "OPENBLAS_CORETYPE": "Haswell", "NPY_ENABLE_CPU_FEATURES": "X86_V3"}


def mkl_branch() -> str:
    """The MKL branch whose numerics this CPU gets under ``MKL_CBWR=AVX2``: "intel", or "other" (the AUTO branch)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "other"
    return "intel" if "GenuineIntel" in cpuinfo else "other"


def recorded() -> dict[str, dict[str, str]]:
    return json.loads(HASHES.read_text())


def record(tables: dict[str, dict[str, str]], branch: str, hashes: dict[str, str], every_case: bool,
           changed: bool) -> dict[str, dict[str, str]]:
    """The tables with ``hashes`` recorded in ``branch``'s. ``every_case``: they replace that table. ``changed``
    (``--write``): the numerics changed on purpose, so the other tables' records of those cases are stale."""
    out = {name: dict(table) for name, table in tables.items()}
    if changed:
        for name, table in out.items():
            if name != branch:
                out[name] = {c: h for c, h in table.items() if c not in hashes}
    out[branch] = {**({} if every_case else out.get(branch, {})), **hashes}
    return out


def test_write_drops_stale_records_and_pin_here_keeps_the_other_table():
    tables = {"intel": {"a": "1", "b": "2"}, "other": {"a": "3", "b": "4"}}
    assert record(tables, "intel", {"a": "9"}, every_case=False, changed=True) == {
        "intel": {"a": "9", "b": "2"}, "other": {"b": "4"}}
    assert record(tables, "other", {"a": "3"}, every_case=False, changed=False) == tables
    assert record(tables, "intel", {"a": "5", "b": "6"}, every_case=True, changed=False) == {
        "intel": {"a": "5", "b": "6"}, "other": {"a": "3", "b": "4"}}
    assert tables == {"intel": {"a": "1", "b": "2"}, "other": {"a": "3", "b": "4"}}  # not modified in place


def pinned() -> bool:
    return all(os.environ.get(k) == v for k, v in PINNED.items())


def all_hashes(cases: list[str]) -> dict[str, str]:
    """The cases' generator hashes, in this process (which must have been started with ``PINNED``)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d, torch.backends.mkldnn.flags(enabled=False):
        return {c: case_sha(c, Path(d)) for c in cases}


@pytest.fixture(scope="module")
def hashes_now(tmp_path_factory) -> dict[str, str]:
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the recorded hashes are x86-64 AVX2 numerics; this CPU has no AVX2")
    out = tmp_path_factory.mktemp("hashes") / "hashes.json"
    proc = subprocess.run([sys.executable, __file__, "--out", str(out)], env={**os.environ, **PINNED},
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_preset_generator_is_bit_identical(case, hashes_now):
    tables, branch = recorded(), mkl_branch()
    expected = tables.get(branch, {})
    if case not in expected and any(case in table for table in tables.values()):
        pytest.skip(f"{case!r} was last recorded on the other MKL branch only; run python {__file__} --pin-here {case} "
                    f"on this CPU ({branch}) to pin it here too")
    assert case in expected, f"{case!r} has no recorded hash: run python {__file__} --write {case}"
    assert hashes_now[case] == expected[case], (
        f"{case}'s numerics changed; if on purpose, say why in the commit and run python {__file__} --write {case}"
    )


if __name__ == "__main__":
    if not pinned():  # the environment is read when the kernels first run: start again with it
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **PINNED})
    args = sys.argv[1:]
    out = Path(args.pop(args.index("--out") + 1)) if "--out" in args else None
    named = [a for a in args if not a.startswith("--")]
    unknown = sorted(set(named) - set(CASES))
    if unknown:
        sys.exit(f"unknown case(s) {', '.join(unknown)}; the cases are: {', '.join(sorted(CASES))}")
    hashes = all_hashes(named or sorted(CASES))
    if out is not None:
        out.write_text(json.dumps(hashes))
    if "--write" in args or "--pin-here" in args:
        tables = record(recorded(), mkl_branch(), hashes, every_case=not named, changed="--write" in args)
        HASHES.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n")
    print(json.dumps(hashes, indent=1, sort_keys=True))
