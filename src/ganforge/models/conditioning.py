"""How a label enters G and D: small composable pieces that a variant picks and the architectures use.

A variant chooses one piece for each network (``Conditioning(g=..., d=...)``); an architecture asks the piece
for the layers it needs and never branches on which piece it got. A piece that does not use a hook returns
``None`` (no layer) or the plain layer (plain batch norm).

G pieces:  ``NoLabel``        unconditional
           ``LabelConcat``    a learned embedding concatenated to z (cGAN, Mirza & Osindero 2014)
           ``ConditionalBN``  per-class gain and bias in G's batch norms (de Vries et al. 2017; Miyato & Koyama 2018)
           ``LabelConcatCBN`` both: the embedding joined to z and per-class gains and biases (BigGAN-deep's G)
D pieces:  ``NoLabel``        unconditional
           ``LabelInput``     the label joins D's input: an embedded H x W map stacked as a channel of an image,
                              or an embedding concatenated to a flat input (the cGAN of the studies)
           ``AuxClassifier``  D predicts the class with a second head (AC-GAN, Odena et al. 2017)
           ``Projection``     embed(y) . phi(x) added to D's logit (Miyato & Koyama 2018)

Each piece is registered by name (``G_LABELS``, ``D_LABELS``); the name is what ``generator.json`` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ganforge.registry import Registry


class CondBatchNorm(nn.Module):
    """Conditional batch norm (de Vries et al. 2017): BN without affine, then per-class gamma, beta.

    The per-class gains start at N(1, ``init_std``) and the biases at N(0, ``init_std``), 0.5 by default, not at 1
    and 0: with equal values, and no other route for the label, G starts out drawing the same image for every
    label, and the label has to break that symmetry through D's gradients alone (BigGAN's gains, linear maps of a
    class embedding, also differ by class from the start).
    Measured on MNIST (issue 11, seed 0): the domain classifier's accuracy on requested classes after 30 kimg on
    the DCGAN pair with the R1 projection D is 0.15 with equal starts and 0.53 with these (a spread of 1.0: 0.63,
    but on the ResNet pair one class then collapsed for its first 40 kimg); after 40 kimg on the ResNet pair at
    the paper's lr, 0.14 and 0.23.
    """

    def __init__(self, num_features: int, num_classes: int, init_std: float = 0.5) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gamma = nn.Embedding(num_classes, num_features)
        self.beta = nn.Embedding(num_classes, num_features)
        nn.init.normal_(self.gamma.weight, 1.0, init_std)  # [K, C]: a different start for each class if init_std > 0
        nn.init.normal_(self.beta.weight, 0.0, init_std)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        flat = x.dim() == 2
        h = self.bn(x[:, :, None, None] if flat else x)
        h = h * self.gamma(c)[:, :, None, None] + self.beta(c)[:, :, None, None]  # [N, C, H, W]
        return h[:, :, 0, 0] if flat else h


class ProjectionEmbedding(nn.Embedding):
    """Projection discriminator's class embedding: ``proj(c, feat) = embed(c) . feat`` [N]."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__(num_classes, features)
        nn.init.xavier_uniform_(self.weight)  # N(0, 1) rows would dwarf psi(phi(x)) at F in the thousands

    def project(self, c: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        return (self(c) * feat).sum(1)  # [N]


@dataclass(frozen=True)
class LabelPiece:
    """Base of every piece: no label. Subclasses override the hooks they use."""

    name: ClassVar[str] = "none"
    carried_by_norm: ClassVar[bool] = False  # the label reaches G through its batch norms: a G needs them
    scores_pairs: ClassVar[bool] = False  # D scores an (image, label) pair, so it can score a mismatched one

    @property
    def conditional(self) -> bool:
        return self.name != "none"

    # G hooks
    def embedding(self, num_classes: int, dim: int) -> nn.Embedding | None:
        """An embedding whose output is concatenated to z (``dim`` values), or None."""
        return None

    def norm(self, features: int, num_classes: int, flat: bool = False) -> nn.Module:
        """G's batch norm after a layer of ``features`` channels (``flat``: a fully connected layer)."""
        return nn.BatchNorm1d(features) if flat else nn.BatchNorm2d(features)

    # D hooks
    def input_embedding(self, num_classes: int, size: int) -> nn.Embedding | None:
        """An embedding of ``size`` values joined to D's input (an H*W map or a vector), or None."""
        return None

    def aux_head(self, features: int, num_classes: int) -> nn.Linear | None:
        """A head of class logits on D's penultimate ``features``, or None."""
        return None

    def projection(self, features: int, num_classes: int) -> ProjectionEmbedding | None:
        """A class embedding projected onto D's penultimate features, or None."""
        return None


G_LABELS: Registry[LabelPiece] = Registry("G label piece")
D_LABELS: Registry[LabelPiece] = Registry("D label piece")


@dataclass(frozen=True)
class NoLabel(LabelPiece):
    """No label: an unconditional network."""

    name: ClassVar[str] = "none"


@dataclass(frozen=True)
class LabelConcat(LabelPiece):
    """G: a learned label embedding concatenated to z (cGAN)."""

    name: ClassVar[str] = "concat"

    def embedding(self, num_classes: int, dim: int) -> nn.Embedding:
        return nn.Embedding(num_classes, dim)


@dataclass(frozen=True)
class ConditionalBN(LabelPiece):
    """G: per-class gain and bias in every batch norm (conditional batch norm)."""

    name: ClassVar[str] = "cbn"
    carried_by_norm: ClassVar[bool] = True
    init_std: float = 0.5  # the per-class gains' and biases' spread at the start (CondBatchNorm)

    def norm(self, features: int, num_classes: int, flat: bool = False) -> nn.Module:
        return CondBatchNorm(features, num_classes, self.init_std)


@dataclass(frozen=True)
class LabelConcatCBN(LabelConcat, ConditionalBN):
    """G: a label embedding concatenated to z and per-class gain and bias in every batch norm (BigGAN-deep).

    BigGAN-deep (Brock et al. 2019) feeds the class embedding both to G's first layer, joined to z, and to every
    conditional batch norm. The embedded label already makes G's output differ by class from the first step, so the
    per-class gains start at 1 and the biases at 0 (``init_std`` 0), the plain batch norm's start: measured on MNIST
    (issue 11, seed 0, 200 kimg, projection D with R1), FID 0.915 against 1.003 with ``ConditionalBN``'s spread.
    """

    name: ClassVar[str] = "concat-cbn"
    init_std: float = 0.0  # LabelConcat's embedding hook and ConditionalBN's norm hook, both inherited


@dataclass(frozen=True)
class LabelInput(LabelPiece):
    """D: the label joins the input (an embedded H x W map channel, or a concatenated embedding)."""

    name: ClassVar[str] = "concat"
    scores_pairs: ClassVar[bool] = True

    def input_embedding(self, num_classes: int, size: int) -> nn.Embedding:
        return nn.Embedding(num_classes, size)


@dataclass(frozen=True)
class AuxClassifier(LabelPiece):
    """D: a second head predicts the class (AC-GAN)."""

    name: ClassVar[str] = "aux"

    def aux_head(self, features: int, num_classes: int) -> nn.Linear:
        return nn.Linear(features, num_classes)


@dataclass(frozen=True)
class Projection(LabelPiece):
    """D: embed(y) . phi(x) is added to the logit (projection discriminator)."""

    name: ClassVar[str] = "projection"
    scores_pairs: ClassVar[bool] = True

    def projection(self, features: int, num_classes: int) -> ProjectionEmbedding:
        return ProjectionEmbedding(num_classes, features)


def _register(registry: Registry[LabelPiece], *pieces: LabelPiece) -> None:
    for piece in pieces:
        registry.add(piece.name, piece, help=(type(piece).__doc__ or "").strip())


_register(G_LABELS, NoLabel(), LabelConcat(), ConditionalBN(), LabelConcatCBN())
_register(D_LABELS, NoLabel(), LabelInput(), AuxClassifier(), Projection())


@dataclass(frozen=True)
class Conditioning:
    """How labels enter G and D: one piece each, chosen by the variant, never by the architecture."""

    g: LabelPiece = field(default_factory=NoLabel)
    d: LabelPiece = field(default_factory=NoLabel)

    @property
    def conditional(self) -> bool:
        return self.g.conditional or self.d.conditional

    def to_dict(self) -> dict[str, str]:
        return {"g": self.g.name, "d": self.d.name}

    @classmethod
    def named(cls, g: str = "none", d: str = "none") -> Conditioning:
        """``Conditioning.named("concat", "aux")``: the registered pieces of those names."""
        return cls(g=G_LABELS.get(g), d=D_LABELS.get(d))

    @classmethod
    def from_dict(cls, names: dict[str, str]) -> Conditioning:
        return cls.named(names.get("g", "none"), names.get("d", "none"))
