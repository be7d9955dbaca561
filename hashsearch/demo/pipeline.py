"""The product demo: real imagery in, cross-source retrieval out (``hashsearch demo``).

What this module owns: the end-to-end run a new user starts with one command, and
where it keeps its pieces. For each dataset (by default ``eurosat-ms``, Sentinel-2
tiles with a PAN band derived physically, and ``nc-landsat7``, a real Landsat-7 PAN
sensor beside its MS bands):

1. **dataset** — built by the :mod:`hashsearch.data.recipes` recipe from
   ``$HASHSEARCH_DATA`` (default ``../shared/data``) into ``WORKDIR/data/NAME.zarr``;
2. **train** — SIDHCNN (both networks, Algorithm 1) on the training split, on the
   CPU, into ``WORKDIR/runs/NAME/last.pt`` (checkpoint every epoch; an interrupted
   run continues where it stopped);
3. **archive** — the training split of each source encoded into a
   :class:`~hashsearch.CodeStore` (``WORKDIR/archive/NAME-pan.zarr``, ``-ms.zarr``)
   whose ids are the dataset's sample indices, with labels, class names and the
   pixel statistics recorded, so ``hashsearch query`` works on it directly;
4. **evaluate** — the test images of each source query the archive of the other
   (PAN->MS, MS->PAN; relevant = same class) with SIDHCNN and, in the same run,
   the CCA-ITQ and SCM baselines on GIST descriptors; the report folder
   ``WORKDIR/report/NAME/`` (report.html with figures) by
   :func:`hashsearch.eval.report.evaluate_and_report`;
5. **examples** — a few test images per direction answered through
   :class:`hashsearch.Retriever` (the query path a user runs), drawn as strips.

``WORKDIR/report.html`` summarises every dataset (MAP table, the strips, links to
the full reports). A re-run reuses every piece whose inputs did not change (the
dataset, the checkpoint, the stores, the evaluation) unless ``fresh``.
``synthetic=True`` replaces the real data by seeded fake textures
(:mod:`hashsearch.demo.synthetic`), and only when asked: without the data folder
:func:`run_demo` raises :class:`DemoDataMissing`, whose message says where to put
the data and what it must hold.

Imports the engine, :mod:`hashsearch.data`, :mod:`hashsearch.eval`,
:mod:`hashsearch.retrieval`, :mod:`hashsearch.demo.strips` and, inside the
functions, torch and :mod:`hashsearch.training`.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hashsearch._paths import data_root
from hashsearch._version import __version__

__all__ = ["DEMO_DATASETS", "DatasetOutcome", "DemoConfig", "DemoDataMissing", "DemoReport", "run_demo"]

logger = logging.getLogger("hashsearch")

#: The real datasets the demo uses, what each folder must hold, and its training schedule.
DEMO_DATASETS: dict[str, dict[str, Any]] = {
    "eurosat-ms": {
        "expects": "eurosat-ms/: the EuroSAT Sentinel-2 tiles, 64x64x13 uint16 GeoTIFFs in one folder per class "
                   "(AnnualCrop/, Forest/, ...; manifest.json with md5 sums optional)",
        "about": "Sentinel-2 L1C, 10 classes; PAN derived from B02/B03/B04/B08 at 10 m, MS 4 bands at 40 m (4:1)",
        "epochs": 100,
        "options": {},
    },
    "nc-landsat7": {
        "expects": "nc-landsat7/: lsat7_2000_80.tif (PAN band 8), lsat7_2000_10/20/30/40.tif (MS bands 1-4) and "
                   "landclass96.tif (land-use labels), GeoTIFFs with geotransforms",
        "about": "Landsat-7 ETM+ over North Carolina: a real PAN sensor (14.25 m) beside MS bands 1-4 (28.5 m), "
                 "land-use classes (unbalanced: mostly forest and developed)",
        "epochs": 60,
        "options": {},
    },
}
SYNTHETIC = "synthetic"
_DIRECTIONS = (("pan", "ms", "PAN->MS"), ("ms", "pan", "MS->PAN"))


class DemoDataMissing(FileNotFoundError):
    """The real data the demo needs is not where it looks; the message says what to do."""


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the product demo.

    Attributes:
        workdir: where every piece is kept (dataset, checkpoint, stores, report).
        data_root: folder holding the data sets (default ``$HASHSEARCH_DATA``, else
            ``../shared/data`` beside the repository).
        datasets: real datasets to run, of :data:`DEMO_DATASETS`.
        synthetic: run on seeded fake textures instead of the real data.
        fresh: rebuild every piece instead of reusing it.
        bits: code length l.
        epochs: Algorithm 1 epochs (None: each dataset's schedule in :data:`DEMO_DATASETS`).
        batch_size: mini-batch size.
        lr: SGD learning rate (cosine schedule).
        threads: torch and engine threads (None: every core this process may use).
        seed: seed of training and of the example queries.
        baselines: baselines evaluated beside SIDHCNN in the same run ("cca", "scm").
        examples: example queries per direction and dataset.
        k: results per example query.
        figures: draw the report's figures.
        embedding: the report's 2-D map of the codes: "auto" (t-SNE with scikit-learn), "tsne", "pca".
        progress: show progress bars.
        synthetic_samples, synthetic_pan_size, synthetic_ms_size, synthetic_classes:
            the fake dataset of ``synthetic``.
    """

    workdir: Path = Path("demo-output")
    data_root: Path | None = None
    datasets: tuple[str, ...] = ("eurosat-ms", "nc-landsat7")
    synthetic: bool = False
    fresh: bool = False
    bits: int = 32
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 0.1
    threads: int | None = None
    seed: int = 0
    baselines: tuple[str, ...] = ("cca", "scm")
    examples: int = 3
    k: int = 10
    figures: bool = True
    embedding: Literal["auto", "tsne", "pca"] = "auto"
    progress: bool = True
    synthetic_samples: int = 400
    synthetic_pan_size: int = 64
    synthetic_ms_size: int = 16
    synthetic_classes: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "workdir", Path(self.workdir))
        if self.data_root is not None:
            object.__setattr__(self, "data_root", Path(self.data_root))
        unknown = [d for d in self.datasets if d not in DEMO_DATASETS]
        if unknown:
            raise ValueError(f"unknown demo dataset(s) {unknown}; choose from {', '.join(DEMO_DATASETS)}")
        if not self.datasets and not self.synthetic:
            raise ValueError("no dataset to run")
        for name in ("bits", "batch_size", "examples", "k", "synthetic_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        bad = [b for b in self.baselines if b not in ("cca", "scm")]
        if bad:
            raise ValueError(f"baselines are 'cca' and 'scm', got {bad}")


@dataclass
class DatasetOutcome:
    """What the demo produced for one dataset.

    Attributes:
        name: dataset name ("eurosat-ms", "nc-landsat7", "synthetic").
        about: one line on the data.
        dataset: path of the dual-source dataset.
        checkpoint: path of the trained checkpoint.
        stores: source -> path of the archive's code store.
        sizes: "train" / "test" -> pairs.
        maps: method -> {"PAN->MS": MAP, "MS->PAN": MAP}, SIDHCNN first.
        chance: direction -> MAP of a random ranking (the share of relevant items).
        examples: direction -> one dict per example query (class, top-k classes, precision).
        strips: direction -> PNG of the example retrievals.
        query_files: source -> a ``.npy`` holding the first example query of that source
            (pixel units), ready for ``hashsearch query``.
        report: the dataset's report.html.
        reused: stage -> whether it was reused from an earlier run.
        seconds: stage -> wall time.
    """

    name: str
    about: str
    dataset: str
    checkpoint: str = ""
    stores: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    maps: dict[str, dict[str, float]] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    strips: dict[str, str] = field(default_factory=dict)
    query_files: dict[str, str] = field(default_factory=dict)
    report: str = ""
    reused: dict[str, bool] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class DemoReport:
    """Everything :func:`run_demo` did.

    Attributes:
        config: the settings, as a dict.
        outcomes: one :class:`DatasetOutcome` per dataset.
        skipped: dataset -> why it was not run (its data is missing).
        report: the summary report.html (its path is the demo's last line).
        seconds: total wall time.
    """

    config: dict[str, Any]
    outcomes: list[DatasetOutcome]
    skipped: dict[str, str]
    report: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Stage = Callable[[str], None]


def _missing_message(root: Path, names: list[str]) -> str:
    lines = [f"hashsearch demo runs on real satellite imagery, and it is not at {root}"
             f" ({'$HASHSEARCH_DATA' if os.environ.get('HASHSEARCH_DATA') else 'the default ../shared/data'}).",
             "Put the data there (or set HASHSEARCH_DATA / --data-root to the folder that holds it):"]
    lines += [f"  {root}/{DEMO_DATASETS[n]['expects']}" for n in names]
    lines.append("hashsearch never downloads data. To see the pipeline without it, on seeded fake textures "
                 "(not satellite imagery): hashsearch demo --synthetic")
    return "\n".join(lines)


def _select_datasets(config: DemoConfig) -> tuple[list[str], dict[str, str], Path]:
    """(datasets to run, skipped -> reason, data root)."""
    root = (config.data_root or data_root()).expanduser()
    if config.synthetic:
        return [SYNTHETIC], {}, root
    present = [n for n in config.datasets if (root / n).is_dir()]
    if not present:
        raise DemoDataMissing(_missing_message(root, list(config.datasets)))
    skipped = {n: f"no {n}/ folder under {root}" for n in config.datasets if n not in present}
    return present, skipped, root


# ------------------------------------------------------------------ stage 1: dataset
def _build_dataset(name: str, config: DemoConfig, root: Path, out: Path) -> bool:
    """Build (or reuse) the dataset; returns whether it was reused."""
    from hashsearch.data import DualSourceDataset

    if out.exists() and not config.fresh:
        try:
            DualSourceDataset(out, "all")
            return True
        except Exception as exc:  # an unreadable leftover is rebuilt
            logger.warning("rebuilding %s: %s", out, exc)
    if name == SYNTHETIC:
        from hashsearch.demo.synthetic import write_synthetic_dataset

        write_synthetic_dataset(out, samples=config.synthetic_samples, num_classes=config.synthetic_classes,
                                pan_size=config.synthetic_pan_size, ms_size=config.synthetic_ms_size,
                                seed=config.seed, overwrite=True)
    else:
        from hashsearch.data import build_recipe

        build_recipe(name, out, root=root, overwrite=True, progress=config.progress,
                     **DEMO_DATASETS[name]["options"])
    return False


# ------------------------------------------------------------------ stage 2: train
def _train_config(name: str, config: DemoConfig, dataset: Path) -> Any:
    from hashsearch.data import DualSourceDataset
    from hashsearch.training import TrainConfig
    from hashsearch.training.models import DHCNN, MUL_STAGES, PAN_STAGES

    ds = DualSourceDataset(dataset, "train")
    (cp, sp, _), (cm, sm, _) = ds.pan_shape, ds.ms_shape
    epochs = config.epochs if config.epochs is not None else DEMO_DATASETS.get(name, {}).get("epochs", 30)
    # The paper's unpadded layers where the patches fit them, else every layer padded
    # (what padding="auto" chooses, said once here instead of as a warning).
    fits = sp >= DHCNN.min_patch_size(PAN_STAGES) and sm >= DHCNN.min_patch_size(MUL_STAGES)
    cfg = TrainConfig(bits=config.bits, epochs=epochs, batch_size=config.batch_size, lr=config.lr,
                      threads=config.threads, seed=config.seed).replace(
        pan_bands=cp, pan_size=sp, ms_bands=cm, ms_size=sm, padding="valid" if fits else "same")
    # resolved here, as the trainer records it in the checkpoint ("auto" -> "none" / "balanced")
    return cfg.replace(pair_weighting=cfg.resolve_pair_weighting(ds.meta.get("task")))


def _train(name: str, config: DemoConfig, dataset: Path, run_dir: Path) -> tuple[Path, bool]:
    """Train (or reuse / continue) SIDHCNN; returns (checkpoint, reused)."""
    from hashsearch.training import Trainer
    from hashsearch.training.checkpoint import load_checkpoint
    from hashsearch.training.datasets import dual_source_splits
    from hashsearch.training.trainer import config_differences

    cfg = _train_config(name, config, dataset)
    last = run_dir / "last.pt"
    if config.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    resume = None
    if last.exists():
        state = load_checkpoint(last)
        # a longer run of the same model serves a shorter one
        if int(state["epoch"]) >= cfg.epochs and not config_differences(state["config"], cfg):
            return last, True
        resume = last
    train_set, _ = dual_source_splits(dataset, preload=True)
    try:
        Trainer(cfg, train_set, checkpoint_dir=run_dir, progress=config.progress).fit(resume=resume)
    except ValueError as exc:
        if resume is None or "cannot resume" not in str(exc):
            raise
        raise ValueError(f"{last} was trained with other settings ({exc}); run with --fresh to retrain") from exc
    return last, False


# ------------------------------------------------------------------ stage 3: archive
def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _encode_archive(dataset: Path, checkpoint: Path, stores: dict[str, Path], config: DemoConfig) -> bool:
    """Encode the training split of both sources into one store each; returns whether they were reused."""
    from hashsearch.data import DualSourceDataset
    from hashsearch.store import CodeStore

    raw_train = DualSourceDataset(dataset, "train")
    sha = _sha256(checkpoint)
    if not config.fresh and all(p.exists() for p in stores.values()):
        try:
            ok = True
            for src, path in stores.items():
                with CodeStore.open(path) as s:
                    info = s.encoder_info or {}
                    ok &= info.get("checkpoint_sha256") == sha and s.ntotal == len(raw_train) \
                        and info.get("source") == src
            if ok:
                return True
        except Exception as exc:  # rebuilt below
            logger.warning("re-encoding the archive: %s", exc)
    from hashsearch.training.datasets import DualSourceTorchDataset
    from hashsearch.training.encoder import Encoder

    encoder = Encoder.load(checkpoint)
    view = DualSourceTorchDataset(raw_train, stats=raw_train.stats, preload=True)
    meta = {"path": str(dataset.resolve()), "split": "train", "ids": "sample_index",
            "classes": list(raw_train.classes or []), "task": raw_train.meta.get("task")}
    for src, path in stores.items():
        with CodeStore.create(path, encoder.bits, with_labels=True, with_source=True, overwrite=True) as store:
            encoder.encode(view, src, store=store, ids=view.source_indices, labels=view.labels,
                           progress=config.progress)
            store.set_encoder_info({**(store.encoder_info or {}), "dataset": meta, "pixel_stats": raw_train.stats})
    return False


# ------------------------------------------------------------------ stage 4: evaluate
def _chance(labels_q: np.ndarray, labels_db: np.ndarray) -> float:
    """MAP of a random ranking, to first order: the mean share of relevant items in the database."""
    classes, counts = np.unique(labels_db, return_counts=True)
    share = dict(zip(classes.tolist(), (counts / labels_db.size).tolist(), strict=True))
    return float(np.mean([share.get(int(c), 0.0) for c in labels_q])) if labels_q.size else 0.0


def _evaluate(outcome: DatasetOutcome, config: DemoConfig, checkpoint: Path, report_dir: Path) -> bool:
    """MAP of SIDHCNN and the baselines, and the report folder; returns whether it was reused."""
    summary = report_dir / "demo-summary.json"
    sha = _sha256(checkpoint)
    key = {"checkpoint_sha256": sha, "baselines": list(config.baselines), "bits": config.bits,
           "figures": config.figures, "embedding": config.embedding}
    if not config.fresh and summary.exists() and (report_dir / "report.html").exists():
        saved = json.loads(summary.read_text())
        if saved.get("key") == key:
            outcome.maps, outcome.report = saved["maps"], str(report_dir / "report.html")
            return True
    from hashsearch.eval.report import evaluate_and_report
    from hashsearch.eval.results import EvalConfig

    eval_config = EvalConfig(progress=config.progress, figures=config.figures, seed=config.seed,
                             num_threads=config.threads, strip_queries=3, embedding=config.embedding)
    models: list[Any] = [str(checkpoint.parent), *config.baselines]
    runs, report = evaluate_and_report(models, outcome.dataset, report_dir, config=eval_config, bits=config.bits,
                                       title=f"hashsearch demo: {outcome.name}")
    outcome.maps = {}
    for run in runs:
        name = "SIDHCNN" if run.method == "sidhcnn" else run.name
        outcome.maps[name] = {d: float(run.directions[d].map) for _, _, d in _DIRECTIONS}
    outcome.report = str(report)
    summary.write_text(json.dumps({"key": key, "maps": outcome.maps}, indent=2))
    return False


# ------------------------------------------------------------------ stage 5: examples
def _examples(outcome: DatasetOutcome, config: DemoConfig, checkpoint: Path, figures: Path) -> None:
    """A few test images per direction answered by the Retriever; strips drawn."""
    from hashsearch.data import open_dataset
    from hashsearch.retrieval import Retriever

    test = open_dataset(outcome.dataset, "test")
    train_labels = np.asarray(open_dataset(outcome.dataset, "train").labels)
    labels = np.asarray(test.labels)
    rng = np.random.default_rng(config.seed)  # a seeded random sample: as the classes occur, good and bad
    picks = sorted(rng.choice(labels.size, size=min(config.examples, labels.size), replace=False).tolist())
    block = test.read(np.asarray(picks, dtype=np.int64))
    for src in ("pan", "ms"):
        path = figures.parent / "examples" / f"{outcome.name}-{src}-query.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray(block[src][0]))
        outcome.query_files[src] = str(path)
    with Retriever(checkpoint, dict(outcome.stores), num_threads=config.threads) as retriever:
        for src, _, direction in _DIRECTIONS:
            images = np.asarray(block[src])
            result = retriever.search(images, src, config.k)
            rows = []
            for q, label in enumerate(labels[picks]):
                hits = result.hits(q)
                same = sum(h.get("label") == int(label) for h in hits)
                rows.append({"query_index": int(test.indices[picks[q]]), "class": result.class_name(int(label)),
                             "label": int(label), "precision": same / max(1, len(hits)),
                             "results": [h.get("class", h.get("label")) for h in hits],
                             "distances": [h["distance"] for h in hits]})
            outcome.examples[direction] = rows
            outcome.chance[direction] = _chance(labels, train_labels)
            if config.figures:
                from hashsearch.demo.strips import write_strips

                tag = direction.lower().replace("->", "2")
                png = write_strips(result, images, figures / f"{outcome.name}-{tag}.png", query_labels=labels[picks],
                                   title=f"{outcome.name}: {direction} with the Retriever (red: another class)")
                outcome.strips[direction] = str(png)


# ------------------------------------------------------------------ the summary page
def _img(path: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def _reuse_note(report: DemoReport) -> str:
    reused = sorted({stage for o in report.outcomes for stage, r in o.reused.items() if r})
    return f" ({', '.join(reused)} reused from an earlier run)" if reused else ""


def _write_summary(report: DemoReport, path: Path) -> Path:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>hashsearch demo</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child"
        "{text-align:left}</style></head><body>",
        "<h1>hashsearch demo: cross-source retrieval on real imagery</h1>",
        f"<p>hashsearch {html.escape(__version__)}; this run took {report.seconds:.0f} s{_reuse_note(report)}. "
        "A PAN image's binary code finds MS "
        "images of the same kind of ground in the archive, and the other way round. MAP over the test queries "
        "of each source against the training archive of the other (relevant: same class), every method from "
        "this run.</p>",
    ]
    for o in report.outcomes:
        parts.append(f"<h2>{html.escape(o.name)}</h2><p>{html.escape(o.about)}; {o.sizes.get('train', 0)} archive "
                     f"pairs, {o.sizes.get('test', 0)} test queries per source.</p>")
        parts.append("<table><tr><th>method</th><th>PAN&rarr;MS MAP</th><th>MS&rarr;PAN MAP</th></tr>")
        for method, m in o.maps.items():
            parts.append(f"<tr><td>{html.escape(method)}</td><td>{m['PAN->MS']:.4f}</td><td>{m['MS->PAN']:.4f}</td>"
                         "</tr>")
        if o.chance:
            parts.append("<tr><td><i>random ranking (share of relevant items)</i></td>"
                         f"<td>{o.chance['PAN->MS']:.4f}</td><td>{o.chance['MS->PAN']:.4f}</td></tr>")
        parts.append("</table>")
        if o.report:
            rel = os.path.relpath(o.report, path.parent)
            parts.append(f"<p>Full evaluation (PR curves, precision within radius 2, code map, per-method strips): "
                         f"<a href='{html.escape(rel)}'>{html.escape(rel)}</a></p>")
        for direction, png in o.strips.items():
            parts.append(f"<h3>{html.escape(direction)}: example queries through hashsearch.Retriever</h3>{_img(png)}")
    for name, why in report.skipped.items():
        parts.append(f"<p><b>{html.escape(name)}</b> was not run: {html.escape(why)}.</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# ------------------------------------------------------------------ the run
class _Stages:
    """Announces, times and records the stages of one dataset."""

    def __init__(self, outcome: DatasetOutcome, say: Stage) -> None:
        self.outcome = outcome
        self.say = say

    @contextmanager
    def __call__(self, label: str) -> Iterator[dict[str, bool]]:
        t0 = time.perf_counter()
        self.say(f"[{self.outcome.name}] {label} ...")
        flag = {"reused": False}
        yield flag
        o = self.outcome
        o.reused[label] = flag["reused"]
        o.seconds[label] = round(time.perf_counter() - t0, 2)
        self.say(f"[{o.name}] {label}: {'reused' if flag['reused'] else 'done'} in {o.seconds[label]:.1f} s")


def _run_dataset(name: str, config: DemoConfig, root: Path, say: Stage) -> DatasetOutcome:
    work = config.workdir
    about = DEMO_DATASETS[name]["about"] if name in DEMO_DATASETS else \
        "seeded fake textures (hashsearch.training.fake), NOT satellite imagery"
    dataset = work / "data" / f"{name}.zarr"
    o = DatasetOutcome(name=name, about=about, dataset=str(dataset))
    stage = _Stages(o, say)
    with stage("dataset") as done:
        done["reused"] = _build_dataset(name, config, root, dataset)
    from hashsearch.data import open_dataset

    o.sizes = {"train": len(open_dataset(dataset, "train")), "test": len(open_dataset(dataset, "test"))}
    with stage("train") as done:
        checkpoint, done["reused"] = _train(name, config, dataset, work / "runs" / name)
    o.checkpoint = str(checkpoint)
    stores = {src: work / "archive" / f"{name}-{src}.zarr" for src in ("pan", "ms")}
    o.stores = {k: str(v) for k, v in stores.items()}
    with stage("archive") as done:
        done["reused"] = _encode_archive(dataset, checkpoint, stores, config)
    with stage("evaluate") as done:
        done["reused"] = _evaluate(o, config, checkpoint, work / "report" / name)
    with stage("examples"):
        _examples(o, config, checkpoint, work / "figures")
    return o


def run_demo(config: DemoConfig = DemoConfig(), *, stage: Stage | None = None) -> DemoReport:
    """Run the demo (see the module docstring).

    Args:
        config: the settings.
        stage: called with a one-line message as each stage starts and ends (the CLI
            prints them); the same lines are logged at INFO.

    Returns:
        A :class:`DemoReport`; ``report`` is the summary page's path.

    Raises:
        DemoDataMissing: no dataset folder under the data root (and not ``synthetic``).
    """
    def say(message: str) -> None:
        logger.info("%s", message)
        if stage is not None:
            stage(message)

    start = time.perf_counter()
    names, skipped, root = _select_datasets(config)
    for name, why in skipped.items():
        say(f"skipping {name}: {why}")
    work = config.workdir
    for sub in ("data", "runs", "archive", "report", "figures"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    outcomes = [_run_dataset(name, config, root, say) for name in names]
    report = DemoReport(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
                        outcomes=outcomes, skipped=skipped, report="", seconds=0.0)
    report.seconds = round(time.perf_counter() - start, 1)
    report.report = str(_write_summary(report, work / "report.html"))
    (work / "demo.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return report
