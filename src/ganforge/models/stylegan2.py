"""StyleGAN2 generator and discriminator (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), written from the paper for square power-of-two images of 8..1024 px with any channel count.

G = mapping network z (+ label) -> w, then a synthesis network that starts from a learned 4x4 constant and doubles
the resolution per block. Each 3x3 convolution is *modulated* by a style s = A(w) and *demodulated* (section 2.2):

    w'_oik = s_i * w_oik                       (modulation: scale input feature map i)
    w''_oik = w'_oik / sqrt(sum_ik w'_oik^2 + eps)   (demodulation: unit expected output variance)

computed here without per-sample weights: conv(x * s, w) * d with d_o = rsqrt(sum_i s_i^2 sum_k w_oik^2 + eps),
which is the same linear map (the paper's "fused" grouped convolution is a speed choice on GPUs). Per-pixel noise
with a learned strength follows each convolution: fresh in training; in eval mode either one fixed map per layer
shared by every sample (progress grids: a function of z alone) or, given ``noise_seeds``, a map per sample drawn
from its own seed (what ``LoadedGenerator.sample`` passes for evaluation and datasets, as the reference
implementation's metrics sample with ``noise_mode='random'``: with the fixed maps every sample carries the same
fine texture). The generator is the "skip" variant of figure 7: every block
adds its own tRGB output to the upsampled image so far. D is the "residual" variant: blocks of two 3x3 convs with a
1x1 shortcut, both halves scaled by 1/sqrt(2), then ProGAN's minibatch standard deviation, a conv and two dense
layers. Resampling uses the [1, 3, 3, 1] filter: bilinear upsampling in G (the same filter applied to a
zero-stuffed map), blur-then-stride-2 in D.

Labels (conditional StyleGAN2-ADA, Karras et al. 2020b): an embedding of the label is normalised and concatenated
to the normalised z at the mapping network's input; D takes the label through its ``Conditioning`` piece
(projection onto D's last features, an auxiliary classifier, or a label map stacked on the input).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError
from ganforge.models.conditioning import Conditioning
from ganforge.models.equalized import EqConv2d, EqLinear, lrelu, minibatch_stddev, pixel_norm
from ganforge.models.layers import DOut


@dataclass(frozen=True)
class StyleGAN2Arch:
    """The numbers that shape the two networks (everything else follows the paper)."""

    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    g_channel_max: int = 512  # feature maps at resolution r: min(channel_base // r, channel_max)
    d_channel_max: int = 512
    channel_base: int = 32768
    embed_dim: int = 512  # label embedding size (conditional G)
    mbstd_group: int = 4


def check_resolution(shape: tuple[int, ...], what: str) -> int:
    """The side of a square power-of-two image shape (C, H, W) of at least 8 px, else a ConfigError."""
    if len(shape) != 3:
        raise ConfigError(f"{what} needs image data (C, H, W), not {shape}; use variant=gan for 2D points.")
    _, h, w = shape
    if h != w or h < 8 or h & (h - 1):
        raise ConfigError(
            f"{what} needs square images whose side is a power of two from 8 up (32..512 for the "
            f"studies), got {h}x{w}. Set data.resolution=64 (or 32, 128, 256, 512)."
        )
    return h


def channels_at(res: int, base: int, most: int) -> int:
    return max(1, min(base // res, most))


class FIRDown(nn.Module):
    """Blur with the separable [1, 3, 3, 1] / 8 filter, keep every second pixel: [N, C, H, W] -> [N, C, H/2, W/2]."""

    def __init__(self) -> None:
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / k.sum() ** 2)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(c, 1, 4, 4)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, stride=2, groups=c)


def fir_up(x: torch.Tensor) -> torch.Tensor:
    """2x upsampling; bilinear interpolation is the [1, 3, 3, 1] / 4 filter on the zero-stuffed map (edges clamped)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


# ---- generator ----------------------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ label c [N]) -> w [N, w_dim]: normalise, concatenate, ``layers`` dense layers at lr x 0.01."""

    def __init__(self, arch: StyleGAN2Arch, num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        self.embed = cond.g.embedding(num_classes, arch.embed_dim)  # nn.Embedding or None (unconditional)
        features = arch.z_dim + (arch.embed_dim if self.embed is not None else 0)
        self.layers = nn.ModuleList()
        for _ in range(arch.mapping_layers):
            self.layers.append(EqLinear(features, arch.w_dim, lr_mul=0.01))
            features = arch.w_dim
        # The running mean of w: the centre that truncation pulls towards (section "truncation trick" of StyleGAN).
        self.register_buffer("w_avg", torch.zeros(arch.w_dim))

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0, update_w_avg: bool = False
    ) -> torch.Tensor:
        x = pixel_norm(z)  # [N, z_dim]
        if self.embed is not None:
            x = torch.cat([x, pixel_norm(self.embed(c))], dim=1)  # [N, z_dim + embed_dim]
        for layer in self.layers:
            x = lrelu(layer(x))  # [N, w_dim]
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.lerp_(x.detach().float().mean(0), 1 - 0.995)
        if truncation_psi != 1:
            x = self.w_avg.to(x.dtype).lerp(x, truncation_psi)  # w_avg + psi * (w - w_avg)
        return x


class ModulatedConv2d(nn.Module):
    """A k x k convolution whose input channels are scaled by the style A(w) and whose output is demodulated."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, w_dim: int, demodulate: bool = True) -> None:
        super().__init__()
        self.affine = EqLinear(w_dim, in_channels, bias_init=1.0)  # A: styles start at 1 (identity modulation)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel * kernel)
        self.demodulate, self.padding = demodulate, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # [N, I]
        weight = self.weight * self.weight_gain  # [O, I, k, k]
        y = F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)  # modulation: [N, O, H, W]
        if self.demodulate:
            # sum_ik (s_i w_oik)^2 = sum_i s_i^2 (sum_k w_oik^2): [N, I] @ [I, O]
            d = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8)  # [N, O]
            y = y * d[:, :, None, None]
        return y


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (after 2x upsampling if ``up``) + scaled per-pixel noise + bias, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, res: int, up: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim)
        self.up = up
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        # Fixed noise used in eval mode: samples and progress grids are then a function of z (and c) alone.
        self.register_buffer("noise_const", torch.randn(1, 1, res, res))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``noise`` [N, 1, H, W]: per-sample maps for eval mode (None: the fixed map); training draws its own."""
        if self.up:
            x = fir_up(x)
        x = self.conv(x, w)  # [N, O, H, W]
        if self.training:
            noise = torch.randn(len(x), 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        elif noise is None:
            noise = self.noise_const
        noise = noise.to(x.dtype)
        x = x + noise * self.noise_strength + self.bias[:, None, None]
        return lrelu(x)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to the output channels, not demodulated (section 2.2), + bias."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[:, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: (const 4x4 |) up-conv, conv, tRGB; the skip image is upsampled and the new tRGB added."""

    def __init__(self, in_channels: int, out_channels: int, img_channels: int, w_dim: int, res: int) -> None:
        super().__init__()
        self.first = res == 4
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, res, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, res, up=False)
        self.torgb = ToRGB(out_channels, img_channels, w_dim)
        self.num_ws = 2 if self.first else 3  # ws read: conv0 (not at 4x4), conv1, tRGB (shared with the next conv0)

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
        noise: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ws [N, num_ws, w_dim] -> (features [N, O, r, r], image so far [N, C, r, r]).

        ``noise``: eval-mode maps [N, 1, r, r] for this block's layers in order (conv0 unless at 4x4, conv1)."""
        n0, n1 = (None, None) if noise is None else ((None, noise[0]) if self.first else (noise[0], noise[1]))
        if self.first:
            x = self.const.unsqueeze(0).expand(len(ws), -1, -1, -1).to(ws.dtype)
            x = self.conv1(x, ws[:, 0], n1)
        else:
            x = self.conv1(self.conv0(x, ws[:, 0], n0), ws[:, 1], n1)
        rgb = self.torgb(x, ws[:, -1])
        img = rgb if img is None else fir_up(img) + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, arch: StyleGAN2Arch, img_channels: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.blocks = nn.ModuleList()
        in_ch = 0
        res = 4
        while res <= resolution:
            out_ch = channels_at(res, arch.channel_base, arch.g_channel_max)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, img_channels, arch.w_dim, res))
            in_ch, res = out_ch, res * 2
        self.num_ws = 2 * len(self.blocks)  # = 2 log2(resolution) - 2

    def forward(self, ws: torch.Tensor, noise_seeds: torch.Tensor | None = None) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images [N, C, R, R]. Block b reads ws[2b - 1 .. 2b + 1] (ws[0, 1] at 4x4).

        ``noise_seeds`` [N] (eval mode): sample i's noise maps are drawn from ``noise_seeds[i]`` alone."""
        eval_noise = noise_seeds is not None and len(noise_seeds) > 0 and not self.training
        noise = self.seeded_noise(noise_seeds, ws.device) if eval_noise else None
        x = img = None
        for b, block in enumerate(self.blocks):
            start = max(2 * b - 1, 0)
            maps = None if noise is None else noise[2 * b - 1 if b else 0 : 2 * b + 1]
            x, img = block(x, img, ws[:, start : start + block.num_ws], maps)
        return img

    def seeded_noise(self, seeds: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """One [N, 1, r, r] standard-normal map per noise layer (1 at 4x4, then 2 per block), row i drawn from a
        generator seeded with seeds[i]: a sample's noise does not depend on its batch or position in it."""
        sides = [4] + [r for r in (2 ** k for k in range(3, self.resolution.bit_length())) for _ in range(2)]
        rows = []
        for seed in seeds.tolist():
            gen = torch.Generator().manual_seed(int(seed))
            rows.append([torch.randn(1, r, r, generator=gen) for r in sides])
        return [torch.stack(maps).to(device) for maps in zip(*rows, strict=True)]


class StyleGAN2Generator(nn.Module):
    """G(z [N, z_dim], c [N] | None, truncation_psi) -> images [N, C, R, R]."""

    supports_truncation = True  # generate --truncation-psi
    has_noise_inputs = True  # LoadedGenerator.sample passes noise_seeds: a noise map per sample, not one shared

    def __init__(self, arch: StyleGAN2Arch, shape: tuple[int, ...], num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        if cond.g.carried_by_norm:
            raise ConfigError(
                f"StyleGAN2 has no batch norm to carry labels ({cond.g.name!r}); the label enters its "
                "mapping network. Use a variant whose G conditioning is 'concat' (cstylegan2)."
            )
        resolution = check_resolution(shape, "StyleGAN2")
        self.z_dim, self.out_shape = arch.z_dim, tuple(shape)
        self.mapping = MappingNetwork(arch, num_classes, cond)
        self.synthesis = SynthesisNetwork(arch, shape[0], resolution)
        self.num_ws = self.synthesis.num_ws

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
        noise_seeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        w = self.mapping(z, c, truncation_psi=truncation_psi)  # [N, w_dim]
        return self.synthesis(w.unsqueeze(1).expand(-1, self.num_ws, -1), noise_seeds)  # the same w for every layer


# ---- discriminator ------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """conv 3x3, (blur, stride 2) conv 3x3, plus a (blur, stride 2) 1x1 shortcut; the sum scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqConv2d(in_channels, in_channels, 3)
        self.conv1 = EqConv2d(in_channels, out_channels, 3)
        self.skip = EqConv2d(in_channels, out_channels, 1, bias=False)
        self.down = FIRDown()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(self.down(x))  # [N, O, H/2, W/2]
        x = lrelu(self.conv0(x))
        x = lrelu(self.conv1(self.down(x)))  # [N, O, H/2, W/2]
        return (x + y) * math.sqrt(0.5)


class StyleGAN2Discriminator(nn.Module):
    """D(x [N, C, R, R], c [N] | None) -> DOut(logits [N], aux logits or None, features [N, F])."""

    def __init__(self, arch: StyleGAN2Arch, shape: tuple[int, ...], num_classes: int, cond: Conditioning) -> None:
        super().__init__()
        resolution = check_resolution(shape, "StyleGAN2")
        self.res = resolution
        self.embed = cond.d.input_embedding(num_classes, resolution * resolution)  # label map as a channel, or None
        in_ch = shape[0] + (1 if self.embed is not None else 0)

        def ch(res: int) -> int:
            return channels_at(res, arch.channel_base, arch.d_channel_max)

        self.fromrgb = EqConv2d(in_ch, ch(resolution), 1)
        self.blocks = nn.Sequential(*[ResidualBlock(ch(r), ch(r // 2)) for r in _powers(resolution, 8)])
        c4 = ch(4)
        self.mbstd_group = arch.mbstd_group
        self.conv = EqConv2d(c4 + 1, c4, 3)
        self.fc = EqLinear(c4 * 16, c4)
        self.out = EqLinear(c4, 1)
        self.aux = cond.d.aux_head(c4, num_classes)  # AC-GAN class logits, or None
        self.proj = cond.d.projection(c4, num_classes)  # projection discriminator's class embedding, or None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> DOut:
        if self.embed is not None:
            x = torch.cat([x, self.embed(c).view(len(x), 1, self.res, self.res).to(x.dtype)], dim=1)
        x = lrelu(self.fromrgb(x))  # [N, ch(R), R, R]
        x = self.blocks(x)  # [N, ch(4), 4, 4]
        x = lrelu(self.conv(minibatch_stddev(x, self.mbstd_group)))
        feat = lrelu(self.fc(x.flatten(1)))  # [N, ch(4)]
        logits = self.out(feat).squeeze(1)  # [N]
        if self.proj is not None:
            logits = logits + self.proj.project(c, feat)
        return DOut(logits, self.aux(feat) if self.aux is not None else None, feat)


def _powers(high: int, low: int) -> list[int]:
    """[high, high/2, ..., low] for powers of two."""
    out = []
    while high >= low:
        out.append(high)
        high //= 2
    return out
