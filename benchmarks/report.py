"""Print the time ratios of our backends to FAISS (and the Table IX comparison) from a pytest-benchmark JSON file.

Usage::

    pytest benchmarks/bench_engine.py --benchmark-json=engine.json
    python benchmarks/report.py engine.json

Each benchmark group (one database size, code length, batch, k and thread count) holds
one benchmark per backend; the table shows every backend's best (min) time and its
ratio to ``faiss`` in the same group: < 1 means faster than FAISS, and ``speedup`` is
FAISS's time over ours.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable

__all__ = [
    "TABLE9_LABELS",
    "format_k_rows",
    "format_rows",
    "format_table9",
    "k_scaling_rows",
    "main",
    "ratio_rows",
    "records_from_json",
    "table9_rows",
]


def ratio_rows(records: Iterable[dict]) -> list[dict]:
    """Group benchmark records and compare each backend with FAISS.

    Args:
        records: dicts with ``group`` (str), ``params`` (dict with ``backend``),
            ``min`` and ``median`` (seconds).

    Returns:
        One dict per (group, backend other than faiss) that has a FAISS entry:
        group, backend, ours (s), faiss (s), ratio (ours / faiss), speedup (faiss / ours).
    """
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for rec in records:
        backend = rec["params"].get("backend")
        if backend is not None:
            groups[rec["group"]][backend] = rec["min"]
    rows = []
    for group in sorted(groups, key=_group_key):
        times = groups[group]
        faiss = times.get("faiss")
        if not faiss:
            continue
        for backend, t in sorted(times.items()):
            if backend == "faiss":
                continue
            rows.append({"group": group, "backend": backend, "ours": t, "faiss": faiss,
                         "ratio": t / faiss, "speedup": faiss / t})
    return rows


def _fields(group: str) -> dict[str, str]:
    """The ``name=value`` fields of a group name, e.g. ``{"n": "75000", "k": "10", ...}``."""
    return dict(part.split("=", 1) for part in group.split() if "=" in part)


def _group_key(group: str) -> tuple:
    """Sort groups by their numeric fields (n, bits, nq, k, threads) in that order."""
    fields = _fields(group)
    return tuple(int(fields.get(name, "0")) for name in ("n", "bits", "nq", "k", "threads"))


def format_rows(rows: list[dict]) -> list[str]:
    """Lines of a fixed-width table of :func:`ratio_rows` output."""
    lines = [f"{'group':<44} {'backend':<8} {'ours ms':>10} {'faiss ms':>10} {'ratio':>7} {'speedup':>8}"]
    for r in rows:
        lines.append(
            f"{r['group']:<44} {r['backend']:<8} {r['ours'] * 1e3:>10.3f} {r['faiss'] * 1e3:>10.3f} "
            f"{r['ratio']:>7.3f} {r['speedup']:>7.1f}x"
        )
    return lines


def k_scaling_rows(records: Iterable[dict]) -> list[dict]:
    """Each backend's time at every k over its own time at the smallest k of the same case.

    Args:
        records: as for :func:`ratio_rows`; groups carry ``k=<int>`` among their fields.

    Returns:
        One dict per (case without k, backend, k): case, backend, k, seconds, base_k,
        ratio (time at k / time at base_k).
    """
    cases: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for rec in records:
        backend = rec["params"].get("backend")
        k = _fields(rec["group"]).get("k")
        if backend is None or k is None:
            continue
        case = " ".join(part for part in rec["group"].split() if not part.startswith("k="))
        cases[(case, backend)][int(k)] = rec["min"]
    rows = []
    for (case, backend), times in sorted(cases.items(), key=lambda item: (_group_key(item[0][0]), item[0][1])):
        if len(times) < 2:
            continue
        base_k = min(times)
        for k in sorted(times):
            rows.append({"case": case, "backend": backend, "k": k, "seconds": times[k], "base_k": base_k,
                         "ratio": times[k] / times[base_k]})
    return rows


def format_k_rows(rows: list[dict]) -> list[str]:
    """Lines of a fixed-width table of :func:`k_scaling_rows` output."""
    lines = [f"{'case':<38} {'backend':<8} {'k':>5} {'ms':>10} {'x base k':>9}"]
    for r in rows:
        lines.append(
            f"{r['case']:<38} {r['backend']:<8} {r['k']:>5} {r['seconds'] * 1e3:>10.3f} {r['ratio']:>8.2f}x"
        )
    return lines


#: Table IX's rows in the paper's order, with their labels.
TABLE9_LABELS = {
    "train": "training (30 x 75,000 pairs)",
    "hash-query-pan": "hash one PAN query",
    "hash-query-ms": "hash one MS query",
    "hash-archive-ms": "hash the MS archive (75,000; PAN->MS)",
    "hash-archive-pan": "hash the PAN archive (75,000; MS->PAN)",
    "distances": "distances, 1 query x 75,000 codes",
    "rank-topk": "rank: top-10 (paper: full sort)",
    "rank-full": "rank: full sort of 75,000",
}

#: Implementations in column order.
TABLE9_IMPLS = ("native", "numba", "numpy", "faiss", "torch")


def table9_rows(records: Iterable[dict]) -> list[dict]:
    """The Table IX comparison from the records of ``benchmarks/test_table9.py``.

    Args:
        records: dicts with ``min`` (seconds) and ``extra_info`` holding
            ``table9_row``, ``impl``, ``scale``, ``paper_seconds`` and ``threads``
            (other records are ignored).

    Returns:
        One dict per (row, impl), in the paper's row order: row, label, impl,
        seconds (the row's quantity: fastest round x scale), paper (the paper's
        seconds), speedup (paper / ours), vs_faiss (ours / FAISS's time, when FAISS
        ran the row), threads, extra (the benchmark's extra_info).
    """
    found: dict[tuple[str, str], dict] = {}
    for rec in records:
        info = rec.get("extra_info") or {}
        row, impl = info.get("table9_row"), info.get("impl")
        if row is None or impl is None:
            continue
        found[(row, impl)] = {"row": row, "label": TABLE9_LABELS.get(row, row), "impl": impl,
                              "seconds": rec["min"] * float(info.get("scale", 1.0)),
                              "paper": float(info["paper_seconds"]), "threads": info.get("threads"), "extra": info}
    order = {row: i for i, row in enumerate(TABLE9_LABELS)}
    impl_order = {impl: i for i, impl in enumerate(TABLE9_IMPLS)}
    rows = sorted(found.values(), key=lambda r: (order.get(r["row"], 99), impl_order.get(r["impl"], 99), r["impl"]))
    for r in rows:
        r["speedup"] = r["paper"] / r["seconds"] if r["seconds"] > 0 else float("inf")
        faiss = found.get((r["row"], "faiss"))
        r["vs_faiss"] = r["seconds"] / faiss["seconds"] if faiss and r["impl"] != "faiss" else None
    return rows


def format_seconds(seconds: float) -> str:
    """A duration with a unit that keeps 3 significant digits (us, ms, s, min or h)."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def format_table9(rows: list[dict]) -> list[str]:
    """Lines of a fixed-width table of :func:`table9_rows` output."""
    lines = [f"{'Table IX row (l = 32)':<40} {'impl':<7} {'ours':>10} {'paper':>10} {'paper/ours':>10} "
             f"{'ours/faiss':>10} {'threads':>7}"]
    for r in rows:
        vs = f"{r['vs_faiss']:.3f}" if r["vs_faiss"] is not None else ""
        lines.append(
            f"{r['label']:<40} {r['impl']:<7} {format_seconds(r['seconds']):>10} {format_seconds(r['paper']):>10} "
            f"{r['speedup']:>9.3g}x {vs:>10} {r['threads'] if r['threads'] is not None else '':>7}"
        )
    lines.append("paper: MATLAB on an NVIDIA GTX 745 (Table IX of Li et al., TGRS 2018), quoted, not measured")
    return lines


def records_from_json(data: dict) -> list[dict]:
    """The records of a pytest-benchmark JSON document (group, params, min, median, extra_info)."""
    return [
        {"group": b.get("group") or "", "params": b.get("params") or {}, "min": b["stats"]["min"],
         "median": b["stats"]["median"], "extra_info": b.get("extra_info") or {}}
        for b in data.get("benchmarks", [])
    ]


def main(argv: list[str] | None = None) -> None:
    """Command line entry: print the ratio table of a pytest-benchmark JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", help="output of pytest --benchmark-json")
    args = parser.parse_args(argv)
    with open(args.json_file) as f:
        data = json.load(f)
    records = records_from_json(data)
    for line in format_rows(ratio_rows(records)):
        print(line)
    k_rows = k_scaling_rows(records)
    if k_rows:
        print()
        for line in format_k_rows(k_rows):
            print(line)
    t9 = table9_rows(records)
    if t9:
        print()
        for line in format_table9(t9):
            print(line)


if __name__ == "__main__":
    main()
