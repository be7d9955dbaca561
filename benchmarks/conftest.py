"""Shared setup of the engine benchmarks (see bench_engine.py).

- pins BLAS to one thread before NumPy loads (an idle OpenBLAS pool spinning on a
  2-core machine distorts every other number; neither FAISS's binary search nor ours
  uses BLAS). OpenMP's wait policy is left at its default, so FAISS (and torch) run as
  users run them;
- registers the ``large`` marker (1M-code cases), so ``-m "not large"`` is the quick
  subset;
- prints, after the run, each group's time of ours over FAISS's (``native / faiss``
  and ``numba / faiss``, < 1 is faster), the cost of k, and the Table IX comparison of
  test_table9.py (ours beside the paper's figures and FAISS); ``benchmarks/report.py``
  prints the same tables from a ``--benchmark-json`` file;
- prints the pinned thread counts in the session header.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "large: benchmarks over 1M codes (deselect with -m 'not large')")


def pytest_benchmark_update_machine_info(config, machine_info):
    """Add what hashsearch runs here to the JSON's ``machine_info["hashsearch"]`` (make_docs.py reads it)."""
    machine_info["hashsearch"] = engine_info()


def engine_info() -> dict:
    """Version, SIMD path, build, thread settings and library versions of this process."""
    import importlib.metadata

    info: dict = {}
    try:
        import hashsearch
        from hashsearch.backends import default_num_threads

        info.update(version=hashsearch.__version__, simd_level=hashsearch.simd_level(),
                    simd_levels=hashsearch.simd_levels(), backends=hashsearch.available_backends(),
                    default_num_threads=default_num_threads())
        from hashsearch import _core

        info["build"] = dict(_core.build_info().items())
    except Exception as exc:  # the report must not break a benchmark run
        info["error"] = f"{type(exc).__name__}: {exc}"
    versions = {}
    for dist in ("numpy", "numba", "faiss-cpu", "faiss-gpu", "zarr", "dask", "torch", "pytest-benchmark"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    info["versions"] = versions
    info["threads_env"] = {name: os.environ.get(name) for name in _THREAD_VARS}
    return info


_THREAD_VARS = ("HASHSEARCH_BENCH_THREADS", "HASHSEARCH_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pytest_report_header(config) -> list[str]:
    return ["benchmark threads: " + ", ".join(f"{name}={os.environ.get(name, '(unset)')}" for name in _THREAD_VARS)]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(session, "benchmarks", None) if session is not None else None
    if not benchmarks:
        return
    report = _load_report()

    records = []
    for bench in benchmarks:
        stats = getattr(bench, "stats", None)
        if stats is None or not getattr(bench, "group", None):
            continue
        try:
            fastest, median = stats.min, stats.median
        except ValueError:  # the benchmark failed before recording a round
            continue
        records.append({"group": bench.group, "params": dict(bench.params or {}), "min": fastest, "median": median,
                        "extra_info": dict(getattr(bench, "extra_info", None) or {})})
    rows = report.ratio_rows(records)
    if rows:
        terminalreporter.write_sep("-", "time ratios to FAISS IndexBinaryFlat (min of rounds; < 1 = faster than FAISS)")
        for line in report.format_rows(rows):
            terminalreporter.write_line(line)
    k_rows = report.k_scaling_rows(records)
    if k_rows:
        terminalreporter.write_sep("-", "cost of k: time at k over the same backend's time at the smallest k")
        for line in report.format_k_rows(k_rows):
            terminalreporter.write_line(line)
    t9 = report.table9_rows(records)
    if t9:
        threads = sorted({r["threads"] for r in t9 if r["threads"] is not None})
        pinned = ", ".join(map(str, threads))
        terminalreporter.write_sep("-", f"Table IX at l = 32: ours ({pinned} threads) beside the paper and FAISS")
        for line in report.format_table9(t9):
            terminalreporter.write_line(line)


def _load_report():
    """benchmarks/report.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("_hashsearch_bench_report", Path(__file__).with_name("report.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
