"""Choosing a backend: ``auto`` order, ``HASHSEARCH_BACKEND``, logging, instances, registration."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from search_helpers import require_native

import hashsearch
import hashsearch.backends as backends_mod
from hashsearch import BackendUnavailableError, BinaryIndex
from hashsearch.backends import (
    AUTO_ORDER,
    available_backends,
    backend_class,
    default_num_threads,
    make_backend,
    register_backend,
)
from hashsearch.backends.numpy_backend import NumpyBackend


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Each test sees the real registry, no HASHSEARCH_* variables and an empty 'logged' set."""
    monkeypatch.setattr(backends_mod, "_REGISTRY", dict(backends_mod._REGISTRY))
    monkeypatch.setattr(backends_mod, "_logged", set())
    monkeypatch.delenv("HASHSEARCH_BACKEND", raising=False)
    monkeypatch.delenv("HASHSEARCH_NUM_THREADS", raising=False)


def _first_available(order):
    return next(name for name in order if name in available_backends())


def test_auto_order():
    assert AUTO_ORDER == ("native", "numba", "numpy")
    names = available_backends()
    assert "numpy" in names
    assert names[: len([n for n in AUTO_ORDER if n in names])] == [n for n in AUTO_ORDER if n in names]
    assert make_backend("auto").name == _first_available(AUTO_ORDER)
    assert make_backend(None).name == _first_available(AUTO_ORDER)
    assert BinaryIndex(64).backend == _first_available(AUTO_ORDER)


def test_native_is_chosen_by_auto_when_built():
    require_native()
    assert available_backends()[0] == "native"
    backend = make_backend("auto")
    assert backend.name == "native"
    assert backend.simd_level == hashsearch.simd_level() in hashsearch.simd_levels()
    assert BinaryIndex(8).simd_level == hashsearch.simd_level()


def test_auto_falls_back_in_order_and_logs_why(monkeypatch, caplog):
    monkeypatch.setitem(backends_mod._REGISTRY, "native", "search_helpers:UnavailableBackend")
    caplog.set_level(logging.INFO, logger="hashsearch")
    expected = _first_available(("numba", "numpy"))
    assert make_backend("auto").name == expected
    fallback = [r.getMessage() for r in caplog.records if "used because" in r.getMessage()]
    assert len(fallback) == 1 and "native: it is a test double" in fallback[0]
    monkeypatch.setitem(backends_mod._REGISTRY, "numba", "search_helpers:UnavailableBackend")
    assert make_backend("auto").name == "numpy"


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("HASHSEARCH_BACKEND", " NumPy ")
    assert make_backend("auto").name == "numpy"
    assert BinaryIndex(64).backend == "numpy"
    assert make_backend(None).name == "numpy"
    # an explicit name wins over the environment
    other = _first_available(AUTO_ORDER)
    assert make_backend(other).name == other
    monkeypatch.setenv("HASHSEARCH_BACKEND", "auto")
    assert make_backend("auto").name == _first_available(AUTO_ORDER)


def test_environment_variable_naming_an_unavailable_backend(monkeypatch):
    monkeypatch.setitem(backends_mod._REGISTRY, "unavailable", "search_helpers:UnavailableBackend")
    monkeypatch.setenv("HASHSEARCH_BACKEND", "unavailable")
    with pytest.raises(BackendUnavailableError, match="'unavailable' \\(from HASHSEARCH_BACKEND\\) is not available"):
        BinaryIndex(64)


def test_environment_variable_with_an_unknown_name_says_where_it_came_from(monkeypatch):
    monkeypatch.setenv("HASHSEARCH_BACKEND", "nmba")
    with pytest.raises(ValueError, match="unknown backend 'nmba'.*HASHSEARCH_BACKEND"):
        BinaryIndex(64)


def test_choice_is_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="hashsearch")
    for _ in range(3):
        make_backend("numpy")
        BinaryIndex(16, backend="numpy")
    chosen = [r for r in caplog.records if "chosen by" in r.getMessage()]
    assert len(chosen) == 1
    assert chosen[0].name == "hashsearch" and chosen[0].levelno == logging.INFO
    assert "'numpy' chosen by argument" in chosen[0].getMessage()


def test_instance_is_passed_through():
    impl = NumpyBackend(num_threads=2)
    assert make_backend(impl) is impl and impl.num_threads == 2
    assert make_backend(impl, num_threads=1) is impl and impl.num_threads == 1
    assert BinaryIndex(64, backend=impl).backend_impl is impl


def test_unknown_and_bad_specs():
    with pytest.raises(ValueError, match="unknown backend 'faster'; known backends: auto, cuda, native, numba, numpy"):
        make_backend("faster")
    with pytest.raises(TypeError, match="backend must be a name or a Backend instance, got int"):
        make_backend(1)
    with pytest.raises(ValueError, match="unknown backend"):
        backend_class("auto")


def test_register_backend(monkeypatch):
    register_backend("reference", "hashsearch.backends.numpy_backend:NumpyBackend")
    assert "reference" in available_backends()
    assert available_backends()[-1] == "reference"  # after the auto order
    assert isinstance(make_backend("reference"), NumpyBackend)
    for bad in ("", "Reference", "auto"):
        with pytest.raises(ValueError, match="lower-case and not 'auto'"):
            register_backend(bad, "x:Y")
    register_backend("broken", "hashsearch.no_such_module:Backend")
    assert "broken" not in available_backends()
    with pytest.raises(BackendUnavailableError, match="'broken' cannot be imported"):
        make_backend("broken")


def test_numba_backend_unavailable_without_numba():
    # A machine where numba cannot be imported: numba is reported unavailable with the
    # reason, and auto falls back to the native core or NumPy.
    script = (
        "import sys\n"
        "sys.modules['numba'] = None\n"
        "from hashsearch.backends import available_backends, make_backend\n"
        "from hashsearch.backends.numba_backend import NumbaBackend\n"
        "reason = NumbaBackend.unavailable_reason()\n"
        "assert reason and 'numba cannot be imported' in reason, reason\n"
        "assert 'numba' not in available_backends()\n"
        "assert make_backend('auto').name in ('native', 'numpy')\n"
        "try:\n"
        "    make_backend('numba')\n"
        "except Exception as exc:\n"
        "    assert type(exc).__name__ == 'BackendUnavailableError' and 'numba' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('numba backend created without numba')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_default_num_threads(monkeypatch):
    assert default_num_threads() >= 1
    monkeypatch.setenv("HASHSEARCH_NUM_THREADS", "1")
    assert default_num_threads() == 1
    assert make_backend("numpy").num_threads == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("HASHSEARCH_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="HASHSEARCH_NUM_THREADS must be a positive integer"):
            default_num_threads()
