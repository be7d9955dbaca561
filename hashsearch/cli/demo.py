"""``hashsearch demo`` (the product on real imagery) and ``hashsearch demo engine`` (the engine timing).

``hashsearch demo`` runs :func:`hashsearch.demo.pipeline.run_demo`: dataset, SIDHCNN
training on the CPU, code stores, PAN->MS / MS->PAN MAP beside the baselines, example
retrievals through the Retriever, and the report, whose path is the last line. torch
is imported inside the command only.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hashsearch.cli._common import cli_errors, emit

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``demo`` group (the real-imagery demo, and ``demo engine``) to ``app``."""
    from hashsearch.cli.engine import demo as engine_demo

    demo_app = typer.Typer(help="The product demo on real imagery (default) and the engine timing (demo engine).",
                           no_args_is_help=False)
    demo_app.callback(invoke_without_command=True)(demo)
    demo_app.command("engine")(engine_demo)
    app.add_typer(demo_app, name="demo")


@cli_errors
def demo(
    ctx: typer.Context,
    workdir: Path = typer.Option(Path("demo-output"), "--workdir", "-w", help="Where the dataset, checkpoint, "
                                 "stores and report are kept (reused by the next run)."),
    fresh: bool = typer.Option(False, "--fresh", help="Rebuild everything instead of reusing the last run's pieces."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Run on seeded fake textures instead of the real data "
                                   "(no satellite imagery needed)."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder holding eurosat-ms/ and nc-landsat7/ "
                                          "(default: $HASHSEARCH_DATA, else ../shared/data)."),
    dataset: list[str] | None = typer.Option(None, "--dataset", help="Real dataset(s) to run (repeat): eurosat-ms, "
                                             "nc-landsat7 (default: both)."),
    bits: int = typer.Option(32, "--bits", help="Code length."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs (default: eurosat-ms 100, "
                                      "nc-landsat7 60)."),
    batch_size: int = typer.Option(64, "--batch-size"),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: all usable cores)."),
    baselines: str = typer.Option("cca,scm", "--baselines", help="Baselines beside SIDHCNN, comma-separated "
                                  "(cca, scm; empty for none)."),
    examples: int = typer.Option(3, "--examples", help="Example queries per direction."),
    k: int = typer.Option(10, "-k", help="Results per example query."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the report's figures."),
    synthetic_samples: int = typer.Option(400, "--synthetic-samples", hidden=True),
    synthetic_pan_size: int = typer.Option(64, "--synthetic-pan-size", hidden=True),
    synthetic_ms_size: int = typer.Option(16, "--synthetic-ms-size", hidden=True),
    synthetic_classes: int = typer.Option(8, "--synthetic-classes", hidden=True),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the whole demo report)."),
) -> None:
    """Train on real PAN/MS imagery, index it, and retrieve across sensors (the report path is the last line)."""
    if ctx.invoked_subcommand is not None:
        return
    from hashsearch.demo.pipeline import DEMO_DATASETS, DemoConfig, DemoDataMissing, run_demo

    config = DemoConfig(
        workdir=workdir, data_root=data_root, datasets=tuple(dataset) if dataset else tuple(DEMO_DATASETS),
        synthetic=synthetic, fresh=fresh, bits=bits, epochs=epochs, batch_size=batch_size, threads=threads,
        baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()), examples=examples, k=k,
        figures=figures, progress=progress, synthetic_samples=synthetic_samples,
        synthetic_pan_size=synthetic_pan_size, synthetic_ms_size=synthetic_ms_size,
        synthetic_classes=synthetic_classes,
    )
    try:
        report = run_demo(config, stage=None if as_json else lambda line: typer.echo(line, err=True))
    except DemoDataMissing as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        emit(report.to_dict(), True)
        return
    lines: list[str] = []
    if synthetic:
        lines.append("SYNTHETIC run: seeded fake textures, not satellite imagery.")
    for o in report.outcomes:
        lines += ["", f"{o.name}: {o.about}",
                  f"  archive {o.sizes['train']} pairs per source, {o.sizes['test']} test queries per source; "
                  f"{bits}-bit codes; MAP from this run (relevant = same class):",
                  f"  {'method':<12} {'PAN->MS':>8} {'MS->PAN':>8}"]
        for method, m in o.maps.items():
            lines.append(f"  {method:<12} {m['PAN->MS']:>8.4f} {m['MS->PAN']:>8.4f}")
        if o.chance:
            lines.append(f"  {'random':<12} {o.chance['PAN->MS']:>8.4f} {o.chance['MS->PAN']:>8.4f}")
        for direction, rows in o.examples.items():
            lines.append(f"  {direction} examples (hashsearch.Retriever, top {k}):")
            for row in rows:
                shown = ", ".join(str(c) for c in row["results"][:5])
                lines.append(f"    {row['class']} query (test index {row['query_index']}): "
                             f"{row['precision']:.0%} same class; first 5: {shown}")
        lines.append(f"  query it: hashsearch query --model {Path(o.checkpoint).parent} --store {o.stores['ms']} "
                     f"{o.query_files.get('pan', 'PAN_IMAGE.npy')}")
        lines.append(f"  full report: {o.report}")
    for name, why in report.skipped.items():
        lines.append(f"(skipped {name}: {why})")
    lines += ["", f"demo finished in {report.seconds:.0f} s; report:", report.report]
    typer.echo("\n".join(lines))
