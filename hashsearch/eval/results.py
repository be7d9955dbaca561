"""Typed results of an evaluation and their JSON form (``results.json``).

What this module owns: :class:`EvalConfig` (every knob of ``hashsearch eval``),
:class:`PRCurve`, :class:`DirectionResult` (one retrieval direction, PAN->MS or
MS->PAN), :class:`EvalRun` (one model on one dataset: both directions, the
dataset and model it measured, timings, figures) and reading / writing
``results.json``. Imports NumPy and the standard library only.

JSON keeps every number as a plain float or int; dict keys that are cut-offs
(``map_at["100"]``) are strings there and ints here.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from hashsearch._validate import check_int
from hashsearch._version import __version__
from hashsearch.eval.metrics import DEFAULT_BLOCK_BYTES

__all__ = [
    "DIRECTIONS",
    "PROTOCOLS",
    "RESULTS_FORMAT",
    "DirectionResult",
    "EvalConfig",
    "EvalRun",
    "PRCurve",
    "direction_name",
    "load_results",
    "save_results",
]

RESULTS_FORMAT = "hashsearch-eval"
RESULTS_VERSION = 1

#: Protocol key -> name used in reports.
PROTOCOLS: dict[str, str] = {"class": "class retrieval", "instance": "instance matching"}
#: The two cross-source directions: (query source, database source).
DIRECTIONS: tuple[tuple[str, str], ...] = (("pan", "ms"), ("ms", "pan"))

Protocol = Literal["auto", "class", "instance"]
Embedding = Literal["auto", "tsne", "pca"]


def direction_name(query_source: str, db_source: str) -> str:
    """"PAN->MS" for ("pan", "ms")."""
    return f"{query_source.upper()}->{db_source.upper()}"


@dataclass(frozen=True)
class EvalConfig:
    """Everything that defines one evaluation.

    Attributes:
        protocol: "class" (relevant = same label; test queries against the training
            database of the other source), "instance" (relevant = the query's own
            pair; gallery = the other source of the test split) or "auto" (the
            dataset's ``task`` attribute; "class" when it has none).
        distractors: instance matching only: add the other source's training set to
            the gallery as distractors.
        ks: cut-offs of precision@k, recall@k and MAP@k.
        radius: the Hamming radius of the "precision within radius r" headline (2).
        rank_points: points of the precision-recall-by-rank curve.
        features: also rank the real-valued features by cosine similarity (the
            quantization gap); needs a model that exposes its features.
        figures: draw the PNG figures (matplotlib, Agg backend).
        embedding: 2-D map of the codes: "tsne" (scikit-learn), "pca", or "auto"
            (t-SNE when scikit-learn is installed, else PCA).
        embedding_per_class: training samples per class (and source) in the map
            (the paper's Fig. 5 uses 100); instance datasets take this many x 4 pairs.
        strip_queries: queries shown per direction in the result strips.
        strip_results: top results shown per query.
        batch_size: images per forward pass when encoding.
        backend: engine backend that ranks ("auto", "native", "numba", "numpy").
        num_threads: engine threads (None: the backend's default).
        block_bytes: memory budget of one block of queries while ranking.
        seed: seed of the choices (instance gallery order, map samples, strip queries).
        progress: show progress bars.
        name: label of the run in tables (default: the model's name).
    """

    protocol: Protocol = "auto"
    distractors: bool = False
    ks: tuple[int, ...] = (1, 10, 100, 1000)
    radius: int = 2
    rank_points: int = 64
    features: bool = True
    figures: bool = True
    embedding: Embedding = "auto"
    embedding_per_class: int = 100
    strip_queries: int = 3
    strip_results: int = 8
    batch_size: int = 256
    backend: str = "auto"
    num_threads: int | None = None
    block_bytes: int = DEFAULT_BLOCK_BYTES
    seed: int = 0
    progress: bool = True
    name: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("auto", "class", "instance"):
            raise ValueError(f"protocol must be 'auto', 'class' or 'instance', got {self.protocol!r}")
        if self.embedding not in ("auto", "tsne", "pca"):
            raise ValueError(f"embedding must be 'auto', 'tsne' or 'pca', got {self.embedding!r}")
        if not self.ks:
            raise ValueError("ks must hold at least one cut-off")
        object.__setattr__(self, "ks", tuple(check_int(k, "ks") for k in self.ks))
        check_int(self.radius, "radius", 0)
        check_int(self.rank_points, "rank_points", 2)
        check_int(self.embedding_per_class, "embedding_per_class")
        check_int(self.strip_queries, "strip_queries", 0)
        check_int(self.strip_results, "strip_results")
        check_int(self.batch_size, "batch_size")
        check_int(self.block_bytes, "block_bytes")
        check_int(self.seed, "seed", 0)
        if self.num_threads is not None:
            check_int(self.num_threads, "num_threads")

    def replace(self, **changes: Any) -> EvalConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ks"] = list(self.ks)
        return d


@dataclass
class PRCurve:
    """A macro-averaged precision-recall curve.

    Attributes:
        kind: "radius" (a point per Hamming radius 0..nbits) or "rank" (a point per rank).
        x: the radii or ranks.
        precision: mean precision at each point.
        recall: mean recall at each point.
        retrieved_fraction: radius curves: fraction of queries that retrieve something.
    """

    kind: str
    x: list[int]
    precision: list[float]
    recall: list[float]
    retrieved_fraction: list[float] | None = None


def _int_keys(d: dict[Any, Any]) -> dict[int, float]:
    return {int(k): float(v) for k, v in d.items()}


@dataclass
class DirectionResult:
    """Retrieval quality of one direction (queries of one source, database of the other).

    MAP values are eq. 10 with ties by database position; ``*_tie_aware`` are the
    expectations over random orders within tie groups (see :mod:`hashsearch.eval.metrics`).

    Attributes:
        direction: "PAN->MS" or "MS->PAN".
        query_source, database_source: "pan" / "ms".
        protocol: "class" or "instance".
        nbits: code length.
        num_queries: queries ranked.
        database_size: items in the database (gallery, distractors included).
        mean_relevant: mean relevant items per query.
        queries_without_relevant: queries with no relevant item (AP 0, counted).
        map, map_tie_aware: MAP over the full ranking.
        map_at, precision_at, precision_at_tie_aware, recall_at, recall_at_tie_aware:
            per cut-off k.
        mrr, mrr_tie_aware: mean reciprocal rank of the first relevant item.
        radius: the headline radius r; ``precision_radius`` / ``recall_radius`` within it.
        pr_radius, pr_rank: precision-recall curves.
        feature_map: MAP of the real-valued features ranked by cosine (None if not measured).
        quantization_gap: ``feature_map - map`` (what binarisation costs), or None.
        seconds: wall time of the ranking and metrics.
    """

    direction: str
    query_source: str
    database_source: str
    protocol: str
    nbits: int
    num_queries: int
    database_size: int
    mean_relevant: float
    queries_without_relevant: int
    map: float
    map_tie_aware: float
    map_at: dict[int, float]
    precision_at: dict[int, float]
    precision_at_tie_aware: dict[int, float]
    recall_at: dict[int, float]
    recall_at_tie_aware: dict[int, float]
    mrr: float
    mrr_tie_aware: float
    radius: int
    precision_radius: float
    recall_radius: float
    pr_radius: PRCurve
    pr_rank: PRCurve
    feature_map: float | None = None
    quantization_gap: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("map_at", "precision_at", "precision_at_tie_aware", "recall_at", "recall_at_tie_aware"):
            d[key] = {str(k): v for k, v in getattr(self, key).items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DirectionResult:
        d = dict(d)
        for key in ("map_at", "precision_at", "precision_at_tie_aware", "recall_at", "recall_at_tie_aware"):
            d[key] = _int_keys(d[key])
        d["pr_radius"] = PRCurve(**d["pr_radius"])
        d["pr_rank"] = PRCurve(**d["pr_rank"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class EvalRun:
    """One model evaluated on one dataset, both directions.

    Attributes:
        name: label in tables (e.g. "SIDHCNN", "DCMH", "CCA-ITQ", "IRSC").
        method: "sidhcnn", "dcmh", "cca-itq", "scm-seq" or another model name.
        bits: code length l.
        protocol: "class" or "instance".
        dataset: what was measured (path, task, sizes, classes, band names).
        model: the model's provenance (checkpoint sha256, weights α/β/γ, ...).
        config: the :class:`EvalConfig` as a dict.
        directions: "PAN->MS" / "MS->PAN" -> :class:`DirectionResult`.
        timings: seconds per stage ("encode", "rank", "figures", "total").
        figures: figure name -> path relative to the report folder.
        notes: remarks the report prints (e.g. band mapping fallbacks).
        created: ISO time of the evaluation.
        hashsearch_version: library version that evaluated.
        folder: the report folder this run was read from or written to (not serialised).
    """

    name: str
    method: str
    bits: int
    protocol: str
    dataset: dict[str, Any]
    model: dict[str, Any]
    config: dict[str, Any]
    directions: dict[str, DirectionResult]
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    hashsearch_version: str = __version__
    folder: Path | None = None

    def headline(self) -> dict[str, float]:
        """The numbers a training log should print for this protocol.

        Class retrieval: ``map_pan2ms``, ``map_ms2pan`` (eq. 10) and their tie-aware
        values. Instance matching: ``recall@1_pan2ms``, ``recall@10_pan2ms``,
        ``mrr_pan2ms`` and the same for ``ms2pan`` (never a MAP of 0 for lack of labels).
        """
        out: dict[str, float] = {}
        for name, res in self.directions.items():
            tag = name.lower().replace("->", "2")
            if self.protocol == "instance":
                for k in (1, 10):
                    kk = min(k, res.database_size)
                    if kk in res.recall_at:
                        out[f"recall@{k}_{tag}"] = res.recall_at[kk]
                out[f"mrr_{tag}"] = res.mrr
            else:
                out[f"map_{tag}"] = res.map
                out[f"map_tie_aware_{tag}"] = res.map_tie_aware
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("directions", "folder")}
        d["directions"] = {k: v.to_dict() for k, v in self.directions.items()}
        return _plain(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any], folder: Path | None = None) -> EvalRun:
        d = dict(d)
        dirs = {k: DirectionResult.from_dict(v) for k, v in d.pop("directions").items()}
        known = {f.name for f in fields(cls)} - {"directions", "folder"}
        return cls(directions=dirs, folder=folder, **{k: v for k, v in d.items() if k in known})


def _plain(value: Any) -> Any:
    """NumPy scalars/arrays, paths and tuples as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def save_results(runs: list[EvalRun], path: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` (atomically: a temporary file, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": RESULTS_FORMAT, "format_version": RESULTS_VERSION, "runs": [r.to_dict() for r in runs]}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False))
    os.replace(tmp, path)
    return path


def load_results(path: str | os.PathLike[str]) -> list[EvalRun]:
    """Read the runs of a ``results.json`` (or of the report folder holding one).

    Raises:
        FileNotFoundError: no results file there.
        ValueError: not a hashsearch evaluation file, or another format version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json at {path}; run `hashsearch eval ...` first")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path} is not a hashsearch evaluation results file")
    if doc.get("format_version") != RESULTS_VERSION:
        raise ValueError(f"{path} has results format version {doc.get('format_version')}; "
                         f"this hashsearch reads {RESULTS_VERSION}")
    return [EvalRun.from_dict(r, folder=path.parent) for r in doc["runs"]]
