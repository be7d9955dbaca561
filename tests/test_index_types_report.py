"""benchmarks/index_types_report.py: the issue's bars for multi-index hashing, read from
benchmark records (hand-made here, with the ratios worked out in the comments)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parent.parent / "benchmarks" / "index_types_report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("index_types_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(index_type, codes, queries, n, k, median_s, nq=100, path=None):
    """One pytest-benchmark entry as bench_index_types.py writes it."""
    return {
        "stats": {"median": median_s},
        "extra_info": {
            "index_type": index_type, "codes": codes, "queries": queries, "n": n, "bits": 64, "k": k,
            "nq": nq, "threads": 1, "exact": True, "recall": 1.0, "memory_bytes": 2**20, "build_s": 1.0,
            "search_path": path,
        },
    }


def test_bars_at_the_issue_size_and_beside_it(report, tmp_path):
    n = 10_000_000
    data = {
        "benchmarks": [
            # near-4, k=1: Flat 33 ms / MIH 0.25 ms per round = 132x -> bar (>= 100x) met
            bench("Flat", "uniform", "near-4", n, 1, 0.033),
            bench("MIH", "uniform", "near-4", n, 1, 0.00025, path="mih"),
            # clustered k=10: 30 ms / 1.5 ms = 20x -> bar (>= 30x) missed
            bench("Flat", "clustered", "near-centre", n, 10, 0.030),
            bench("MIH", "clustered", "near-centre", n, 10, 0.0015, path="mih"),
            # uniform: k=1 33/30 = 1.1x, k=100 36/40 = 0.9x (the least) >= 1/1.2 -> met
            bench("Flat", "uniform", "uniform", n, 1, 0.033),
            bench("MIH", "uniform", "uniform", n, 1, 0.030, path="flat"),
            bench("Flat", "uniform", "uniform", n, 100, 0.036),
            bench("MIH", "uniform", "uniform", n, 100, 0.040, path="flat"),
            # the same bar at 1M: shown, not judged
            bench("Flat", "uniform", "near-4", 1_000_000, 1, 0.0033),
            bench("MIH", "uniform", "near-4", 1_000_000, 1, 0.001, path="mixed"),
        ]
    }
    recs = report.records(data)
    got = {(b["n"], b["what"].split(":")[0]): b for b in report.bars(recs)}
    near = got[(n, "uniform codes, query 4 bits from a stored code, k = 1")]
    assert near["speedup"] == pytest.approx(132.0) and near["met"] is True and near["path"] == "mih"
    clustered = got[(n, "looser clusters, query about 4 bits from a centre, k = 10")]
    assert clustered["speedup"] == pytest.approx(20.0) and clustered["met"] is False
    uniform = got[(n, "uniform queries, no near neighbour")]
    assert uniform["k"] == 100 and uniform["speedup"] == pytest.approx(0.9) and uniform["met"] is True
    small = got[(1_000_000, "uniform codes, query 4 bits from a stored code, k = 1")]
    assert small["speedup"] == pytest.approx(3.3) and small["met"] is None

    # main() merges several JSON files into one section of the output file
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"benchmarks": data["benchmarks"][:8]}))
    b.write_text(json.dumps({"benchmarks": data["benchmarks"][8:]}))
    out = tmp_path / "index-types.md"
    out.write_text("# Index types\n\nhand-written part\n")
    assert report.main([str(a), str(b), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Index types\n\nhand-written part\n")
    row = "| 10,000,000 | 64 | looser clusters, query about 4 bits from a centre, k = 10: >= 30x | 10 | 20.00× |"
    assert row in text
    assert "### uniform codes, near-4 queries: n = 1,000,000, 64 bits" in text
