"""Write the measured section of ``docs/index-types.md`` from a bench_index_types JSON file.

Usage::

    pytest benchmarks/bench_index_types.py --benchmark-json=index-types.json
    python benchmarks/index_types_report.py index-types.json                 # rewrites the docs section
    python benchmarks/index_types_report.py index-types.json -o report.md    # or writes elsewhere
    python benchmarks/index_types_report.py 1m.json 10m.json                 # runs of several sizes

Only the text between ``<!-- generated:begin -->`` and ``<!-- generated:end -->`` in
the output file is replaced (the hand-written table of factory strings and
semantics above it stays); a file without the markers gets them appended. The
section holds, per data set (codes, queries, n, bits), one table of every index
type: latency per query (median of the rounds over the queries per round), its
speed-up over the exact flat scan ``Flat`` of the same run, recall@k (for
multi-index hashing also the path that answered: "mih", "flat" after its fallback,
or "mixed"), memory and build time; before them the issue's bars for multi-index
hashing against ``Flat`` (from the same runs); then the pigeonhole arithmetic of multi-index hashing on uniform
codes (where it cannot win, whatever the implementation).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

__all__ = ["BARS", "BAR_SIZE", "BEGIN", "END", "bars", "main", "mih_arithmetic", "records", "render", "replace_section"]

BEGIN = "<!-- generated:begin -->"
END = "<!-- generated:end -->"
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "index-types.md"


def records(*docs: dict) -> list[dict]:
    """One flat dict per benchmark of the JSON documents (one per size, or one for all): its
    extra_info plus ``median_s`` and ``us_per_query``."""
    out = []
    for bench in (b for data in docs for b in data.get("benchmarks", [])):
        info = dict(bench.get("extra_info") or {})
        stats = bench.get("stats") or {}
        if "index_type" not in info or "median" not in stats:
            continue
        info["median_s"] = float(stats["median"])
        info["us_per_query"] = 1e6 * info["median_s"] / max(1, int(info.get("nq", 1)))
        out.append(info)
    return out


def _binom_cdf(n: int, r: int) -> float:
    """P(Binomial(n, 1/2) <= r)."""
    if r < 0:
        return 0.0
    return sum(math.comb(n, j) for j in range(min(r, n) + 1)) / 2.0**n


def kth_distance(n: int, nbits: int, k: int) -> int:
    """The distance at which n uniform random codes hold k neighbours of a random query, on average."""
    d = 0
    while d < nbits and n * _binom_cdf(nbits, d) < k:
        d += 1
    return d


def default_m(n: int, nbits: int) -> int:
    """Substrings of multi-index hashing: the index's own choice (``hashsearch.index.mih.default_m``)
    where it can be imported, else the reference implementation's table for 64 bits (m = 4 up
    to 1M codes, 3 up to 20M, 2 above) scaled to nbits."""
    try:
        from hashsearch.index.mih import default_m as mih_default_m

        return int(mih_default_m(nbits, n))
    except (ImportError, RuntimeError):  # no MIH module, or no compiled core: the table
        base = 4 if n <= 1_000_000 else 3 if n <= 20_000_000 else 2
        return max(1, min(nbits, round(base * nbits / 64)))


def mih_arithmetic(n: int, nbits: int, k: int, d: int | None = None) -> dict:
    """What multi-index hashing must look at to prove the k-NN of a uniform query exact.

    The k-th neighbour lies at ``d`` (:func:`kth_distance`); by the pigeonhole
    principle one of the ``m`` substrings of ``s = nbits // m`` bits (the shorter ones,
    when m does not divide nbits) is then within
    ``r = floor(d / m)`` of the query's, so every table is probed to radius r:
    ``buckets`` keys per table and, on uniform codes, a ``candidates`` share of all n
    codes to check (``d`` may be given instead: a near-duplicate query f bits from a
    stored code has its nearest neighbour at d <= f). Each candidate is a random access where the flat scan streams
    one code: above about 1 % of n (a random access costs ten or more streamed
    codes) the structure cannot beat the scan and should fall back to it.
    """
    m = default_m(n, nbits)
    s = nbits // m
    d = kth_distance(n, nbits, k) if d is None else d
    r = d // m
    share = min(1.0, m * _binom_cdf(s, r))
    buckets = m * sum(math.comb(s, j) for j in range(r + 1))
    return {
        "n": n,
        "bits": nbits,
        "k": k,
        "d": d,
        "m": m,
        "s": s,
        "r": r,
        "share": share,
        "buckets": buckets,
        "wins": share < 0.01,
    }


#: The bars of multi-index hashing against the flat scan (issue 9): (codes, queries, k or
#: None for every k of the run, what is asked, the least speed-up that meets it).
BARS = (
    ("clustered-4", "centre", 10, "clusters of 16 within 4 bits, query <= 2 bits from a centre, k = 10: >= 30x", 30.0),
    ("clustered", "near-centre", 10, "looser clusters, query about 4 bits from a centre, k = 10: >= 30x", 30.0),
    ("uniform", "near-4", 1, "uniform codes, query 4 bits from a stored code, k = 1: >= 100x", 100.0),
    ("uniform", "uniform", None, "uniform queries, no near neighbour: at most 1.2x slower", 1 / 1.2),
)


#: The size the issue sets the bars at (other sizes are shown beside it, unjudged).
BAR_SIZE = (10_000_000, 64)


def bars(recs: list[dict]) -> list[dict]:
    """The issue's bars for ``MIH`` beside ``Flat`` of the same run, per (n, bits) measured.

    Returns one dict per bar and size: n, bits, k, what, speedup (Flat time / MIH time;
    the smallest over the ks when the bar holds for every k), met (bool at
    :data:`BAR_SIZE`, None elsewhere), path.
    """
    index = {(r["codes"], r["queries"], r["n"], r["bits"], r["k"], r["index_type"]): r for r in recs}
    out = []
    for n, bits in sorted({(r["n"], r["bits"]) for r in recs}):
        for codes, queries, k, what, least in BARS:
            run_ks = {r["k"] for r in recs if (r["codes"], r["queries"]) == (codes, queries)}
            ks = [k] if k is not None else sorted(run_ks)
            worst = None
            for kk in ks:
                flat = index.get((codes, queries, n, bits, kk, "Flat"))
                mih = index.get((codes, queries, n, bits, kk, "MIH"))
                if flat is None or mih is None or mih["us_per_query"] <= 0:
                    continue
                ratio = flat["us_per_query"] / mih["us_per_query"]
                if worst is None or ratio < worst[0]:
                    worst = (ratio, kk, mih.get("search_path"))
            if worst is not None:
                out.append(
                    {"n": n, "bits": bits, "k": worst[1], "what": what, "speedup": worst[0],
                     "met": worst[0] >= least if (n, bits) == BAR_SIZE else None, "path": worst[2]}
                )
    return out


def _fmt_bytes(value) -> str:
    return "—" if value is None else f"{value / 2**20:.1f} MiB"


def render(recs: list[dict]) -> str:
    """The generated Markdown section (without the markers)."""
    lines = ["## Measured: recall and latency", ""]
    if not recs:
        lines += [
            "No benchmark records yet: run `pytest benchmarks/bench_index_types.py "
            "--benchmark-json=index-types.json`, then this script.",
            "",
        ]
    measured = bars(recs)
    if measured:
        lines += [
            "### The bars: multi-index hashing beside the flat scan",
            "",
            "Speed-up = `Flat` time / `MIH` time in the same run (for the uniform row, the least "
            "over the ks; below 1 is slower; a bar asks for at least the factor named). The issue sets "
            "the bars at 10,000,000 x 64 bits; "
            "other sizes are shown beside them.",
            "",
            "| n | bits | bar | k | speed-up | path | met |",
            "|---|---|---|---|---|---|---|",
        ]
        for b in measured:
            lines.append(
                f"| {b['n']:,} | {b['bits']} | {b['what']} | {b['k']} | {b['speedup']:.2f}× | "
                f"{b['path'] or '—'} | {'—' if b['met'] is None else 'yes' if b['met'] else '**no**'} |"
            )
        lines.append("")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in recs:
        groups[(rec["codes"], rec["queries"], rec["n"], rec["bits"])].append(rec)
    for (codes, queries, n, bits), group in sorted(
        groups.items(), key=lambda kv: (kv[0][2], kv[0][3], kv[0][0], kv[0][1])
    ):
        threads = ", ".join(str(t) for t in sorted({r.get("threads") for r in group}))
        nq = ", ".join(str(q) for q in sorted({r.get("nq") for r in group}))
        lines += [
            f"### {codes} codes, {queries} queries: n = {n:,}, {bits} bits",
            "",
            f"{nq} queries per round, threads {threads}.",
            "",
        ]
        ks = sorted({r["k"] for r in group})
        flat = {r["k"]: r["us_per_query"] for r in group if r["index_type"] == "Flat"}
        header = ["index type", "exact"] + [f"k={k}: µs/query, × Flat, recall" for k in ks] + ["memory", "build"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        by_type: dict[str, dict[int, dict]] = defaultdict(dict)
        for rec in group:
            by_type[rec["index_type"]][rec["k"]] = rec
        for name in sorted(by_type, key=lambda t: (t != "Flat", t)):
            cells = [f"`{name}`", "yes" if next(iter(by_type[name].values())).get("exact") else "no"]
            for k in ks:
                rec = by_type[name].get(k)
                if rec is None:
                    cells.append("—")
                    continue
                speed = f"{flat[k] / rec['us_per_query']:.2f}×" if k in flat and rec["us_per_query"] > 0 else "—"
                # multi-index hashing says which path answered (its fallback to the flat kernel shows here)
                path = f", ran {rec['search_path']}" if rec.get("search_path") else ""
                cells.append(f"{rec['us_per_query']:.1f}, {speed}, {rec['recall']:.3f}{path}")
            any_rec = next(iter(by_type[name].values()))
            cells += [_fmt_bytes(any_rec.get("memory_bytes")), f"{any_rec.get('build_s', float('nan')):.1f} s"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    sizes = sorted({(r["n"], r["bits"]) for r in recs}) or [
        (1_000_000, 64),
        (1_000_000, 128),
        (10_000_000, 64),
        (10_000_000, 128),
    ]
    lines += [
        "## Where multi-index hashing cannot win (pigeonhole arithmetic, uniform codes)",
        "",
        "d: distance of the k-th neighbour of a uniform query; m substrings of s bits, probed to "
        "r = floor(d / m); buckets: keys looked up over all tables; candidates: share of the n codes "
        "checked. Above about 1 % of n the flat scan is faster (one random access per candidate "
        "against one streamed code), so MIH must fall back to it.",
        "",
        "| n | bits | k | d | m × s | r | buckets | candidates | MIH can win |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, bits in sizes:
        for k in (1, 10, 100):
            a = mih_arithmetic(n, bits, k)
            lines.append(
                f"| {n:,} | {bits} | {k} | {a['d']} | {a['m']} × {a['s']} | {a['r']} | {a['buckets']:,} | "
                f"{100 * a['share']:.2g} % | {'yes' if a['wins'] else 'no: falls back'} |"
            )
    lines += [
        "",
        "Near-duplicate queries, f bits from a stored code (k = 1, d <= f): where MIH wins.",
        "",
        "| n | bits | f | m × s | r | buckets | candidates | MIH can win |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, bits in sizes:
        for f in (0, 2, 4, 8):
            a = mih_arithmetic(n, bits, 1, d=f)
            lines.append(
                f"| {n:,} | {bits} | {f} | {a['m']} × {a['s']} | {a['r']} | {a['buckets']:,} | "
                f"{100 * a['share']:.2g} % | {'yes' if a['wins'] else 'no: falls back'} |"
            )
    lines.append("")
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between the markers replaced by ``section`` (markers appended if absent)."""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return head + block + tail
    return text.rstrip() + "\n\n" + block + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "json", type=Path, nargs="+", help="pytest-benchmark JSON files of benchmarks/bench_index_types.py"
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown file to update")
    args = parser.parse_args(argv)
    recs = records(*(json.loads(path.read_text()) for path in args.json))
    old = args.output.read_text() if args.output.exists() else "# Index types\n"
    args.output.write_text(replace_section(old, render(recs)))
    print(f"{args.output}: {len(recs)} benchmark records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
