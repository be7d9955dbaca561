"""Generate docs/benchmarks.md (and its roofline plot) from saved benchmark JSON.

One command regenerates the page from the pytest-benchmark JSON files of a results
folder (default ``benchmarks/results/``); a missing file leaves its section saying how
to produce it::

    pytest benchmarks/test_table9.py --benchmark-json=benchmarks/results/table9.json
    pytest benchmarks/bench_engine.py --benchmark-json=benchmarks/results/engine.json
    pytest benchmarks/bench_store.py --benchmark-json=benchmarks/results/store.json
    pytest benchmarks/bench_index_types.py --benchmark-json=benchmarks/results/index-types.json
    HASHSEARCH_BENCH_N=10000000 pytest benchmarks/bench_index_types.py \
        --benchmark-json=benchmarks/results/index-types-10m.json   # every index-types*.json is read
    python benchmarks/make_docs.py            # writes docs/benchmarks.md and docs/img/engine-roofline.png

Sections:

- **Machine**: CPU model, cores, SIMD path, threads and library versions, read from
  each JSON's ``machine_info`` (its ``hashsearch`` entry is written by
  ``benchmarks/conftest.py`` at benchmark time) and ``commit_info``;
- **Table IX**: the paper's figures (MATLAB, GTX 745) beside ours and FAISS's, with
  ratios (``report.table9_rows``);
- **Engine sweep**: every (n, bits, nq, k, threads) group of bench_engine.py with
  native, Numba and FAISS times, comparisons/s, the popcount roofline of the same
  (n, bits, nq, threads) and the share of it reached; the cost of k; a PNG plot of
  bit-comparisons/s against the roofline and the measured streaming bandwidth;
- **Store**: every store benchmark with its key figures (``extra_info``);
- **Index types**: the section ``benchmarks/index_types_report.py`` renders.

Only the standard library and matplotlib (for the plot; skipped with a note when it
is missing) are needed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUTPUT = ROOT / "docs" / "benchmarks.md"
PLOT = "img/engine-roofline.png"  # relative to the output's folder

INPUTS = {
    "table9": ("table9.json", "pytest benchmarks/test_table9.py --benchmark-json=benchmarks/results/table9.json"),
    "engine": ("engine.json", "pytest benchmarks/bench_engine.py --benchmark-json=benchmarks/results/engine.json"),
    "store": ("store.json", "pytest benchmarks/bench_store.py --benchmark-json=benchmarks/results/store.json"),
    "index_types": (
        "index-types.json",
        "pytest benchmarks/bench_index_types.py --benchmark-json=benchmarks/results/index-types.json",
    ),
}


def _load_module(name: str):
    """A sibling script of benchmarks/ as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_hashsearch_bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load_module("report")


# -- machine ----------------------------------------------------------------------------
def machine_lines(runs: dict[str, dict]) -> list[str]:
    """The machine section: one bullet list per distinct setup, naming the runs (JSON
    documents, by suite or file name) made on it."""
    if not runs:
        return ["No results yet.", ""]
    setups: dict[tuple, list[str]] = defaultdict(list)
    described: dict[tuple, list[tuple[str, str]]] = {}
    for name, data in runs.items():
        fields = _machine_fields(data)
        key = tuple(fields)
        setups[key].append(name)
        described[key] = fields
    lines = []
    for key, names in setups.items():
        named = ", ".join(f"`{n}` ({str(runs[n].get('datetime', '?'))[:16]})" for n in names)
        lines += [f"Results {named}:", ""]
        lines += [f"- **{label}**: {value}" for label, value in described[key]]
        lines.append("")
    return lines


def _cpu_text(cpu: dict, mi: dict) -> str:
    """Model, family/model, clock and the SIMD flags the kernels use (py-cpuinfo cache sizes are wrong in VMs)."""
    parts = [str(cpu.get("brand_raw") or mi.get("processor") or "?")]
    if "family" in cpu:
        parts.append(f"family {cpu['family']} model {cpu.get('model', '?')}")
    parts.append(f"{cpu.get('count', '?')} logical CPUs")
    if cpu.get("hz_advertised_friendly"):
        parts.append(str(cpu["hz_advertised_friendly"]))
    flags = set(cpu.get("flags") or [])
    simd = [
        f
        for f in (
            "popcnt",
            "avx2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512_vpopcntdq",
            "avx512_bitalg",
            "avx512_vbmi2",
            "avx512_bf16",
            "amx_bf16",
        )
        if f in flags
    ]
    if simd:
        parts.append("flags " + " ".join(simd))
    return ", ".join(parts)


def _machine_fields(data: dict) -> list[tuple[str, str]]:
    """(label, value) pairs describing the machine and software of one JSON document."""
    mi = data.get("machine_info") or {}
    cpu = mi.get("cpu") or {}
    hs = mi.get("hashsearch") or {}
    ci = data.get("commit_info") or {}
    build = hs.get("build") or {}
    threads_env = ", ".join(f"{k}={v}" for k, v in (hs.get("threads_env") or {}).items() if v is not None)
    simd = f"{hs.get('simd_level', '?')} (supported: {', '.join(hs.get('simd_levels') or []) or '?'})"
    return [
        ("CPU", _cpu_text(cpu, mi)),
        (
            "system",
            f"{mi.get('system', '?')} {mi.get('release', '')}, {mi.get('python_implementation', '')} "
            f"{mi.get('python_version', '?')}",
        ),
        (
            "hashsearch",
            f"{hs.get('version', '?')}, SIMD path {simd}, compiler {build.get('compiler', '?')}, "
            f"CUDA kernels {'built' if build.get('cuda') else 'not built'}",
        ),
        (
            "threads",
            f"default {hs.get('default_num_threads', '?')}; environment: {threads_env or '-'} "
            "(each benchmark pins its own count, shown in its table)",
        ),
        ("libraries", ", ".join(f"{k} {v}" for k, v in (hs.get("versions") or {}).items()) or "?"),
        ("commit", f"{str(ci.get('id', '?'))[:10]}{' (with uncommitted changes)' if ci.get('dirty') else ''}"),
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# -- Table IX ---------------------------------------------------------------------------
def table9_lines(records: list[dict]) -> list[str]:
    rows = report.table9_rows(records)
    if not rows:
        return ["The Table IX JSON holds no Table IX records.", ""]
    threads = sorted({r["threads"] for r in rows if r["threads"] is not None})
    lines = [
        f"Ours on this machine ({', '.join(map(str, threads))} threads, pinned for torch, our kernels and FAISS) "
        "beside the paper's figures, which are the paper's own (MATLAB on an NVIDIA GTX 745 GPU), not measured "
        "here. Training and archive rows are projected from a timed step or subset (column *measured*).",
        "",
        "| Table IX row (l = 32) | implementation | ours | paper (MATLAB, GTX 745) | paper / ours | ours / FAISS "
        "| measured |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        vs = f"{r['vs_faiss']:.2f}" if r["vs_faiss"] is not None else "—"
        lines.append(
            f"| {r['label']} | {_impl_name(r['impl'])} | {report.format_seconds(r['seconds'])} "
            f"| {report.format_seconds(r['paper'])} | {r['speedup']:.3g}× | {vs} | {_measured(r)} |"
        )
    note = (
        "*paper / ours* > 1: faster than the paper. *ours / FAISS* < 1: faster than FAISS `IndexBinaryFlat` "
        "(same codes, same threads). The paper's sorting row sorts precomputed distances; our ranking rows "
        "include the distances (the scan and the selection are one pass)."
    )
    return [*lines, "", note, ""]


def _impl_name(impl: str) -> str:
    return {
        "native": "hashsearch native",
        "numba": "hashsearch numba",
        "numpy": "NumPy reference",
        "faiss": "FAISS IndexBinaryFlat",
        "torch": "hashsearch.training (torch)",
    }.get(impl, impl)


def _measured(row: dict) -> str:
    info = row["extra"]
    parts = []
    scale = float(info.get("scale", 1.0))
    if info.get("unit") and scale != 1.0:
        unit_s = row["seconds"] / scale if scale else row["seconds"]
        parts.append(f"{report.format_seconds(unit_s)} per {info['unit']}")
    if info.get("pairs_per_s"):
        parts.append(f"{info['pairs_per_s']:,} pairs/s")
    if info.get("images_per_s"):
        parts.append(f"{info['images_per_s']:,} images/s")
    return "; ".join(parts) or "—"


# -- engine sweep -----------------------------------------------------------------------
def _int(info: dict, key: str) -> int | None:
    value = info.get(key)
    return int(value) if value is not None else None


def engine_data(records: list[dict]) -> tuple[dict, dict, dict]:
    """(searches, rooflines, bandwidth) from bench_engine records.

    searches: {(n, bits, nq, k, threads): {backend: seconds}}
    rooflines: {(n, bits, nq, threads): seconds}
    bandwidth: {threads: bytes/s}
    """
    searches: dict[tuple, dict[str, float]] = defaultdict(dict)
    rooflines: dict[tuple, float] = {}
    bandwidth: dict[int, float] = {}
    for rec in records:
        info = rec.get("extra_info") or {}
        kind = info.get("kind")
        n, bits, nq, threads = (_int(info, key) for key in ("n", "bits", "nq", "threads"))
        if None in (n, bits, nq, threads):
            continue
        if kind == "roofline":
            rooflines[(n, bits, nq, threads)] = rec["min"]
        elif kind == "bandwidth":
            bandwidth[threads] = float(info["bytes"]) / rec["min"]
        elif "k" in info and rec.get("params", {}).get("backend"):
            searches[(n, bits, nq, int(info["k"]), threads)][rec["params"]["backend"]] = rec["min"]
    return searches, rooflines, bandwidth


def engine_lines(records: list[dict], plot_path: Path | None, plot_ref: str) -> list[str]:
    searches, rooflines, bandwidth = engine_data(records)
    if not searches and not rooflines:
        return ["The engine JSON holds no bench_engine records.", ""]
    lines = [
        "Exact k-NN of random queries over random codes (times: fastest round). *cmp/s*: code comparisons "
        "per second (n × nq / time); *roofline*: the share of the popcount roofline of the same "
        "(n, bits, nq, threads) reached, the roofline being `hashsearch._core.roofline` (XOR + POPCNT only over "
        "the same bytes, 4 queries per load, no distances, thresholds or selection).",
        "",
    ]
    if bandwidth:
        lines += [
            "Streaming read bandwidth (the roofline with one query over 128 MB of codes): "
            + ", ".join(
                f"{bw / 1e9:.1f} GB/s on {t} thread{'s' if t > 1 else ''}" for t, bw in sorted(bandwidth.items())
            )
            + ".",
            "",
        ]
    lines += [
        "| n | bits | nq | k | threads | native | numba | FAISS | native / FAISS | native cmp/s | roofline cmp/s "
        "| native of roofline |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (n, bits, nq, k, threads), times in sorted(searches.items()):
        native, numba, faiss = times.get("native"), times.get("numba"), times.get("faiss")
        roof = rooflines.get((n, bits, nq, threads))
        cmp = n * nq
        lines.append(
            f"| {n:,} | {bits} | {nq} | {k} | {threads} | {_ms(native)} | {_ms(numba)} | {_ms(faiss)} "
            f"| {_ratio(native, faiss)} | {_rate(cmp, native)} | {_rate(cmp, roof)} "
            f"| {_share(roof, native)} |"
        )
    lines.append("")
    k_rows = report.k_scaling_rows(
        [
            {
                "group": f"n={key[0]} bits={key[1]} nq={key[2]} k={key[3]} threads={key[4]}",
                "params": {"backend": b},
                "min": t,
            }
            for key, times in searches.items()
            for b, t in times.items()
        ]
    )
    if k_rows:
        ks = sorted({r["k"] for r in k_rows if r["k"] != r["base_k"]})
        by_case: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        base_k: dict[tuple[str, str], int] = {}
        for r in k_rows:
            by_case[(r["case"], r["backend"])][r["k"]] = r["ratio"]
            base_k[(r["case"], r["backend"])] = r["base_k"]
        lines += [
            "Cost of k: time at k over the same backend's time at the smallest k of the case.",
            "",
            "| case | backend | smallest k | " + " | ".join(f"× at k={k}" for k in ks) + " |",
            "|---|---|---:|" + "---:|" * len(ks),
        ]
        for (case, backend), ratios in by_case.items():
            cells = " | ".join(f"{ratios[k]:.2f}×" if k in ratios else "—" for k in ks)
            lines.append(f"| {case} | {backend} | {base_k[(case, backend)]} | {cells} |")
        lines.append("")
    if plot_path is not None:
        made = engine_plot(searches, rooflines, bandwidth, plot_path)
        if made:
            lines += [
                f"![bit-comparisons/s against the popcount roofline]({plot_ref})",
                "",
                "Bit-comparisons per second (comparisons/s × bits) of the batch cases at the largest n "
                "measured, against the roofline of the same bytes and the streaming bandwidth "
                "(8 bits per byte read: the bound of a scan whose codes come from memory).",
                "",
            ]
        else:
            lines += ["(matplotlib is not installed: no plot.)", ""]
    return lines


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.3f} ms"


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{a / b:.3f}"


def _rate(count: float, seconds: float | None) -> str:
    return "—" if seconds is None or seconds <= 0 else f"{count / seconds:.3g}"


def _share(roof: float | None, native: float | None) -> str:
    return "—" if roof is None or native is None else f"{roof / native:.0%}"


def engine_plot(searches: dict, rooflines: dict, bandwidth: dict, path: Path) -> bool:
    """Write the roofline plot; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    threads_values = sorted({key[-1] for key in searches} | {key[-1] for key in rooflines})
    fig, axes = plt.subplots(
        1, max(1, len(threads_values)), figsize=(5.5 * max(1, len(threads_values)), 4.2), squeeze=False, sharey=True
    )
    for ax, threads in zip(axes[0], threads_values, strict=False):
        batch = [key for key in searches if key[-1] == threads and key[2] > 1]
        n_max = max((key[0] for key in batch), default=None)
        series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        ks = sorted({key[3] for key in batch})
        shown = {ks[0], ks[-1]} if ks else set()
        for n, bits, nq, k, t in sorted(batch):
            if n != n_max or k not in shown:
                continue
            for backend, seconds in searches[(n, bits, nq, k, t)].items():
                series[f"{backend} k={k}"].append((bits, n * nq * bits / seconds))
        roof = sorted(
            (bits, n * nq * bits / s) for (n, bits, nq, t), s in rooflines.items() if t == threads and n == n_max
        )
        for label, points in sorted(series.items()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=label, linestyle="-" if label.startswith("native") else "--")
        if roof:
            xs, ys = zip(*roof, strict=True)
            ax.plot(xs, ys, color="black", linewidth=2.5, label="popcount roofline")
        if threads in bandwidth:
            ax.axhline(bandwidth[threads] * 8, color="grey", linestyle=":", label="streaming bandwidth × 8")
        ax.set_xscale("log", base=2)
        ticks = sorted({key[1] for key in rooflines} | {key[1] for key in batch})
        ax.set_xticks(ticks, [str(b) for b in ticks])
        ax.set_yscale("log")
        ax.set_xlabel("code length (bits)")
        ax.set_title(f"{threads} thread{'s' if threads > 1 else ''}, n = {n_max:,}" if n_max else f"{threads} threads")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("bit-comparisons / s")
    handles: dict[str, object] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="lower center", ncol=min(5, len(handles)))
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# -- store ------------------------------------------------------------------------------
_STORE_KEYS = ("ratio_to_ram", "ram_s", "codes_per_min", "comparisons_per_s", "wall_s", "workers", "threads")


def store_lines(records: list[dict]) -> list[str]:
    if not records:
        return ["The store JSON holds no records.", ""]
    lines = ["| benchmark | params | fastest | median | key figures |", "|---|---|---:|---:|---|"]
    for rec in sorted(records, key=lambda r: r["group"]):
        info = rec.get("extra_info") or {}
        figures = ", ".join(f"{key} {_fmt(info[key])}" for key in _STORE_KEYS if key in info)
        params = ", ".join(f"{k}={v}" for k, v in (rec.get("params") or {}).items())
        lines.append(
            f"| {rec['group']} | {params} | {report.format_seconds(rec['min'])} "
            f"| {report.format_seconds(rec['median'])} | {figures or '—'} |"
        )
    return [*lines, ""]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return str(value)


# -- the page ---------------------------------------------------------------------------
def render(
    docs: dict[str, Any], plot_path: Path | None, plot_ref: str = PLOT, runs: dict[str, dict] | None = None
) -> str:
    """The whole Markdown page from the JSON documents found (keys of INPUTS; "index_types"
    a list, one document per size). runs: the documents by name for the machine section
    (default: docs, one per suite)."""
    lines = [
        "# Benchmarks",
        "",
        "<!-- generated by benchmarks/make_docs.py from benchmarks/results/*.json: edit the script, not this page -->",
        "",
        "Regenerate (each benchmark on a quiet machine, one at a time, then the page):",
        "",
        "```bash",
        *[cmd for _, cmd in INPUTS.values()],
        "python benchmarks/make_docs.py",
        "```",
        "",
        "## Machine",
        "",
        *machine_lines(runs if runs is not None else docs),
        "## Table IX: the paper's timings beside ours",
        "",
    ]
    sections = [
        ("table9", lambda d: table9_lines(report.records_from_json(d))),
        ("engine", None),
        ("store", lambda d: store_lines(report.records_from_json(d))),
        ("index_types", None),
    ]
    for key, build in sections:
        if key == "engine":
            lines += ["## Engine sweep: bits × k × n × threads", ""]
        elif key == "store":
            lines += ["## Code stores: out of core, appends, batches", ""]
        elif key == "index_types":
            lines += ["## Index types", ""]
        if key not in docs:
            lines += [f"Not measured yet: `{INPUTS[key][1]}`, then `python benchmarks/make_docs.py`.", ""]
            continue
        if key == "engine":
            lines += engine_lines(report.records_from_json(docs[key]), plot_path, plot_ref)
        elif key == "index_types":
            itr = _load_module("index_types_report")
            # one JSON per size (index-types-1m.json, index-types-10m-64.json, ...) or one for all
            section = itr.render(itr.records(*docs[key]))
            lines += [
                line.replace("## ", "### ", 1) if line.startswith("## ") else line for line in section.splitlines()
            ] + [""]
        else:
            lines += build(docs[key])
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files (default %(default)s)")
    for key, (name, _) in INPUTS.items():
        if key == "index_types":
            parser.add_argument(
                "--index-types", type=Path, nargs="+", default=None,
                help="JSON files of bench_index_types.py, one per size (default RESULTS/index-types*.json)",
            )
            continue
        parser.add_argument(
            f"--{key.replace('_', '-')}", type=Path, default=None, help=f"JSON of that suite (default RESULTS/{name})"
        )
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT, help="Markdown page (default %(default)s)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    args = parser.parse_args(argv)
    docs: dict[str, Any] = {}
    runs: dict[str, dict] = {}  # by name, for the machine section
    for key, (name, _) in INPUTS.items():
        if key == "index_types":
            paths = args.index_types or sorted(args.results.glob("index-types*.json"))
            if paths:
                docs[key] = [json.loads(p.read_text()) for p in paths]
                runs.update(zip((p.name for p in paths), docs[key], strict=True))
            continue
        path = getattr(args, key) or args.results / name
        if path.is_file():
            docs[key] = runs[key] = json.loads(path.read_text())
    plot_path = None if args.no_plot else args.output.parent / PLOT
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(docs, plot_path, runs=runs))
    print(f"wrote {args.output} from {', '.join(sorted(docs)) or 'no results'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
