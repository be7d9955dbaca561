"""The terms of the SIDHCNN objective (eq. 5 as corrected in SPEC §2), one ``nn.Module`` each.

Notation. Features are stored **row-major**: F^P and F^M are float tensors of
shape (V, l), row i being the paper's column F_{*,i}. B is (V, l) with values ±1.
With Ω_ij = ½ ⟨x_i, y_j⟩ and S_ij = [L_i == L_j]::

    ℓ(Ω, S) = softplus(Ω) − S·Ω          (−log of the sigmoid likelihood, eq. 2–4)
    IRSC    = Σ_ij ℓ(½⟨F^P_i, F^M_j⟩, S_ij)
    IASC    = Σ_ij ℓ(½⟨F^P_i, F^P_j⟩, S_ij) + Σ_ij ℓ(½⟨F^M_i, F^M_j⟩, S_ij)
    BQC     = ‖F^P − B‖²_F + ‖F^M − B‖²_F
    FDC     = ‖Σ_i F^P_i‖² + ‖Σ_i F^M_i‖²
    E       = IRSC + α·IASC + β·BQC + γ·FDC

With ``TrainConfig.pair_weighting="balanced"`` (the default on instance data) each ℓ_ij of
IRSC and IASC is scaled by the balanced weight of its pair (similar or dissimilar; see
:mod:`.pairwise`); the closed form below is the unweighted one.

The paper prints log(1 + Ω); the sigmoid likelihood gives softplus(Ω). The
gradient with respect to one PAN row is (SPEC §2)::

    ∂E/∂F^P_i = ½ Σ_j (σ(Ω^U_ij) − S_ij) F^M_j + α Σ_j (σ(Ω^P_ij) − S_ij) F^P_j
                + 2β (F^P_i − B_i) + 2γ Σ_j F^P_j

and symmetrically for F^M. ``tests/training/test_losses.py`` checks autograd on
:func:`sidhcnn_objective` against this closed form.

Mini-batch form (Algorithm 1). A PAN step holds a batch of fresh features f
(n, l) for rows ``index`` and the stored matrices (detached; the MUL net is
fixed): a :class:`Batch`. Every term's :meth:`LossTerm.batch_loss` is built so
that its autograd gradient with respect to f_i is *exactly* that term's share
of the row gradient above:

- IRSC: Σ_{i∈batch} Σ_j ℓ(½⟨f_i, F^M_j⟩) — f_i appears in row i only.
- IASC: 2 · Σ_{i∈batch} Σ_j ℓ(½⟨f_i, sg(F^P_j)⟩) — f_i appears in row i *and*
  column i of the symmetric sum; the factor 2 restores the second half that a
  detached reference (``sg``) drops.
- BQC: ‖f − B[index]‖²; FDC: ‖Σ_{j∉batch} F^P_j + Σ_i f_i‖².

The pairwise sums stream through :func:`~hashsearch.training.pairwise.pairwise_nll`
(S never V×V).

**Adding a term.** Subclass :class:`LossTerm` (a ``name``, the ``weight`` field of
:class:`~hashsearch.training.config.TrainConfig` that scales it, ``batch_loss``,
and how its value is reported), decorate it with :func:`register_term`, and add
that weight field to ``TrainConfig`` with ``metadata={"loss_weight": True}``. The
objective (:mod:`.objective`), the trainer's progress bar, its log line and
:class:`~hashsearch.training.trainer.EpochStats` iterate over the registered
terms; nothing else changes.

Imports :mod:`.pairwise` and torch only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from .pairwise import DEFAULT_CHUNK, check_features, pairwise_nll, similarity

__all__ = [
    "TERMS",
    "BQCLoss",
    "Batch",
    "FDCLoss",
    "IASCLoss",
    "IRSCLoss",
    "LossTerm",
    "closed_form_gradient",
    "pairwise_nll",
    "register_term",
    "sidhcnn_objective",
    "similarity",
]


@dataclass(frozen=True)
class Batch:
    """One source's mini-batch step as the loss terms see it (rows are samples).

    Attributes:
        features: float (n, l) fresh output of the stepping network for the batch.
        labels: int (n,) their labels.
        index: int (n,) their rows in the training set (distinct).
        own: float (V, l) stored features of the same source, batch rows already
            overwritten with the fresh values (constant: detached).
        other: float (V, l) stored features of the other source (constant).
        all_labels: int (V,) labels of every training row.
        codes: ±1 (V, l) the epoch's B.
    """

    features: Tensor
    labels: Tensor
    index: Tensor
    own: Tensor
    other: Tensor
    all_labels: Tensor
    codes: Tensor

    @property
    def n(self) -> int:
        """Rows in the batch."""
        return int(self.features.shape[0])

    @property
    def v(self) -> int:
        """Rows in the training set."""
        return int(self.own.shape[0])

    @property
    def bits(self) -> int:
        """Code length l."""
        return int(self.features.shape[1])

    @property
    def pairs(self) -> float:
        """n·V, the pairs a pairwise term of the batch sums over."""
        return float(self.n) * float(self.v)


class LossTerm(nn.Module):
    """One weighted term of the training objective.

    Class attributes a term sets:

    - ``name``: its key in :data:`TERMS`, the progress bar, the log and
      :class:`~hashsearch.training.trainer.EpochStats` (e.g. "iasc").
    - ``weight``: the :class:`~hashsearch.training.config.TrainConfig` field holding its
      weight (e.g. "alpha"), or None for a fixed weight of 1 (IRSC, the anchor of eq. 5).
    - ``fmt``: format spec of its value in the progress bar and the log.
    - ``skip_when_unweighted``: True for a costly term that is not computed at all when
      its weight is 0 (it is then reported as 0.0).

    Args:
        fused: use the fused, chunked pairwise kernel (pairwise terms only).
        chunk: reference rows per chunk of that kernel.
        balanced: pairwise terms only: the balanced pair weights of
            :func:`~hashsearch.training.pairwise.pair_weights` (similar and dissimilar
            pairs each carry half of the term; ``TrainConfig.pair_weighting``).
    """

    name: ClassVar[str] = ""
    weight: ClassVar[str | None] = None
    fmt: ClassVar[str] = ".4f"
    skip_when_unweighted: ClassVar[bool] = False

    def __init__(self, *, fused: bool = True, chunk: int = DEFAULT_CHUNK, balanced: bool = False) -> None:
        super().__init__()
        self.fused = fused
        self.chunk = chunk
        self.balanced = balanced

    def batch_loss(self, batch: Batch) -> Tensor:
        """The term's unweighted sum for the batch rows; its gradient w.r.t. ``batch.features``
        is the term's share of ∂E/∂F for those rows. Returns a scalar tensor."""
        raise NotImplementedError

    def count(self, batch: Batch) -> float:
        """What ``normalization="per_term"`` divides this term by (default: the n·V pairs)."""
        return batch.pairs

    def report(self, value: float, batch: Batch) -> float:
        """The value shown for this term, from its batch sum (default: mean per pair)."""
        return value / batch.pairs


#: The registered loss terms by name, in the order of eq. (5) (and of the progress bar).
TERMS: dict[str, type[LossTerm]] = {}


def register_term(cls: type[LossTerm]) -> type[LossTerm]:
    """Class decorator: add a :class:`LossTerm` subclass to :data:`TERMS` under ``cls.name``.

    Raises:
        TypeError: ``cls`` is not a LossTerm subclass.
        ValueError: no name, a name already registered, or a weight that is not a field name.
    """
    if not (isinstance(cls, type) and issubclass(cls, LossTerm)):
        raise TypeError(f"register_term expects a LossTerm subclass, got {cls!r}")
    if not cls.name or not cls.name.isidentifier() or cls.name == "loss":
        raise ValueError(f"{cls.__name__}.name must be an identifier other than 'loss', got {cls.name!r}")
    if cls.name in TERMS:
        raise ValueError(f"a loss term named {cls.name!r} is already registered ({TERMS[cls.name].__name__})")
    if cls.weight is not None and not cls.weight.isidentifier():
        raise ValueError(f"{cls.__name__}.weight must be a TrainConfig field name or None, got {cls.weight!r}")
    TERMS[cls.name] = cls
    return cls


@register_term
class IRSCLoss(LossTerm):
    """Inter-source semantic constraint: Σ_ij ℓ(½⟨F^P_i, F^M_j⟩, S_ij) (weight 1).

    ``forward(pan, ms, pan_labels, ms_labels)``: pan float (n, l), ms float (m, l),
    labels int (n,) / (m,). Returns the scalar sum (a whole IRSC when given all
    V rows of both; a batch's rows when given a batch of one and all of the other).
    Reported per pair: mean ℓ over the batch's n·V pairs.
    """

    name = "irsc"
    weight = None

    def forward(self, pan: Tensor, ms: Tensor, pan_labels: Tensor, ms_labels: Tensor) -> Tensor:
        return pairwise_nll(pan, ms, pan_labels, ms_labels, fused=self.fused, chunk=self.chunk,
                            balanced=self.balanced)

    def batch_loss(self, batch: Batch) -> Tensor:
        return self(batch.features, batch.other, batch.labels, batch.all_labels)


@register_term
class IASCLoss(LossTerm):
    """Intra-source semantic constraint of one source: Σ_ij ℓ(½⟨F_i, F_j⟩, S_ij) (weight α).

    ``forward(features, labels)`` — features float (V, l), labels int (V,): the
    full symmetric sum over all pairs of ``features``.

    ``forward(features, labels, reference, reference_labels)`` — a mini-batch:
    features (n, l) are fresh rows, reference (V, l) the stored matrix of the same
    source (detached here). Returns 2·Σ_{i∈batch} Σ_j ℓ(½⟨f_i, sg(r_j)⟩), whose
    gradient w.r.t. f_i equals ∂IASC/∂F_i = Σ_j (σ(Ω_ij) − S_ij) F_j exactly
    (see the module docstring). Its value is twice the batch rows' share of the sum;
    it is reported per pair (mean ℓ over the n·V pairs), and not computed when α = 0.
    """

    name = "iasc"
    weight = "alpha"
    skip_when_unweighted = True

    def forward(
        self,
        features: Tensor,
        labels: Tensor,
        reference: Tensor | None = None,
        reference_labels: Tensor | None = None,
    ) -> Tensor:
        if reference is None:
            return pairwise_nll(features, features, labels, labels, fused=self.fused, chunk=self.chunk,
                                balanced=self.balanced)
        if reference_labels is None:
            raise ValueError("reference_labels are required with a reference matrix")
        return 2.0 * pairwise_nll(
            features, reference.detach(), labels, reference_labels, fused=self.fused, chunk=self.chunk,
            balanced=self.balanced,
        )

    def batch_loss(self, batch: Batch) -> Tensor:
        return self(batch.features, batch.labels, batch.own, batch.all_labels)

    def report(self, value: float, batch: Batch) -> float:
        return value / (2.0 * batch.pairs)


@register_term
class BQCLoss(LossTerm):
    """Binary quantisation constraint: ‖F − B‖²_F (weight β).

    ``forward(features, codes)``: features float (n, l), codes ±1 (n, l) (any real
    dtype; converted to the features' dtype). Returns a scalar. Reported as the
    mean squared quantisation error per bit of the batch rows; ``normalization=
    "per_term"`` divides it by its n·l elements.
    """

    name = "bqc"
    weight = "beta"

    def forward(self, features: Tensor, codes: Tensor) -> Tensor:
        features = check_features("features", features)
        if tuple(codes.shape) != tuple(features.shape):
            raise ValueError(f"codes must have the features' shape {tuple(features.shape)}, got {tuple(codes.shape)}")
        return (features - codes.to(features.dtype)).pow(2).sum()

    def batch_loss(self, batch: Batch) -> Tensor:
        return self(batch.features, batch.codes.index_select(0, batch.index))

    def count(self, batch: Batch) -> float:
        return float(batch.n * batch.bits)

    def report(self, value: float, batch: Batch) -> float:
        return value / (batch.n * batch.bits)


@register_term
class FDCLoss(LossTerm):
    """Feature distribution (bit balance) constraint: ‖Σ_i F_i‖² (the paper's ‖F·1‖², weight γ).

    ``forward(features, rest_sum=None)``: features float (n, l); ``rest_sum`` float
    (l,) is the (constant) sum of the rows not in ``features`` — give it in a
    mini-batch step so the balance is over the whole training set. Returns a scalar.
    Reported as the mean over bits of the squared column mean of the source's
    stored features (0 when every bit is balanced in sign-weighted magnitude).
    """

    name = "fdc"
    weight = "gamma"
    fmt = ".2e"

    def forward(self, features: Tensor, rest_sum: Tensor | None = None) -> Tensor:
        features = check_features("features", features)
        total = features.sum(dim=0)
        if rest_sum is not None:
            total = total + rest_sum.detach().to(features.dtype)
        return total.pow(2).sum()

    def batch_loss(self, batch: Batch) -> Tensor:
        rest = batch.own.sum(dim=0) - batch.own.index_select(0, batch.index).sum(dim=0)
        return self(batch.features, rest)

    def report(self, value: float, batch: Batch) -> float:
        return value / (float(batch.v) * float(batch.v) * batch.bits)


def sidhcnn_objective(
    pan: Tensor,
    ms: Tensor,
    labels: Tensor,
    codes: Tensor,
    alpha: float = 1.0,
    beta: float = 0.1,
    gamma: float = 1.0,
    *,
    fused: bool = True,
) -> Tensor:
    """The full objective E of eq. (5) (corrected) over a whole (small) training set.

    Args:
        pan: float (V, l) F^P (row i = sample i).
        ms: float (V, l) F^M.
        labels: int (V,).
        codes: ±1 (V, l) B.
        alpha, beta, gamma: constraint weights.
        fused: see :func:`pairwise_nll`.

    Returns:
        Scalar E (unnormalised), differentiable w.r.t. ``pan`` and ``ms``.
    """
    irsc = IRSCLoss(fused=fused)(pan, ms, labels, labels)
    iasc = IASCLoss(fused=fused)
    bqc, fdc = BQCLoss(), FDCLoss()
    return (irsc + alpha * (iasc(pan, labels) + iasc(ms, labels))
            + beta * (bqc(pan, codes) + bqc(ms, codes)) + gamma * (fdc(pan) + fdc(ms)))


def closed_form_gradient(
    pan: Tensor, ms: Tensor, labels: Tensor, codes: Tensor, alpha: float, beta: float, gamma: float
) -> tuple[Tensor, Tensor]:
    """∂E/∂F^P and ∂E/∂F^M in closed form (SPEC §2), both (V, l); O(V²) memory.

    The reference the autograd gradient of :func:`sidhcnn_objective` is tested against.
    """
    s = similarity(labels, labels, pan.dtype)
    sig_u = torch.sigmoid(0.5 * pan @ ms.t())
    sig_p = torch.sigmoid(0.5 * pan @ pan.t())
    sig_m = torch.sigmoid(0.5 * ms @ ms.t())
    codes = codes.to(pan.dtype)
    g_pan = (0.5 * (sig_u - s) @ ms + alpha * (sig_p - s) @ pan
             + 2 * beta * (pan - codes) + 2 * gamma * pan.sum(0, keepdim=True))
    g_ms = (0.5 * (sig_u - s).t() @ pan + alpha * (sig_m - s) @ ms
            + 2 * beta * (ms - codes) + 2 * gamma * ms.sum(0, keepdim=True))
    return g_pan, g_ms
