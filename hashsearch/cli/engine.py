"""``hashsearch info`` and ``hashsearch demo engine``: what this machine runs, and the engine demo."""

from __future__ import annotations

import importlib.util
from typing import Any

import typer

from hashsearch.cli._common import cli_errors, emit


def register(app: typer.Typer) -> None:
    """Add ``info`` to ``app`` (``demo`` below is ``hashsearch demo engine``, see :mod:`hashsearch.cli.demo`)."""
    app.command("info")(info)


@cli_errors
def info(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Show the version, the search backends available here and the SIMD path."""
    import hashsearch
    from hashsearch.backends import default_num_threads, make_backend
    from hashsearch.backends.cuda import cuda_info

    result: dict[str, Any] = {
        "version": hashsearch.__version__,
        "backends": hashsearch.available_backends(),
        "auto_backend": make_backend("auto").name,
        "simd_level": hashsearch.simd_level(),
        "simd_levels": hashsearch.simd_levels(),
        "num_threads": default_num_threads(),
        "cuda": cuda_info(),
        "cuda_auto": "never chosen by backend='auto' (transfer threshold not measured); ask for backend='cuda'",
        "extras": {
            name: importlib.util.find_spec(module) is not None
            for name, module in (("train", "torch"), ("data", "rasterio"), ("plot", "matplotlib"))
        },
    }
    emit(result, as_json)


@cli_errors
def demo(
    n: int = typer.Option(1_000_000, help="Codes in the database."),
    nbits: int = typer.Option(64, help="Bits per code."),
    nq: int = typer.Option(1000, help="Queries in the batch search."),
    k: int = typer.Option(10, help="Neighbours per query."),
    threads: int = typer.Option(0, help="Kernel threads (0: all available CPUs)."),
    backend: str = typer.Option("auto", help="Search backend."),
    faiss: bool = typer.Option(True, "--faiss/--no-faiss", help="Time FAISS IndexBinaryFlat beside hashsearch."),
    seed: int = typer.Option(0, help="RNG seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Index random codes, query them with known answers, and time it beside FAISS."""
    from hashsearch.demo import EngineDemoConfig, run_engine_demo

    config = EngineDemoConfig(
        n=n, nbits=nbits, nq=nq, k=k, num_threads=threads or None, backend=backend, compare_faiss=faiss, seed=seed
    )
    report = run_engine_demo(config)
    if as_json:
        emit(report, True)
        return
    ms = 1e3
    lines = [
        f"hashsearch engine demo: {n:,} random {nbits}-bit codes, backend {report['backend']}"
        f" (SIMD {report['simd_level'] or '-'}), {report['config']['num_threads']} threads",
        f"  generate codes        {report['generate_s']:8.3f} s",
        f"  add to index          {report['add_s']:8.3f} s",
        f"  1 query, k={k:<4}       {report['single_query_s'] * ms:8.3f} ms",
        f"  {nq} queries, k={k:<4}  {report['batch_s'] * ms:8.1f} ms"
        f"   ({report['batch_queries_per_s']:,.0f} queries/s, {report['comparisons_per_s']:.2e} comparisons/s)",
        f"  range search r={config.flips}    {report['range_search_s'] * ms:8.1f} ms"
        f"   ({report['range_results']} results)",
        f"  queries that found their source code: {report['found_source']:.1%}",
    ]
    if "faiss_batch_s" in report:
        lines += [
            f"FAISS {report['faiss_version']} IndexBinaryFlat, same data and threads:",
            f"  1 query               {report['faiss_single_query_s'] * ms:8.3f} ms"
            f"   -> hashsearch {report['speedup_single_query']:.1f}x",
            f"  {nq} queries           {report['faiss_batch_s'] * ms:8.1f} ms"
            f"   -> hashsearch {report['speedup_batch']:.1f}x",
            f"  identical distances: {report['faiss_distances_equal']}",
        ]
    typer.echo("\n".join(lines))
    if report["found_source"] < 1.0 or report.get("faiss_distances_equal") is False:
        typer.echo("error: the demo's correctness check failed", err=True)
        raise typer.Exit(1)
