"""``hashsearch eval``: evaluate checkpoints and baselines on a dataset, write a report folder.

Examples::

    hashsearch eval runs/sidhcnn --data data/eurosat-ms.zarr --out reports/eurosat
    hashsearch eval runs/l16 runs/l32 cca scm --bits 16,32 --data data/eurosat-ms.zarr --out reports/all
    hashsearch eval runs/fusebox --data data/fusebox-landsat7.zarr --distractors --out reports/fusebox
    hashsearch eval --from-results reports/a --from-results reports/b --out reports/merged

The pipeline lives in :mod:`hashsearch.eval.report`; this module parses options.
torch is imported only when a model needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hashsearch.cli._common import cli_errors, emit

__all__ = ["register"]


def _ints(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} takes comma-separated integers, e.g. 16,32, got {text!r}") from None
    if not values:
        raise ValueError(f"{name} takes comma-separated integers, e.g. 16,32, got {text!r}")
    return values


def _fake_splits(samples: int, classes: int, pan_size: int, ms_size: int) -> tuple[Any, Any]:
    """The seeded fake data of ``hashsearch train --fake`` with the same options, split the same way."""
    from hashsearch.training.experiments import split_dataset
    from hashsearch.training.fake import fake_dual_source

    data = fake_dual_source(samples, num_classes=classes, pan_size=pan_size, ms_size=ms_size)
    return split_dataset(data, 0.25, seed=0)


@cli_errors
def eval_command(
    models: list[str] = typer.Argument(None, help="Checkpoints (file or run folder), baseline .npz files, or "
                                       "'cca' / 'scm' (fitted here on the training split, at each --bits)."),
    data: Path | None = typer.Option(None, "--data", help="Dual-source dataset (Zarr group or DSRSID .mat)."),
    fake: bool = typer.Option(False, "--fake", help="Seeded fake data (as `hashsearch train --fake`)."),
    fake_samples: int = typer.Option(512, "--fake-samples"),
    fake_pan_size: int = typer.Option(256, "--fake-pan-size"),
    fake_ms_size: int = typer.Option(64, "--fake-ms-size"),
    fake_classes: int = typer.Option(8, "--fake-classes"),
    test_per_class: int | None = typer.Option(None, "--test-per-class", help="DSRSID .mat: test pairs per class "
                                              "of the standard split (as `hashsearch train`)."),
    out: Path = typer.Option(Path("reports/eval"), "--out", "-o", help="Report folder (created)."),
    bits: str | None = typer.Option(None, "--bits", help="Code lengths of the baselines fitted here, e.g. 16,32."),
    protocol: str = typer.Option("auto", "--protocol", help="auto (the dataset's task) | class | instance."),
    distractors: bool = typer.Option(False, "--distractors", help="Instance matching: the other source's "
                                     "training set joins the gallery."),
    ks: str = typer.Option("1,10,100,1000", "--ks", help="Cut-offs of precision@k, recall@k, MAP@k."),
    radius: int = typer.Option(2, "--radius", help="Hamming radius of the precision/recall headline."),
    features: bool = typer.Option(True, "--features/--no-features", help="Also rank the real-valued features "
                                  "(cosine): the quantization gap."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the PNG figures (matplotlib)."),
    embedding: str = typer.Option("auto", "--embedding", help="2-D map of the codes: auto | tsne | pca."),
    strips: int = typer.Option(3, "--strips", help="Queries shown per direction in the query strips."),
    strip_results: int = typer.Option(8, "--strip-results", help="Top results shown per query."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto."),
    backend: str = typer.Option("auto", "--backend", help="Engine backend that ranks."),
    threads: int | None = typer.Option(None, "--threads", help="Engine (and torch) threads."),
    seed: int = typer.Option(0, "--seed", help="Seed of the gallery order, map samples and strip queries."),
    name: str | None = typer.Option(None, "--name", help="Label of the run in tables (one model only)."),
    title: str | None = typer.Option(None, "--title", help="Title of the report."),
    from_results: list[Path] = typer.Option(None, "--from-results", help="Add the runs of an earlier report "
                                            "folder (or results.json); repeatable."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Evaluate models on a dataset (PAN->MS and MS->PAN) and write report.md, report.html, results.json, figures."""
    from hashsearch.eval.report import evaluate_and_report, write_report
    from hashsearch.eval.results import EvalConfig, load_results

    models = list(models or [])
    earlier = [run for path in (from_results or []) for run in load_results(path)]
    if not models and not earlier:
        raise ValueError("nothing to evaluate: give checkpoints / 'cca' / 'scm', or --from-results FOLDER")
    if name is not None and len(models) > 1:
        raise ValueError("--name labels one model; give one model or leave --name out")
    config = EvalConfig(protocol=protocol,  # type: ignore[arg-type]
                        distractors=distractors, ks=tuple(_ints(ks, "--ks") or ()), radius=radius,
                        features=features, figures=figures, embedding=embedding,  # type: ignore[arg-type]
                        strip_queries=strips, strip_results=strip_results, batch_size=batch_size, backend=backend,
                        num_threads=threads, seed=seed, progress=progress, name=name)
    runs = list(earlier)
    if models:
        if (data is None) == (not fake):
            raise ValueError("give either --data <dual-source dataset> or --fake")
        try:
            import torch
        except ImportError:
            torch = None  # type: ignore[assignment]
        if torch is not None and threads is not None:
            torch.set_num_threads(threads)
        dataset: Any = data if data is not None else _fake_splits(fake_samples, fake_classes, fake_pan_size,
                                                                   fake_ms_size)
        new, report = evaluate_and_report(models, dataset, out, config=config, bits=_ints(bits, "--bits"),
                                          device=device, title=title,
                                          reader_options={"test_per_class": test_per_class} if test_per_class else None)
        if earlier:
            report = write_report(earlier + new, out, title=title, figures=figures)
        runs = earlier + new
    else:
        report = write_report(earlier, out, title=title, figures=figures)
    rows: list[dict[str, Any]] = [{"name": r.name, "bits": r.bits, "protocol": r.protocol, "method": r.method,
                                   **{k: round(v, 4) for k, v in r.headline().items()},
                                   "seconds": r.timings.get("total")} for r in runs]
    result = {"report": str(report), "results": str(report.parent / "results.json"), "runs": rows}
    if as_json:
        emit(result, True)
        return
    for r in rows:
        numbers = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("name", "bits", "protocol", "method"))
        typer.echo(f"{r['name']} (l = {r['bits']}, {r['protocol']}): {numbers}")
    typer.echo(f"report: {report}")


def register(app: typer.Typer) -> None:
    """Add ``eval`` to ``app``."""
    app.command("eval")(eval_command)
