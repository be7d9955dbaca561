"""Search backends and the one place where one is chosen.

Every backend implements :class:`hashsearch.backends.base.Backend` (exact kernels
over packed codes, returning database positions). Which one runs is decided here:

1. an explicit name (``BinaryIndex(nbits, backend="numba")``) or Backend instance;
2. else, for ``"auto"``, the environment variable ``HASHSEARCH_BACKEND``;
3. else the first available of :data:`AUTO_ORDER` — the compiled ``native``
   core, then ``numba`` (when the extension is not built), then ``numpy``.

The choice is logged once per process at INFO on the ``hashsearch`` logger and is
visible as ``index.backend``. New backends (CUDA, FAISS) register a name here.
"""

from __future__ import annotations

import importlib
import logging
import os

from hashsearch.backends.base import PAD_DISTANCE, PAD_POSITION, Backend, default_num_threads
from hashsearch.errors import BackendUnavailableError

__all__ = [
    "AUTO_ORDER",
    "Backend",
    "PAD_DISTANCE",
    "PAD_POSITION",
    "available_backends",
    "backend_class",
    "default_num_threads",
    "make_backend",
    "register_backend",
]

logger = logging.getLogger("hashsearch")

#: name -> "module:Class", imported only when asked for.
_REGISTRY: dict[str, str] = {
    "native": "hashsearch.backends.native:NativeBackend",
    "numba": "hashsearch.backends.numba_backend:NumbaBackend",
    "numpy": "hashsearch.backends.numpy_backend:NumpyBackend",
    # Only by name (or HASHSEARCH_BACKEND): see hashsearch.backends.cuda for why not "auto".
    "cuda": "hashsearch.backends.cuda:CudaBackend",
}

#: Order in which ``backend="auto"`` tries the backends.
AUTO_ORDER: tuple[str, ...] = ("native", "numba", "numpy")

_logged: set[tuple[str, str]] = set()


def register_backend(name: str, target: str) -> None:
    """Make a backend available by name.

    Args:
        name: the name users pass as ``backend=`` (lower case).
        target: ``"package.module:ClassName"`` of a :class:`Backend` subclass;
            imported on first use.
    """
    if not name or name != name.lower() or name == "auto":
        raise ValueError(f"backend names are lower-case and not 'auto', got {name!r}")
    _REGISTRY[name] = target


def backend_class(name: str) -> type[Backend]:
    """Return the backend class registered under ``name``.

    Raises:
        ValueError: no backend of that name.
        BackendUnavailableError: its module cannot be imported.
    """
    try:
        target = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown backend {name!r}; known backends: auto, {known}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailableError(f"backend {name!r} cannot be imported: {exc}") from exc
    return getattr(module, class_name)


def _unavailable_reason(name: str) -> str | None:
    try:
        cls = backend_class(name)
    except BackendUnavailableError as exc:
        return str(exc)
    return cls.unavailable_reason()


def available_backends() -> list[str]:
    """Names of the backends that can run on this machine, in ``auto`` order first."""
    order = list(AUTO_ORDER) + sorted(set(_REGISTRY) - set(AUTO_ORDER))
    return [name for name in order if _unavailable_reason(name) is None]


def make_backend(spec: str | Backend | None = "auto", num_threads: int | None = None) -> Backend:
    """Resolve a backend argument to a ready :class:`Backend` instance.

    Args:
        spec: a backend name, ``"auto"`` (or None), or an instance (returned as is,
            with ``num_threads`` applied when given).
        num_threads: threads for the kernels; None for :func:`default_num_threads`.

    Raises:
        TypeError: ``spec`` is neither a string nor a Backend.
        ValueError: unknown backend name.
        BackendUnavailableError: the named backend cannot run here (the message says why).
    """
    if isinstance(spec, Backend):
        if num_threads is not None:
            spec.num_threads = num_threads
        return spec
    if spec is None:
        spec = "auto"
    if not isinstance(spec, str):
        raise TypeError(f"backend must be a name or a Backend instance, got {type(spec).__name__}")
    name = spec.strip().lower()
    source = "argument"
    if name == "auto":
        env = os.environ.get("HASHSEARCH_BACKEND", "").strip().lower()
        if env and env != "auto":
            name, source = env, "HASHSEARCH_BACKEND"
    if name == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            reason = _unavailable_reason(candidate)
            if reason is None:
                name, source = candidate, "auto"
                break
            reasons.append(f"{candidate}: {reason}")
        else:  # pragma: no cover - numpy is always available
            raise BackendUnavailableError("no backend available: " + "; ".join(reasons))
        if reasons:
            _log_once(("fallback", name), "backend %r used because %s", name, "; ".join(reasons))
    if source == "HASHSEARCH_BACKEND" and name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown backend {name!r} in the environment variable HASHSEARCH_BACKEND; known: {known}")
    reason = _unavailable_reason(name)
    if reason is not None:
        where = " (from HASHSEARCH_BACKEND)" if source == "HASHSEARCH_BACKEND" else ""
        raise BackendUnavailableError(f"backend {name!r}{where} is not available: {reason}")
    backend = backend_class(name)(num_threads=num_threads)
    simd = f", SIMD {backend.simd_level}" if backend.simd_level else ""
    _log_once((name, source), "search backend %r chosen by %s%s", name, source, simd)
    return backend


def _log_once(key: tuple[str, str], msg: str, *args: object) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.info(msg, *args)
