"""The training objective: a weighted sum of named loss terms, and what one step of it reports.

Owns :class:`WeightedLoss` (the mini-batch objective of Algorithm 1: iterates
over its terms, weights them, normalises the sum), :class:`LossTerms` (one
step's total and per-term values), :class:`SIDHCNNLoss` (eq. 5 with α, β, γ),
:data:`METHOD_TERMS` (which terms each training method uses) and
:func:`build_loss` (the objective of a :class:`~hashsearch.training.config.TrainConfig`).
The terms themselves live in :mod:`.losses` (:data:`~hashsearch.training.losses.TERMS`).

A term's weight is a field of ``TrainConfig`` (``LossTerm.weight`` names it:
IASC -> ``alpha``, BQC -> ``beta``, FDC -> ``gamma``; IRSC has the fixed weight 1).
DCMH's objective is the same machinery over a subset of the terms (no IASC), so the
trainer never imports a baseline.

Imports :mod:`.config`, :mod:`.losses` (and through it :mod:`.pairwise`) and torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from .config import TrainConfig
from .losses import TERMS, Batch, LossTerm
from .pairwise import DEFAULT_CHUNK, check_features

__all__ = [
    "METHOD_TERMS",
    "NORMALIZATIONS",
    "LossTerms",
    "SIDHCNNLoss",
    "WeightedLoss",
    "build_loss",
    "method_terms",
    "method_weights",
]

#: How a batch's weighted sum is scaled (see :class:`WeightedLoss`).
NORMALIZATIONS = ("pairs", "per_term", "none")

#: The terms of each training method's objective. None: every registered term
#: (SIDHCNN's eq. 5, and any term added to :data:`~hashsearch.training.losses.TERMS`).
METHOD_TERMS: dict[str, tuple[str, ...] | None] = {
    "sidhcnn": None,
    # DCMH (Jiang & Li, CVPR 2017): inter-source likelihood + quantisation + balance, no IASC.
    "dcmh": ("irsc", "bqc", "fdc"),
}


def method_terms(method: str) -> tuple[str, ...]:
    """Names of the terms of ``method``'s objective, in :data:`TERMS` order.

    Raises:
        ValueError: an unknown method.
    """
    if method not in METHOD_TERMS:
        raise ValueError(f"method must be one of {', '.join(METHOD_TERMS)}, got {method!r}")
    names = METHOD_TERMS[method]
    return tuple(TERMS) if names is None else tuple(n for n in TERMS if n in names)


def method_weights(method: str, weights: Mapping[str, float]) -> dict[str, float]:
    """Term weights of ``method``'s objective from weight-field values.

    Args:
        method: "sidhcnn" or "dcmh" (a key of :data:`METHOD_TERMS`).
        weights: values of ``TrainConfig`` weight fields, e.g. ``{"alpha": 1, "beta": 0.1}``;
            a field not given takes its ``TrainConfig`` default.

    Returns:
        ``{term name: weight}`` (1.0 for a term with a fixed weight), e.g.
        ``{"irsc": 1.0, "iasc": 1.0, "bqc": 0.1, "fdc": 1.0}``.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.metadata.get("loss_weight")}
    unknown = set(weights) - set(defaults)
    if unknown:
        raise ValueError(f"unknown loss weight field(s) {', '.join(sorted(unknown))}; "
                         f"TrainConfig has {', '.join(defaults)}")
    out: dict[str, float] = {}
    for name in method_terms(method):
        field = TERMS[name].weight
        if field is None:
            out[name] = 1.0
        elif field in weights:
            out[name] = float(weights[field])
        elif field in defaults:
            out[name] = float(defaults[field])  # type: ignore[arg-type]
        else:
            raise ValueError(f"the {name!r} loss term is weighted by {field!r}, which is not a TrainConfig "
                             "field marked metadata={'loss_weight': True}")
    return out


@dataclass
class LossTerms:
    """One mini-batch step's loss.

    Attributes:
        total: the scalar to backpropagate (weighted, normalised).
        values: per term, in the loss's order, the value its
            :meth:`~hashsearch.training.losses.LossTerm.report` gives (e.g. IRSC and
            IASC as mean ℓ per pair, BQC as mean squared error per bit, FDC as the
            mean squared column mean); ``terms["irsc"]`` reads one.
    """

    total: Tensor
    values: dict[str, float]

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    @property
    def names(self) -> tuple[str, ...]:
        """The terms' names."""
        return tuple(self.values)

    def as_dict(self) -> dict[str, float]:
        """``{"loss": total, <term>: value, ...}`` as floats."""
        return {"loss": float(self.total.detach()), **self.values}


class WeightedLoss(nn.Module):
    """The mini-batch objective of Algorithm 1 for one source's step: Σ_t w_t · term_t.

    Args:
        weights: ``{term name: weight >= 0}`` over :data:`~hashsearch.training.losses.TERMS`
            (e.g. :func:`method_weights`); the terms run in ``TERMS`` order.
        normalization: how the batch's weighted sum is scaled:

            - "pairs" (default): divided by n·V, the number of pairs the pairwise sums
              run over (DCMH's convention). One constant for every term, so the weights
              keep their meaning in eq. (5) and the paper's Tables IV–VII; equivalent to
              the raw sum with lr / (n·V).
            - "per_term": each term divided by its own count
              (:meth:`~hashsearch.training.losses.LossTerm.count`: n·V, but n·l for BQC) —
              i.e. "pairs" with β scaled up by V / l.
            - "none": the raw sums of eq. (5) (needs a learning rate ~1 / (n·V)).
        fused, chunk: see :func:`~hashsearch.training.pairwise.pairwise_nll`.
        balanced: the pairwise terms (IRSC, IASC) weight similar and dissimilar pairs
            so each half carries half of the term (:func:`~hashsearch.training.pairwise.pair_weights`;
            ``TrainConfig.pair_weighting="balanced"``). False: every pair weighs 1 (eq. 5).

    ``forward(features, labels, index, own, other, all_labels, codes)`` (the fields of
    :class:`~hashsearch.training.losses.Batch`):

    - features: float (n, l) fresh output of the stepping network for the batch;
    - labels: int (n,) their labels; index: int (n,) their rows in the training
      set (distinct);
    - own: float (V, l) stored features of the same source (batch rows already
      overwritten with the fresh values; treated as constant);
    - other: float (V, l) stored features of the other source (constant);
    - all_labels: int (V,); codes: ±1 (V, l), the current B.

    Returns :class:`LossTerms`; ``total``'s gradient w.r.t. ``features`` is the
    closed-form row gradient of the weighted objective divided by the normalisation.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        *,
        normalization: str = "pairs",
        fused: bool = True,
        chunk: int = DEFAULT_CHUNK,
        balanced: bool = False,
    ) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be 'pairs', 'per_term' or 'none', got {normalization!r}")
        unknown = [n for n in weights if n not in TERMS]
        if unknown:
            raise ValueError(f"unknown loss term(s) {', '.join(unknown)}; registered: {', '.join(TERMS)}")
        if not weights:
            raise ValueError("the loss needs at least one term")
        for name, w in weights.items():
            if not float(w) >= 0:
                raise ValueError(f"the weight of {name!r} must be >= 0, got {w!r}")
        self.normalization = normalization
        self.balanced = bool(balanced)
        order = [n for n in TERMS if n in weights]
        self.weights: dict[str, float] = {n: float(weights[n]) for n in order}
        self.terms = nn.ModuleDict({n: TERMS[n](fused=fused, chunk=chunk, balanced=self.balanced) for n in order})

    @property
    def names(self) -> tuple[str, ...]:
        """The terms' names, in the order they are computed and shown."""
        return tuple(self.weights)

    def term(self, name: str) -> LossTerm:
        """The term module called ``name``."""
        term = self.terms[name]
        assert isinstance(term, LossTerm)
        return term

    def _divisor(self, term: LossTerm, batch: Batch) -> float:
        if self.normalization == "pairs":
            return batch.pairs
        if self.normalization == "per_term":
            return term.count(batch)
        return 1.0

    def forward(
        self,
        features: Tensor,
        labels: Tensor,
        index: Tensor,
        own: Tensor,
        other: Tensor,
        all_labels: Tensor,
        codes: Tensor,
    ) -> LossTerms:
        features = check_features("features", features)
        bits = features.shape[1]
        if own.shape != other.shape or own.shape != codes.shape or own.shape[1] != bits:
            raise ValueError(f"own, other and codes must all have shape (V, {bits}); got {tuple(own.shape)}, "
                             f"{tuple(other.shape)}, {tuple(codes.shape)}")
        batch = Batch(features, labels, index, own.detach(), other.detach(), all_labels, codes)
        # Terms sharing a divisor are summed first, then divided once (for "pairs": one division).
        groups: dict[float, Tensor] = {}
        values: dict[str, float] = {}
        for name, w in self.weights.items():
            term = self.term(name)
            if w == 0 and term.skip_when_unweighted:
                values[name] = 0.0
                continue
            raw = term.batch_loss(batch)
            values[name] = term.report(float(raw.detach()), batch)
            divisor = self._divisor(term, batch)
            part = w * raw
            groups[divisor] = groups[divisor] + part if divisor in groups else part
        parts = [s / d for d, s in groups.items()]
        total = parts[0] if parts else features.new_zeros(())
        for p in parts[1:]:
            total = total + p
        return LossTerms(total=total, values=values)

    def describe(self, values: Mapping[str, float]) -> str:
        """One line of term values, e.g. ``"irsc 0.6931 iasc 0.6931 bqc 0.9800 fdc 1.20e-03"``."""
        return " ".join(f"{n} {values[n]:{self.term(n).fmt}}" for n in self.names if n in values)

    def extra_repr(self) -> str:
        weights = ", ".join(f"{n}={w:g}" for n, w in self.weights.items())
        return f"weights=({weights}), normalization={self.normalization!r}, balanced={self.balanced}"


class SIDHCNNLoss(WeightedLoss):
    """SIDHCNN's mini-batch objective, eq. (5): IRSC + α·IASC + β·BQC + γ·FDC.

    Args:
        alpha, beta, gamma: the weights of IASC, BQC and FDC.
        normalization, fused, chunk: see :class:`WeightedLoss`.

    A term registered beyond the paper's four takes its ``TrainConfig`` default weight
    (use :func:`build_loss` or :class:`WeightedLoss` to set it).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.1,
        gamma: float = 1.0,
        *,
        normalization: str = "pairs",
        fused: bool = True,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        for name, w in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if not w >= 0:
                raise ValueError(f"{name} must be >= 0, got {w!r}")
        weights = method_weights("sidhcnn", {"alpha": alpha, "beta": beta, "gamma": gamma})
        super().__init__(weights, normalization=normalization, fused=fused, chunk=chunk)
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)


def build_loss(config: TrainConfig, *, fused: bool = True, chunk: int = DEFAULT_CHUNK) -> WeightedLoss:
    """The mini-batch objective of a config: its method's terms, weighted by its weight fields.

    Balanced pair weights only when ``config.pair_weighting`` is "balanced": the Trainer
    resolves "auto" for its training set first
    (:meth:`~hashsearch.training.config.TrainConfig.resolve_pair_weighting`); an
    unresolved "auto" keeps the paper's unweighted sums.
    """
    weights = method_weights(config.method, config.loss_weights())
    balanced = config.pair_weighting == "balanced"
    return WeightedLoss(weights, normalization=config.normalization, fused=fused, chunk=chunk, balanced=balanced)
