"""Shared fixtures.

- ``backend``: one instance per backend this machine runs (``available_backends()``,
  the NumPy reference included) and, for the native core, one per SIMD path the CPU
  has (forced with ``_core.set_simd_level`` and restored afterwards). Test ids read
  ``native-avx512``, ``native-generic``, ``numba``, ``numpy``, and ``cuda`` (marked
  ``gpu``: deselected by default, skipped with the reason without a GPU). When the native core
  is missing, a single ``native`` case skips with the reason, or fails when
  ``HASHSEARCH_REQUIRE_NATIVE=1`` (CI).
- ``rng``: a NumPy generator seeded from the test's id, so every test draws the
  same data on every run and machine.

Helpers (the oracle, comparisons) live in ``tests/search_helpers.py``; seeded codes come
from :mod:`hashsearch.synthetic`.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from search_helpers import native_unavailable_reason, require_native

from hashsearch.backends import available_backends, make_backend

# Deterministic property tests (no time-seeded runs), few examples: the whole suite
# runs in CI on 2 cores. `--hypothesis-profile=thorough` explores more.
settings.register_profile(
    "hashsearch",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("hashsearch"), max_examples=500, derandomize=False)
settings.load_profile("hashsearch")

#: Threads the tests use at most (CI runs on 2 shared cores).
MAX_THREADS = 2


def _backend_cases() -> list:
    cases = []
    names = available_backends()
    if "native" not in names:
        cases.append(pytest.param(("native", None), id="native"))
    for name in names:
        if name == "native":
            from hashsearch import simd_levels

            cases.extend(pytest.param(("native", level), id=f"native-{level}") for level in simd_levels())
        elif name != "cuda":
            cases.append(pytest.param((name, None), id=name))
    # The CUDA backend joins every backend test, marked gpu (out of the default run):
    # `pytest -m gpu` runs them on a machine with a GPU and skips them, with the
    # reason, elsewhere.
    cases.append(pytest.param(("cuda", None), id="cuda", marks=pytest.mark.gpu))
    return cases


BACKEND_CASES = _backend_cases()


@pytest.fixture(params=BACKEND_CASES)
def backend(request):
    """A ready Backend (num_threads=2) for each backend and native SIMD path."""
    name, level = request.param
    if name == "native":
        require_native()
    if name == "cuda":
        from hashsearch.backends.cuda import CudaBackend

        reason = CudaBackend.unavailable_reason()
        if reason is not None:
            pytest.skip(f"CUDA backend unavailable: {reason}")
        # Small query batches, so the tests cross batch and lane boundaries.
        yield CudaBackend(num_threads=MAX_THREADS, batch_limit=8 << 20)
        return
    if level is None:
        yield make_backend(name, num_threads=MAX_THREADS)
        return
    from hashsearch import _core

    previous = _core.simd_level()
    _core.set_simd_level(level)
    try:
        assert _core.simd_level() == level
        yield make_backend(name, num_threads=MAX_THREADS)
    finally:
        _core.set_simd_level(previous)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test id (stable across runs and machines)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def pytest_report_header(config) -> list[str]:
    reason = native_unavailable_reason()
    native = "native: " + ("available" if reason is None else f"UNAVAILABLE ({reason})")
    return [f"hashsearch backends: {', '.join(available_backends())}; {native}"]
