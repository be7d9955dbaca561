"""The two evaluation protocols, over codes that are already computed.

What this module owns: which items query which, and what counts as relevant.

- **Class retrieval** (``"class"``, DSRSID's protocol, the paper's Algorithm 2):
  the test images of one source query the *training* images of the other source;
  relevant = same class label. PAN->MS: PAN test codes against MS training codes.
- **Instance matching** (``"instance"``, tiled scenes without labels; image
  matching and navigation): the test images of one source query the *test* images
  of the other source; relevant = the query's own pair, and nothing else. With
  ``distractors`` the other source's training images join the gallery (never
  relevant). The gallery is put in a seeded random order, so that the position
  tie rule neither favours nor penalises a query's own pair (in dataset order the
  pair of query i would sit at position i, ahead of every distractor).

The dataset's ``task`` attribute ("class" / "instance", see
:mod:`hashsearch.data.dual`) picks the protocol; :func:`resolve_protocol`.

Imports NumPy, :mod:`hashsearch.eval.metrics` and :mod:`hashsearch.eval.results`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from hashsearch.eval.metrics import RankingStats, feature_ranking_stats, ranking_stats
from hashsearch.eval.results import DIRECTIONS, PROTOCOLS, DirectionResult, EvalConfig, PRCurve, direction_name

__all__ = [
    "DirectionSetup",
    "EncodedSplits",
    "direction_result",
    "direction_setup",
    "evaluate_encoded",
    "resolve_protocol",
]

logger = logging.getLogger("hashsearch")

#: Split codes of :attr:`DirectionSetup.db_split`.
TRAIN, TEST = 0, 1


@dataclass
class EncodedSplits:
    """Codes (and optionally features) of both sources of a train and a test split.

    Attributes:
        nbits: code length.
        codes: ``codes[split][source]``, packed uint8 (n_split, nbits / 8), with
            split "train" / "test" and source "pan" / "ms".
        labels: ``labels[split]``, int64 (n_split,) (class labels or pair ids).
        features: ``features[split][source]``, float32 (n_split, l), or None when the
            model does not expose real-valued features.
    """

    nbits: int
    codes: dict[str, dict[str, np.ndarray]]
    labels: dict[str, np.ndarray]
    features: dict[str, dict[str, np.ndarray]] | None = None

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            n = self.labels[split].shape[0]
            for source in ("pan", "ms"):
                c = self.codes[split][source]
                if c.dtype != np.uint8 or c.shape != (n, self.nbits // 8):
                    raise ValueError(f"{split} {source} codes must be uint8 ({n}, {self.nbits // 8}), "
                                     f"got {c.dtype} {c.shape}")
                if self.features is not None and self.features[split][source].shape[0] != n:
                    raise ValueError(f"{split} {source} features do not hold {n} rows")


def resolve_protocol(requested: str, task: str | None) -> str:
    """The protocol to run: ``requested`` unless "auto", else the dataset's task ("class" if None).

    Raises:
        ValueError: an unknown protocol or task.
    """
    if requested != "auto":
        if requested not in PROTOCOLS:
            raise ValueError(f"protocol must be one of auto, {', '.join(PROTOCOLS)}, got {requested!r}")
        return requested
    if task is None:
        return "class"
    if task not in PROTOCOLS:
        raise ValueError(f"the dataset's task {task!r} names no protocol (expected one of {', '.join(PROTOCOLS)})")
    return task


@dataclass
class DirectionSetup:
    """Queries and database of one direction.

    Attributes:
        query_source, db_source: "pan" / "ms".
        query_codes: uint8 (nq, nbits / 8); ``query_keys`` int64 (nq,).
        db_codes: uint8 (n, nbits / 8); ``db_keys`` int64 (n,).
        query_index: int64 (nq,) position of each query in the test split.
        db_split: int8 (n,) split of each database item (0 train, 1 test).
        db_index: int64 (n,) position of each database item in its split.
        query_features, db_features: float (nq, l) / (n, l), or None.
    """

    query_source: str
    db_source: str
    query_codes: np.ndarray
    query_keys: np.ndarray
    db_codes: np.ndarray
    db_keys: np.ndarray
    query_index: np.ndarray
    db_split: np.ndarray
    db_index: np.ndarray
    query_features: np.ndarray | None = None
    db_features: np.ndarray | None = None

    @property
    def name(self) -> str:
        return direction_name(self.query_source, self.db_source)


def direction_setup(enc: EncodedSplits, query_source: str, db_source: str, protocol: str, *,
                    distractors: bool = False, seed: int = 0) -> DirectionSetup:
    """Who queries whom under ``protocol`` (see the module docstring).

    Args:
        enc: the encoded splits.
        query_source, db_source: "pan" / "ms".
        protocol: "class" or "instance".
        distractors: instance matching: the other source's training set joins the gallery.
        seed: seed of the instance gallery's order.
    """
    feats = enc.features
    nq = enc.labels["test"].shape[0]
    q_index = np.arange(nq, dtype=np.int64)
    q_feat = feats["test"][query_source] if feats is not None else None
    if protocol == "class":
        n = enc.labels["train"].shape[0]
        return DirectionSetup(
            query_source, db_source, enc.codes["test"][query_source], enc.labels["test"],
            enc.codes["train"][db_source], enc.labels["train"], q_index,
            np.full(n, TRAIN, np.int8), np.arange(n, dtype=np.int64),
            q_feat, feats["train"][db_source] if feats is not None else None,
        )
    if protocol != "instance":
        raise ValueError(f"unknown protocol {protocol!r}")
    # The query's own pair is the test item of the same position; distractors get key -1.
    parts_codes = [enc.codes["test"][db_source]]
    parts_keys = [q_index]
    parts_split = [np.full(nq, TEST, np.int8)]
    parts_index = [q_index]
    parts_feat = [feats["test"][db_source]] if feats is not None else []
    if distractors:
        n = enc.labels["train"].shape[0]
        parts_codes.append(enc.codes["train"][db_source])
        parts_keys.append(np.full(n, -1, np.int64))
        parts_split.append(np.full(n, TRAIN, np.int8))
        parts_index.append(np.arange(n, dtype=np.int64))
        if feats is not None:
            parts_feat.append(feats["train"][db_source])
    order = np.random.default_rng([seed, 0xE7A1]).permutation(sum(p.shape[0] for p in parts_keys))
    return DirectionSetup(
        query_source=query_source, db_source=db_source,
        query_codes=enc.codes["test"][query_source], query_keys=q_index,
        db_codes=np.ascontiguousarray(np.concatenate(parts_codes)[order]),
        db_keys=np.concatenate(parts_keys)[order], query_index=q_index,
        db_split=np.concatenate(parts_split)[order], db_index=np.concatenate(parts_index)[order],
        query_features=q_feat,
        db_features=np.concatenate(parts_feat)[order] if feats is not None else None,
    )


def _curve(kind: str, d: dict[str, np.ndarray]) -> PRCurve:
    x = d["radius" if kind == "radius" else "rank"]
    frac = d.get("retrieved_fraction")
    return PRCurve(kind, [int(v) for v in x], [float(v) for v in d["precision"]], [float(v) for v in d["recall"]],
                   None if frac is None else [float(v) for v in frac])


def direction_result(stats: RankingStats, setup: DirectionSetup, protocol: str, config: EvalConfig,
                     feature_stats: RankingStats | None = None, seconds: float = 0.0) -> DirectionResult:
    """Summarise the statistics of one direction as a :class:`DirectionResult`."""
    nbits = int(stats.nbits or 0)
    radius = min(config.radius, nbits)
    rad = stats.radius_curves()
    ks = stats.ks
    fmap = feature_stats.mean_average_precision() if feature_stats is not None else None
    cmap = stats.mean_average_precision()
    return DirectionResult(
        direction=setup.name, query_source=setup.query_source, database_source=setup.db_source,
        protocol=protocol, nbits=nbits, num_queries=stats.num_queries, database_size=stats.n_db,
        mean_relevant=float(stats.n_relevant.mean()) if stats.num_queries else 0.0,
        queries_without_relevant=int((stats.n_relevant == 0).sum()),
        map=cmap, map_tie_aware=stats.mean_average_precision_tie_aware(),
        map_at={k: stats.map_at(k) for k in ks},
        precision_at={k: stats.precision_at(k) for k in ks},
        precision_at_tie_aware={k: stats.precision_at_tie_aware(k) for k in ks},
        recall_at={k: stats.recall_at(k) for k in ks},
        recall_at_tie_aware={k: stats.recall_at_tie_aware(k) for k in ks},
        mrr=stats.mean_reciprocal_rank(), mrr_tie_aware=stats.mean_reciprocal_rank_tie_aware(),
        radius=radius, precision_radius=float(rad["precision"][radius]), recall_radius=float(rad["recall"][radius]),
        pr_radius=_curve("radius", rad), pr_rank=_curve("rank", stats.rank_curves()),
        feature_map=fmap, quantization_gap=None if fmap is None else fmap - cmap, seconds=seconds,
    )


def evaluate_encoded(enc: EncodedSplits, protocol: str, config: EvalConfig | None = None
                     ) -> tuple[dict[str, DirectionResult], dict[str, DirectionSetup]]:
    """Run PAN->MS and MS->PAN under ``protocol`` on encoded splits.

    Args:
        enc: codes (and features) of the train and test splits.
        protocol: "class" or "instance" (resolve "auto" with :func:`resolve_protocol`).
        config: evaluation settings (default :class:`EvalConfig`).

    Returns:
        ``(results, setups)``: direction name -> :class:`DirectionResult`, and the
        :class:`DirectionSetup` of each direction (for figures).
    """
    config = config or EvalConfig()
    ks = tuple(sorted(set(config.ks) | {1, 10}))  # the headline cut-offs are always measured
    results: dict[str, DirectionResult] = {}
    setups: dict[str, DirectionSetup] = {}
    for qs, ds in DIRECTIONS:
        start = time.perf_counter()
        setup = direction_setup(enc, qs, ds, protocol, distractors=config.distractors, seed=config.seed)
        stats = ranking_stats(setup.query_codes, setup.query_keys, setup.db_codes, setup.db_keys, nbits=enc.nbits,
                              ks=ks, rank_points=config.rank_points, backend=config.backend,
                              num_threads=config.num_threads, block_bytes=config.block_bytes,
                              progress=config.progress, desc=f"rank {setup.name}")
        fstats = None
        if config.features and setup.query_features is not None and setup.db_features is not None:
            fstats = feature_ranking_stats(setup.query_features, setup.query_keys, setup.db_features, setup.db_keys,
                                           ks=ks, rank_points=config.rank_points,
                                           block_bytes=config.block_bytes, progress=config.progress,
                                           desc=f"rank features {setup.name}")
        res = direction_result(stats, setup, protocol, config, fstats, time.perf_counter() - start)
        k = min(res.recall_at)
        if protocol == "instance":
            logger.info("%s (%s): recall@%d %.4f, MRR %.4f, gallery %d", setup.name, PROTOCOLS[protocol], k,
                        res.recall_at[k], res.mrr, res.database_size)
        else:
            logger.info("%s (%s): MAP %.4f (tie-aware %.4f), precision@%d %.4f, precision within radius %d %.4f",
                        setup.name, PROTOCOLS[protocol], res.map, res.map_tie_aware, k, res.precision_at[k],
                        res.radius, res.precision_radius)
        results[setup.name] = res
        setups[setup.name] = setup
    return results, setups
