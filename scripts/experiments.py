#!/usr/bin/env python
"""Rerun the experiments of docs/results.md (issue 10, item 5): SIDHCNN, its Table IV
ablation and the baselines (DCMH, CCA-ITQ, SCM) on the real sets of $HASHSEARCH_DATA.

What it owns: the experiment plan (:class:`ExperimentPlan`, :func:`make_plan`,
:func:`plan_runs`), running it through the library's own APIs (recipes of
:mod:`hashsearch.data`, :func:`hashsearch.training.experiments.run_experiment`,
:func:`hashsearch.eval.report.evaluate` / :func:`~hashsearch.eval.report.write_report`)
and the summary tables (``results.json`` and ``results.md`` in ``--out``).

Modes:

- ``quick``: l = 32, one seed, short schedules (10 epochs; 5 on aid-subset and the
  instance sets), every set: eurosat-ms (class retrieval with the Table IV ablation),
  nc-landsat7 and aid-subset (class retrieval; aid-subset at PAN 64 x 64 / MS 16 x 16),
  fusebox-landsat7 (all crops) and pansharpening-pairs (instance matching, with the
  unweighted-pairs ablation row); measured time in docs/results.md (one thread).
- ``full``: the paper-sized plan: seeds 0, 1, 2 at l = 32 (ablation, SIDHCNN, DCMH,
  CCA-ITQ, SCM), l in {8, 16, 24, 64} with one seed (Table VIII's shape), every set,
  the demo's schedules; several hours on 2 cores (see docs/results.md). Not run here.

``--validation`` trains the plan's networks on the training split minus a held-out part
and evaluates them on that part (instance sets: the training pairs of the last scene;
class sets: a seeded 20 % of each class), never on the test split: how the instance-matching
settings were chosen (docs/results.md). It writes results.json / results.md, no reports.

``--learning-curve`` trains SIDHCNN and DCMH of each chosen class set once with a
checkpoint per epoch and evaluates every epoch's checkpoint on the test split (an analysis
of a fixed schedule, not a selection): ``curves.json`` and ``curves-<set>.png`` in
``--out``, with SCM's and CCA-ITQ's MAP as horizontal lines (docs/results.md).

Usage::

    HASHSEARCH_NUM_THREADS=1 OMP_NUM_THREADS=1 python scripts/experiments.py --mode quick --out /tmp/exp-quick
    python scripts/experiments.py --mode full --out runs/exp-full --seeds 0,1,2
    python scripts/experiments.py --mode full --seeds 0 --bits 8,16,24,64 --sets eurosat-ms --out /tmp/exp-t8
    python scripts/experiments.py --sets fusebox-landsat7 --validation --epochs 20 --out /tmp/exp-val

Imports hashsearch (data, eval, training) and NumPy; nothing imports it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("hashsearch")

CLASS_SETS = ("eurosat-ms", "nc-landsat7", "aid-subset")
INSTANCE_SETS = ("fusebox-landsat7", "pansharpening-pairs")
ALL_SETS = CLASS_SETS + INSTANCE_SETS
#: Table IV rows: preset -> label (the "fdc" row is eq. 5 with beta = 1; SIDHCNN is the final beta = 0.1).
ABLATION = {"irsc": "IRSC", "iasc": "+IASC", "bqc": "+BQC", "fdc": "+FDC"}
#: Method key -> label in the tables. "sidhcnn_plain" is SIDHCNN with pair_weighting="none" (eq. 5's
#: unweighted sums), the "before" row of the instance sets, whose SIDHCNN / DCMH use "auto" (balanced pairs);
#: "sidhcnn_bal" is SIDHCNN with pair_weighting="balanced" on a class set (where "auto" keeps the paper's sums).
LABELS = {"sidhcnn": "SIDHCNN", "sidhcnn_plain": "SIDHCNN, unweighted pairs", "sidhcnn_bal": "SIDHCNN, balanced pairs",
          "dcmh": "DCMH", "cca": "CCA-ITQ", "scm": "SCM", **ABLATION}
#: Methods that train networks (seeded); the others are GIST baselines fitted once per code length.
TRAINED = ("sidhcnn", "sidhcnn_plain", "sidhcnn_bal", "dcmh", *ABLATION)
#: Per method, the pair weighting its config asks for (the others: "auto").
PAIR_WEIGHTING = {"sidhcnn_plain": "none", "sidhcnn_bal": "balanced"}
#: Schedules (epochs) per set: quick mode, full mode (the demo's for eurosat-ms / nc-landsat7).
QUICK_EPOCHS = {"eurosat-ms": 10, "nc-landsat7": 10, "fusebox-landsat7": 5, "aid-subset": 5,
                "pansharpening-pairs": 5}
FULL_EPOCHS = {"eurosat-ms": 100, "nc-landsat7": 60, "aid-subset": 30, "fusebox-landsat7": 30,
               "pansharpening-pairs": 30}
#: Quick mode's recipe options: aid-subset's 128 x 128 crops averaged 2 x 2 to PAN 64 x 64 / MS 16 x 16
#: (eurosat-ms's geometry; a quarter of the pixels of the default PAN 128 x 128, whose epoch of 4,800
#: pairs would take several minutes on a core). fusebox-landsat7 is used whole (all 39 crops, 4,608
#: training pairs): on six crops (576 pairs to fit) the networks did not generalise to a held-out crop,
#: on all of them they did (validation split, docs/results.md); ``--fusebox-crops`` restores the subset.
QUICK_RECIPES: dict[str, dict[str, Any]] = {"aid-subset": {"pan_size": 64}}
#: One crop of each of fusebox-landsat7's 6 path/row/dates (the previous quick mode's subset).
FUSEBOX_SIX_CROPS = (1, 7, 13, 19, 25, 32)
#: --validation: fraction of each class of a class set held out of its training split.
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class ExperimentPlan:
    """Everything one invocation runs.

    Attributes:
        mode: "quick" or "full".
        sets: recipe names (class sets get the ablation and SCM; instance sets do not).
        seeds: training seeds at ``main_bits`` (the first one only at the other lengths).
        main_bits: the code length of the ablation and the multi-seed comparison (l = 32).
        extra_bits: further code lengths (SIDHCNN, DCMH, CCA-ITQ, SCM, first seed).
        epochs: per set.
        batch_size: training mini-batch (32: small sets need the steps, docs/training.md).
        threads: torch and engine threads.
        ablation_sets: the sets that get Table IV's four rows (class sets only).
        recipe_options: per set, options of its recipe (``build_recipe(**options)``).
        figures: draw the report figures (SIDHCNN at ``main_bits``, first seed).
        data_root: raw data folder ($HASHSEARCH_DATA).
        out: output folder (datasets/, runs/, reports/, results.json, results.md).
        validation: evaluate on a part of the training split held out of training (see the
            module docstring), never on the test split; trained methods only, no reports.
        curves: run :func:`learning_curve` on the class sets instead of the plan.
        methods: run only these methods (keys of :data:`LABELS`); None: all of the plan's.
        bits: run only these code lengths (``main_bits`` and the others); None: all of the plan's.
        train_fraction: train the networks on this seeded fraction of each class of the
            training split (1: all of it); the evaluation keeps the whole training split as
            the database, so only what the networks learn from changes (MAP against the
            number of training pairs).
    """

    mode: str
    sets: tuple[str, ...]
    seeds: tuple[int, ...]
    main_bits: int = 32
    extra_bits: tuple[int, ...] = ()
    epochs: dict[str, int] = field(default_factory=dict)
    batch_size: int = 32
    threads: int = 2
    ablation_sets: tuple[str, ...] = CLASS_SETS
    recipe_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: bool = True
    data_root: str = "/work/shared/data"
    out: str = "runs/experiments"
    validation: bool = False
    curves: bool = False
    methods: tuple[str, ...] | None = None
    bits: tuple[int, ...] | None = None
    train_fraction: float = 1.0


@dataclass(frozen=True)
class RunSpec:
    """One (set, method, code length, seed) cell of the plan."""

    dataset: str
    method: str
    bits: int
    seed: int
    epochs: int | None  # None: a GIST baseline (no training schedule)

    @property
    def label(self) -> str:
        return LABELS[self.method]

    @property
    def name(self) -> str:
        return f"{self.method}-l{self.bits}-s{self.seed}"


def make_plan(mode: str, *, out: str, data_root: str | None = None, seeds: Sequence[int] | None = None,
              sets: Sequence[str] | None = None, epochs: int | None = None, threads: int = 2,
              figures: bool = True, validation: bool = False, curves: bool = False,
              methods: Sequence[str] | None = None, bits: Sequence[int] | None = None) -> ExperimentPlan:
    """The plan of a mode, with the command line's overrides.

    ``bits`` keeps only those code lengths; a length the mode does not plan becomes one of
    its further lengths (first seed), so ``--bits 8,16,24,64`` runs Table VIII's shape alone.
    """
    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be quick or full, got {mode!r}")
    quick = mode == "quick"
    chosen = tuple(sets) if sets else ALL_SETS
    unknown = [s for s in chosen if s not in ALL_SETS]
    if unknown:
        raise ValueError(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(ALL_SETS)}")
    seed_list = tuple(int(s) for s in seeds) if seeds else ((0,) if quick else (0, 1, 2))
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must be distinct and at least one, got {seed_list}")
    table = QUICK_EPOCHS if quick else FULL_EPOCHS
    ep = {s: int(epochs) if epochs is not None else table[s] for s in chosen}
    if any(v < 1 for v in ep.values()):
        raise ValueError("epochs must be >= 1")
    root = data_root or os.environ.get("HASHSEARCH_DATA") or "/work/shared/data"
    bad = [m for m in (methods or ()) if m not in LABELS]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(bad)}; known: {', '.join(LABELS)}")
    length_list = tuple(int(b) for b in bits) if bits else None
    if length_list is not None and (len(set(length_list)) != len(length_list)
                                    or any(b < 8 or b % 8 for b in length_list)):
        raise ValueError(f"bits must be distinct positive multiples of 8, got {length_list}")
    extra = () if quick else (8, 16, 24, 64)
    if length_list is not None:
        extra = tuple(sorted({*extra, *length_list} - {32}))
    return ExperimentPlan(mode=mode, sets=chosen, seeds=seed_list, main_bits=32,
                          extra_bits=extra, epochs=ep, threads=threads,
                          ablation_sets=("eurosat-ms",) if quick else CLASS_SETS,
                          recipe_options={k: v for k, v in QUICK_RECIPES.items() if k in chosen} if quick else {},
                          figures=figures and not validation, data_root=str(root), out=str(out),
                          validation=validation, curves=curves, methods=tuple(methods) if methods else None,
                          bits=length_list)


def plan_runs(plan: ExperimentPlan) -> list[RunSpec]:
    """Every cell of the plan, in running order (per set: main length and seeds, then the other lengths)."""
    runs: list[RunSpec] = []
    for ds in plan.sets:
        cls = ds in CLASS_SETS
        ep = plan.epochs[ds]
        main = (*(ABLATION if cls and ds in plan.ablation_sets else ()), *(() if cls else ("sidhcnn_plain",)),
                "sidhcnn", *(("sidhcnn_bal",) if cls else ()), "dcmh")
        for seed in plan.seeds:
            runs.extend(RunSpec(ds, m, plan.main_bits, seed, ep) for m in main)
        if plan.validation:  # the networks only: the GIST baselines are evaluated on the stored splits
            continue
        runs.extend(RunSpec(ds, m, plan.main_bits, plan.seeds[0], None) for m in (("cca", "scm") if cls else ("cca",)))
        for bits in plan.extra_bits:
            runs.extend(RunSpec(ds, m, bits, plan.seeds[0], ep) for m in ("sidhcnn", "dcmh"))
            runs.extend(RunSpec(ds, m, bits, plan.seeds[0], None) for m in (("cca", "scm") if cls else ("cca",)))
    if plan.methods is not None:
        runs = [r for r in runs if r.method in plan.methods]
    if plan.bits is not None:
        runs = [r for r in runs if r.bits in plan.bits]
    return runs


# ------------------------------------------------------------------ running
def _build(plan: ExperimentPlan, name: str) -> Path:
    from hashsearch.data import build_recipe

    path = Path(plan.out) / "datasets" / f"{name}.zarr"
    if (path / "zarr.json").is_file():
        logger.info("%s: reusing %s", name, path)
        return path
    start = time.perf_counter()
    build_recipe(name, path, root=plan.data_root, overwrite=True, progress=False,
                 **plan.recipe_options.get(name, {}))
    logger.info("%s: built in %.1f s", name, time.perf_counter() - start)
    return path


def _train_config(spec: RunSpec, plan: ExperimentPlan, train_set: Any) -> Any:
    from hashsearch.training.baselines.dcmh import dcmh_config
    from hashsearch.training.config import PRESETS, TrainConfig
    from hashsearch.training.models import resolve_padding

    key = {"sidhcnn": "full", "sidhcnn_plain": "full", "sidhcnn_bal": "full", "dcmh": "fdc"}.get(spec.method,
                                                                                                spec.method)
    preset = PRESETS[key]
    item = train_set[0]
    pan, ms = tuple(item["pan"].shape), tuple(item["ms"].shape)
    cfg = TrainConfig().replace(**preset.loss_weights(), bits=spec.bits, epochs=spec.epochs, seed=spec.seed,
                                batch_size=plan.batch_size, threads=plan.threads, pan_bands=pan[0],
                                pan_size=pan[1], ms_bands=ms[0], ms_size=ms[1], padding="auto",
                                pair_weighting=PAIR_WEIGHTING.get(spec.method, "auto"))
    if spec.method == "dcmh":
        cfg = dcmh_config(cfg)
    return cfg.replace(model=resolve_padding(cfg.model))


def _row(spec: RunSpec, run: Any, train_seconds: float | None, pair_weighting: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"dataset": spec.dataset, "method": spec.method, "label": spec.label, "bits": spec.bits,
                           "seed": spec.seed, "epochs": spec.epochs, "protocol": run.protocol,
                           "pair_weighting": pair_weighting,
                           "train_seconds": None if train_seconds is None else round(train_seconds, 1),
                           "eval_seconds": round(float(run.timings.get("total", 0.0)), 1)}
    for direction, res in run.directions.items():
        tag = direction.lower().replace("->", "2")
        if run.protocol == "class":
            row[f"map_{tag}"] = float(res.map)
            row[f"map_tie_aware_{tag}"] = float(res.map_tie_aware)
        else:
            for k in (1, 10):
                row[f"recall@{k}_{tag}"] = float(res.recall_at[min(k, res.database_size)])
            row[f"mrr_{tag}"] = float(res.mrr)
        row["database_size"] = int(res.database_size)
        row["num_queries"] = int(res.num_queries)
    return row


def validation_split(train_set: Any, task: str | None) -> tuple[Any, Any]:
    """(fit, validation) subsets of a training split: never the test split.

    Instance sets: the training pairs of the last scene id are held out (a whole crop, as
    the stored test split holds out whole scene groups; fusebox's 6 crops: 576 / 144).
    Class sets: a seeded :data:`VALIDATION_FRACTION` of each class.
    """
    from hashsearch.training.experiments import _Subset, split_dataset

    source = getattr(train_set, "source", None)
    if task == "instance" and source is not None and hasattr(source, "array"):
        scene = np.asarray(source.array("scene"))
        held = scene == scene.max()
        if held.all():
            raise ValueError("--validation needs at least two scenes in the training split")
        return _Subset(train_set, np.flatnonzero(~held)), _Subset(train_set, np.flatnonzero(held))
    return split_dataset(train_set, VALIDATION_FRACTION, seed=0)


def _codes_summary(encoder: Any, dataset: Any) -> dict[str, Any]:
    """Bit balance and code entropy of an encoder's codes of ``dataset``, and how far a pair's codes are apart."""
    bits = {}
    out: dict[str, Any] = {}
    for key in ("pan", "ms"):
        b = encoder.features(dataset, key, batch_size=256) >= 0
        p = b.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -(np.where(p > 0, p * np.log2(p), 0.0) + np.where(p < 1, (1 - p) * np.log2(1 - p), 0.0))
        out[f"{key}_bit_balance_max"] = float(np.abs(2 * p - 1).max())
        out[f"{key}_bit_entropy_mean"] = float(ent.mean())
        out[f"{key}_unique_codes"] = len({r.tobytes() for r in np.packbits(b, axis=1)})
        bits[key] = b
    perm = np.random.default_rng(0).permutation(len(bits["ms"]))
    out["pair_hamming_mean"] = float((bits["pan"] != bits["ms"]).sum(axis=1).mean())
    out["shuffled_hamming_mean"] = float((bits["pan"] != bits["ms"][perm]).sum(axis=1).mean())
    return out


def run_validation_set(plan: ExperimentPlan, name: str, specs: list[RunSpec]) -> list[dict[str, Any]]:
    """Train the set's networks on its training split minus a held-out part and evaluate them on that part."""
    from hashsearch.training.datasets import dual_source_splits
    from hashsearch.training.encoder import Encoder
    from hashsearch.training.experiments import dataset_task, run_experiment

    path = _build(plan, name)
    train_set, _ = dual_source_splits(path)
    task = dataset_task(train_set)
    fit, val = validation_split(train_set, task)
    logger.info("%s: validation split: %d pairs to fit, %d held out", name, len(fit), len(val))
    rows: list[dict[str, Any]] = []
    for spec in specs:
        cfg = _train_config(spec, plan, fit)
        res = run_experiment(spec.name, cfg, fit, val, out_dir=Path(plan.out) / "runs" / name, progress=False)
        row: dict[str, Any] = {"dataset": spec.dataset, "method": spec.method, "label": spec.label,
                               "bits": spec.bits, "seed": spec.seed, "epochs": spec.epochs, "split": "validation",
                               "protocol": res.protocol, "pair_weighting": cfg.resolve_pair_weighting(task),
                               "train_seconds": round(float(res.train_seconds or 0.0), 1),
                               "database_size": res.database_size, "num_queries": len(val), **res.summary()}
        if res.checkpoint:
            row["codes"] = _codes_summary(Encoder.load(res.checkpoint), val)
        row["history"] = [{"epoch": h["epoch"], "pan": h["pan"], "ms": h["ms"], "bit_balance": h["bit_balance"],
                           "source_agreement": h["source_agreement"]} for h in res.extra.get("history", [])]
        rows.append(row)
        logger.info("%s %s (validation): %s", name, spec.label, res.describe())
    return rows


def learning_curve(plan: ExperimentPlan, name: str) -> dict[str, Any]:
    """MAP after every epoch of one SIDHCNN and one DCMH run (plan's epochs, first seed), both directions,
    on the test split, with the loss terms of each epoch; and the GIST baselines' MAP for reference."""
    from hashsearch.eval.encoders import open_splits
    from hashsearch.eval.report import evaluate
    from hashsearch.eval.results import EvalConfig
    from hashsearch.training.datasets import dual_source_splits
    from hashsearch.training.encoder import Encoder
    from hashsearch.training.experiments import evaluate_cross_source
    from hashsearch.training.trainer import Trainer

    path = _build(plan, name)
    train_set, test_set = dual_source_splits(path)
    out: dict[str, Any] = {"dataset": name, "epochs": plan.epochs[name], "seed": plan.seeds[0], "curves": {}}
    for method in ("sidhcnn", "dcmh"):
        spec = RunSpec(name, method, plan.main_bits, plan.seeds[0], plan.epochs[name])
        ckpt = Path(plan.out) / "runs" / name / f"curve-{spec.name}"
        t0 = time.perf_counter()
        result = Trainer(_train_config(spec, plan, train_set), train_set, checkpoint_dir=ckpt, keep_checkpoints=True,
                         progress=False).fit()
        seconds = time.perf_counter() - t0
        points = []
        for h in result.history:
            enc = Encoder.load(ckpt / f"epoch-{h.epoch:03d}.pt")
            res = evaluate_cross_source(enc, train_set, test_set, name=f"{method}-{h.epoch}")
            points.append({"epoch": h.epoch, **res.summary(), "pan": h.pan, "ms": h.ms,
                           "bit_balance": h.bit_balance, "source_agreement": h.source_agreement})
            logger.info("%s %s epoch %d: %s", name, LABELS[method], h.epoch, res.describe())
        out["curves"][method] = {"train_seconds": round(seconds, 1), "points": points}
    splits = open_splits(str(path))
    for method in ("scm", "cca"):
        cfg = EvalConfig(name=LABELS[method], features=False, figures=False, progress=False,
                         num_threads=plan.threads, seed=0)
        run, _ = evaluate(method, None, config=cfg, bits=plan.main_bits, splits=splits)
        out[method] = {d.lower().replace("->", "2"): float(r.map) for d, r in run.directions.items()}
    _plot_curve(out, Path(plan.out) / f"curves-{name}.png")
    return out


def _plot_curve(curve: dict[str, Any], path: Path) -> None:
    """MAP per epoch (both directions) of SIDHCNN and DCMH, SCM / CCA-ITQ as lines; IRSC per epoch beside it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    ax, ax2 = fig.subplots(1, 2)
    colours = {"sidhcnn": "tab:blue", "dcmh": "tab:orange", "scm": "tab:green", "cca": "tab:grey"}
    for method, c in curve["curves"].items():
        ep = [p["epoch"] for p in c["points"]]
        for tag, style in (("pan2ms", "-"), ("ms2pan", "--")):
            ax.plot(ep, [p[f"map_{tag}"] for p in c["points"]], style, color=colours[method],
                    label=f"{LABELS[method]} {tag.replace('2', '->').upper()}")
        ax2.plot(ep, [p["pan"]["irsc"] for p in c["points"]], "-", color=colours[method], label=f"{LABELS[method]} PAN")
        ax2.plot(ep, [p["ms"]["irsc"] for p in c["points"]], "--", color=colours[method], label=f"{LABELS[method]} MS")
    for method in ("scm", "cca"):
        for tag, style in (("pan2ms", "-"), ("ms2pan", "--")):
            ax.axhline(curve[method][tag], linestyle=style, color=colours[method], linewidth=1,
                       label=f"{LABELS[method]} {tag.replace('2', '->').upper()}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test MAP (l = 32)")
    ax.set_title(f"{curve['dataset']}: MAP during one {curve['epochs']}-epoch run")
    ax.legend(fontsize=6, ncol=2)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("IRSC (mean per pair)")
    ax2.set_title("inter-source likelihood term")
    ax2.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)


def run_set(plan: ExperimentPlan, name: str, specs: list[RunSpec]) -> list[dict[str, Any]]:
    """Build one set, train and evaluate its cells, write its report folder; returns the rows."""
    from hashsearch.eval.encoders import open_splits
    from hashsearch.eval.report import evaluate, run_figures, write_report
    from hashsearch.eval.results import EvalConfig
    from hashsearch.training.datasets import dual_source_splits
    from hashsearch.training.experiments import dataset_task, run_experiment, split_dataset

    path = _build(plan, name)
    train_set, test_set = dual_source_splits(path)
    task = dataset_task(train_set)
    fit_set = train_set
    if plan.train_fraction < 1:
        fit_set = split_dataset(train_set, plan.train_fraction, seed=0)[1]
        logger.info("%s: training on %d of the %d training pairs (--train-fraction %g)", name, len(fit_set),
                    len(train_set), plan.train_fraction)
    splits = open_splits(str(path))
    report_dir = Path(plan.out) / "reports" / name
    rows: list[dict[str, Any]] = []
    runs = []
    for spec in specs:
        cfg = EvalConfig(name=spec.label if spec.seed == plan.seeds[0] else f"{spec.label} s{spec.seed}",
                         features=True, figures=False, embedding="pca", progress=False,
                         num_threads=plan.threads, seed=0)
        weighting: str | None = None
        if spec.epochs is not None:
            train_cfg = _train_config(spec, plan, train_set)
            weighting = train_cfg.resolve_pair_weighting(task)
            res = run_experiment(spec.name, train_cfg, fit_set, test_set,
                                 out_dir=Path(plan.out) / "runs" / name, progress=False)
            run, art = evaluate(res.checkpoint, None, config=cfg, splits=splits)
            seconds: float | None = res.train_seconds
        else:
            run, art = evaluate(spec.method, None, config=cfg, bits=spec.bits, splits=splits)
            seconds = float(run.timings.get("fit", 0.0))
        if (plan.figures and spec.method == "sidhcnn" and spec.bits == plan.main_bits
                and spec.seed == plan.seeds[0]):
            run_figures(run, art, report_dir, cfg, slug=f"sidhcnn-{spec.bits}")
        if spec.seed == plan.seeds[0]:
            runs.append(run)
        row = _row(spec, run, seconds, weighting)
        if spec.epochs is not None:
            row["train_pairs"] = len(fit_set)
        rows.append(row)
        logger.info("%s %s l=%d seed %d: %s (train %s s)", name, spec.label, spec.bits, spec.seed,
                    {k: round(v, 4) for k, v in row.items() if k.startswith(("map_", "recall", "mrr"))
                     and "tie" not in k}, row["train_seconds"])
    seeds = f"seed {plan.seeds[0]}"
    if len(plan.seeds) > 1:  # the report holds the first seed's runs; the means are the script's tables
        seeds += f"; mean ± std over seeds {', '.join(map(str, plan.seeds))} in ../../results.md"
    write_report(runs, report_dir, title=f"hashsearch experiments ({plan.mode}): {name} ({seeds})",
                 figures=plan.figures)
    return rows


# ------------------------------------------------------------------ tables
def _metrics_of(protocol: str) -> list[str]:
    if protocol == "class":
        return ["map_pan2ms", "map_ms2pan"]
    return ["recall@1_pan2ms", "recall@10_pan2ms", "mrr_pan2ms", "recall@1_ms2pan", "recall@10_ms2pan", "mrr_ms2pan"]


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread (sample std, 0 for one seed) over seeds per (set, method, bits)."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["bits"]), []).append(r)
    out = []
    for (ds, method, bits), rs in groups.items():
        cell: dict[str, Any] = {"dataset": ds, "method": method, "label": LABELS[method], "bits": bits,
                                "protocol": rs[0]["protocol"], "seeds": [r["seed"] for r in rs],
                                "epochs": rs[0]["epochs"], "database_size": rs[0].get("database_size"),
                                "train_seconds_mean": float(np.mean([r["train_seconds"] or 0.0 for r in rs]))}
        for m in _metrics_of(cell["protocol"]):
            vals = np.array([r[m] for r in rs], dtype=float)
            cell[m] = float(vals.mean())
            cell[f"{m}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        out.append(cell)
    return out


def _fmt(cell: dict[str, Any], key: str) -> str:
    n = len(cell["seeds"])
    return f"{cell[key]:.3f} ± {cell[key + '_std']:.3f}" if n > 1 else f"{cell[key]:.3f}"


def markdown(cells: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The tables docs/results.md includes: class MAP and instance recall, per set and code length."""
    split = " --validation (held-out training pairs, not the test split)" if meta.get("validation") else ""
    lines = [f"<!-- written by scripts/experiments.py --mode {meta['mode']}{split} ({meta['finished']}) -->", ""]
    cls = [c for c in cells if c["protocol"] == "class"]
    inst = [c for c in cells if c["protocol"] == "instance"]
    if cls:
        lines += ["| set | l | method | epochs | seeds | MAP PAN->MS | MAP MS->PAN | train s/run |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in cls:
            lines.append(f"| {c['dataset']} | {c['bits']} | {c['label']} | {c['epochs'] or '-'} | "
                         f"{len(c['seeds'])} | {_fmt(c, 'map_pan2ms')} | {_fmt(c, 'map_ms2pan')} | "
                         f"{c['train_seconds_mean']:.0f} |")
        lines.append("")
    if inst:
        lines += ["| set | l | method | epochs | gallery | R@1 PAN->MS | R@10 PAN->MS | MRR PAN->MS | "
                  "R@1 MS->PAN | R@10 MS->PAN | MRR MS->PAN | train s/run |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in inst:
            vals = " | ".join(_fmt(c, m) for m in _metrics_of("instance"))
            lines.append(f"| {c['dataset']} | {c['bits']} | {c['label']} | {c['epochs'] or '-'} | "
                         f"{c['database_size']} | {vals} | {c['train_seconds_mean']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def run_curves(plan: ExperimentPlan) -> list[dict[str, Any]]:
    """:func:`learning_curve` of every chosen class set; writes ``curves.json`` after each."""
    out = Path(plan.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = []
    for name in plan.sets:
        if name in CLASS_SETS:
            curves.append(learning_curve(plan, name))
            (out / "curves.json").write_text(json.dumps(curves, indent=1))
    return curves


def run(plan: ExperimentPlan) -> dict[str, Any]:
    """Run the whole plan; writes ``results.json`` / ``results.md`` after every set."""
    out = Path(plan.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = plan_runs(plan)
    meta: dict[str, Any] = {"mode": plan.mode, "plan": asdict(plan), "command": " ".join(sys.argv),
                            "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                            "threads": plan.threads, "validation": plan.validation}
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name in plan.sets:
        t0 = time.perf_counter()
        runner = run_validation_set if plan.validation else run_set
        rows += runner(plan, name, [s for s in specs if s.dataset == name])
        meta.setdefault("set_seconds", {})[name] = round(time.perf_counter() - t0, 1)
        meta["wall_seconds"] = round(time.perf_counter() - start, 1)
        meta["finished"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        cells = summarise(rows)
        doc = {"meta": meta, "runs": rows, "summary": cells}
        tmp = out / ".results.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, out / "results.json")
        (out / "results.md").write_text(markdown(cells, meta))
        logger.info("%s done in %.0f s (total %.0f s)", name, meta["set_seconds"][name], meta["wall_seconds"])
    return {"meta": meta, "runs": rows, "summary": summarise(rows)}


def parse_args(argv: Sequence[str] | None = None) -> ExperimentPlan:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=("quick", "full"), default="quick")
    p.add_argument("--out", default=None, help="output folder (default runs/experiments-<mode>)")
    p.add_argument("--data", default=None, help="raw data root (default $HASHSEARCH_DATA or /work/shared/data)")
    p.add_argument("--seeds", default=None, help="comma-separated training seeds (quick: 0; full: 0,1,2)")
    p.add_argument("--sets", default=None, help=f"comma-separated subset of {','.join(ALL_SETS)}")
    p.add_argument("--epochs", type=int, default=None, help="one schedule for every set (default per set and mode)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("HASHSEARCH_NUM_THREADS", "2")))
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--fusebox-crops", choices=("all", "six"), default="all",
                   help="fusebox-landsat7: every crop (default) or one per path/row/date (the earlier quick subset)")
    p.add_argument("--validation", action="store_true",
                   help="evaluate on pairs held out of the training split (never the test split); networks only")
    p.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(LABELS)} (default: all)")
    p.add_argument("--bits", default=None,
                   help="comma-separated code lengths to run (default: the mode's; 32 is the multi-seed length)")
    p.add_argument("--train-fraction", type=float, default=1.0,
                   help="train the networks on this seeded fraction of each class (database: the whole split)")
    p.add_argument("--learning-curve", action="store_true",
                   help="class sets: MAP after every epoch of SIDHCNN and DCMH (curves.json, curves-<set>.png)")
    p.add_argument("--dry-run", action="store_true", help="print the plan's runs as JSON and exit")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()] if a.seeds else None
    sets = [s.strip() for s in a.sets.split(",") if s.strip()] if a.sets else None
    try:
        plan = make_plan(a.mode, out=a.out or f"runs/experiments-{a.mode}", data_root=a.data, seeds=seeds,
                         sets=sets, epochs=a.epochs, threads=a.threads, figures=not a.no_figures,
                         validation=a.validation, curves=a.learning_curve,
                         methods=[m.strip() for m in a.methods.split(",") if m.strip()] if a.methods else None,
                         bits=[int(b) for b in a.bits.split(",") if b.strip()] if a.bits else None)
    except ValueError as exc:
        p.error(str(exc))
    if not 0 < a.train_fraction <= 1:
        p.error(f"--train-fraction must be in (0, 1], got {a.train_fraction}")
    if a.train_fraction < 1 and (a.validation or a.learning_curve):
        p.error("--train-fraction applies to the test-split runs, not to --validation or --learning-curve")
    plan = replace(plan, train_fraction=a.train_fraction)
    if a.fusebox_crops == "six" and "fusebox-landsat7" in plan.sets:
        plan = replace(plan, recipe_options={**plan.recipe_options, "fusebox-landsat7": {"scenes": FUSEBOX_SIX_CROPS}})
    return replace(plan, out=str(plan.out)) if not a.dry_run else _dry(plan)


def _dry(plan: ExperimentPlan) -> ExperimentPlan:
    print(json.dumps({"plan": asdict(plan), "runs": [asdict(s) for s in plan_runs(plan)]}, indent=1))
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if plan.curves:
        curves = run_curves(plan)
        print(json.dumps([{k: v for k, v in c.items() if k != "curves"} for c in curves]))
        return 0
    result = run(plan)
    print(markdown(result["summary"], result["meta"]))
    print(f"wall time {result['meta']['wall_seconds']:.0f} s; results in {plan.out}/results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
