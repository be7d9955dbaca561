"""The engine demo: known answers found, FAISS agrees, the report is complete."""

from __future__ import annotations

import pytest

from hashsearch.demo import EngineDemoConfig, run_engine_demo


@pytest.mark.parametrize("backend", ["native", "numba", "numpy"])
def test_demo_finds_every_source_code_and_agrees_with_faiss(backend):
    from hashsearch import available_backends

    if backend not in available_backends():
        pytest.skip(f"backend {backend!r} is not available here")
    config = EngineDemoConfig(n=5000, nbits=64, nq=40, k=5, flips=3, single_repeats=2, backend=backend, num_threads=1)
    report = run_engine_demo(config)
    assert report["backend"] == backend
    assert report["found_source"] == 1.0  # every query finds the code it was made from
    assert report["top1_distance_max"] <= config.flips
    assert report["range_results"] >= config.nq
    assert report["faiss_distances_equal"] is True
    assert report["speedup_batch"] > 0 and report["comparisons_per_s"] > 0
    assert report["config"]["num_threads"] == 1


def test_demo_without_faiss_and_odd_lengths():
    report = run_engine_demo(EngineDemoConfig(n=700, nbits=24, nq=7, k=3, flips=2, single_repeats=1,
                                              compare_faiss=False))
    assert report["found_source"] == 1.0
    assert "faiss_batch_s" not in report and "speedup_batch" not in report


def test_demo_rejects_bad_configuration():
    with pytest.raises(ValueError, match="multiple of 8"):
        run_engine_demo(EngineDemoConfig(n=10, nbits=12, nq=1, compare_faiss=False))
