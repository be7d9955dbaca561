"""Input checks shared by every layer (index, store, searches, data, training).

Every public entry point validates here, once, so kernels can trust their input.
Errors say what was expected and what came, with one exception type per kind of
mistake: ``TypeError`` for a wrong kind or dtype (a float or a bool where an int
belongs, a float array where packed codes belong), ``ValueError`` for a wrong
shape, width or value (an int below its minimum, a code of the wrong width).

This module is the base of the package: it imports only NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "MAX_NBITS",
    "MAX_PADDING_BYTES",
    "check_int",
    "check_nbits",
    "as_codes",
    "check_k",
    "check_radius",
    "as_ids",
    "as_lookup_ids",
    "first_duplicate",
]

#: Largest code length the engine accepts (bits).
MAX_NBITS = 1 << 16


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value: Any, name: str, minimum: int | None = 1) -> int:
    """Return ``value`` as an int after checking it is an integer ``>= minimum``.

    The one check of integer arguments (counts, sizes, seeds, thread numbers).

    Args:
        value: the argument (a Python or NumPy integer; bools are refused).
        name: the argument's name, for the message.
        minimum: smallest value allowed (default 1: a positive int); None for no bound.

    Raises:
        TypeError: not an integer (a float, a bool, a string...).
        ValueError: below ``minimum``.
    """
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r:.40}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_nbits(nbits: Any) -> int:
    """Return ``nbits`` as an int after checking it is a positive multiple of 8.

    Raises:
        TypeError: not an integer.
        ValueError: not a positive multiple of 8, or above :data:`MAX_NBITS`.
    """
    if not _is_int(nbits):
        raise TypeError(f"nbits must be an int, got {type(nbits).__name__}")
    nbits = int(nbits)
    if nbits <= 0 or nbits % 8:
        raise ValueError(f"nbits must be a positive multiple of 8, got {nbits}")
    if nbits > MAX_NBITS:
        raise ValueError(f"nbits must be at most {MAX_NBITS}, got {nbits}")
    return nbits


def as_codes(x: Any, nbits: int, name: str = "codes", *, allow_1d: bool = True) -> np.ndarray:
    """Return packed codes as a C-contiguous uint8 (n, nbits // 8) array.

    Args:
        x: uint8 array-like of shape (n, nbits // 8), or (nbits // 8,) for a single code
            when ``allow_1d``. Non-contiguous input is copied; contiguous input is not.
        nbits: the code length the caller expects.
        name: the argument's name, for error messages.
        allow_1d: accept a single 1-D code (returned as shape (1, nbytes)).

    Raises:
        TypeError: not a uint8 array (pack real-valued codes with ``hashsearch.pack``).
        ValueError: wrong number of dimensions or wrong code width.
    """
    if type(x).__module__.split(".", 1)[0] == "torch":
        from hashsearch.packing import _to_numpy

        x = _to_numpy(x)
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    nbytes = nbits // 8
    if arr.dtype != np.uint8:
        hint = " (use hashsearch.pack to pack real-valued, ±1 or 0/1 codes)" if arr.dtype.kind in "biuf" else ""
        raise TypeError(f"{name} must be packed uint8 codes, got dtype {arr.dtype}{hint}")
    if arr.ndim == 1 and allow_1d:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, {nbytes}), got shape {arr.shape}")
    if arr.shape[1] != nbytes:
        raise ValueError(
            f"{name} have {arr.shape[1]} bytes per code ({arr.shape[1] * 8} bits), "
            f"expected {nbytes} bytes for nbits={nbits}"
        )
    return np.ascontiguousarray(arr)


#: Largest padding a k-NN result may carry past ``ntotal`` (bytes of int32 distances
#: and int64 ids): a k far above the database size is a mistake, not a request.
MAX_PADDING_BYTES = 1 << 30

#: Bytes per k-NN result entry: an int32 distance and an int64 id.
RESULT_ENTRY_BYTES = 4 + 8


def check_k(k: Any, ntotal: int | None = None, nq: int = 1) -> int:
    """Return ``k`` as an int after checking it is >= 1 and not absurdly above ``ntotal``.

    ``k > ntotal`` is allowed (the extra columns are padding, as in FAISS) as long as
    the padding, ``nq * (k - ntotal)`` entries of 12 bytes, stays within
    :data:`MAX_PADDING_BYTES` (1 GiB); beyond that the search would fail allocating
    (or take all memory) for a result that is nearly all padding, so it is refused
    before anything is allocated.

    Args:
        k: neighbours per query (a Python or NumPy integer).
        ntotal: codes searched; None skips the size check.
        nq: number of queries of the search (the result has ``nq`` rows).

    Raises:
        TypeError: k is not an integer.
        ValueError: k < 1, or k so far above ntotal that the padding alone would
            exceed :data:`MAX_PADDING_BYTES` (the message gives k, ntotal and the
            result's size).
    """
    k = check_int(k, "k")
    if ntotal is not None and k > ntotal:
        rows = max(int(nq), 1)
        padding = rows * (k - int(ntotal)) * RESULT_ENTRY_BYTES
        if padding > MAX_PADDING_BYTES:
            total = rows * k * RESULT_ENTRY_BYTES
            most = int(ntotal) + MAX_PADDING_BYTES // (rows * RESULT_ENTRY_BYTES)
            raise ValueError(
                f"k={k} is far above ntotal={ntotal}: the result for {nq} "
                f"quer{'y' if nq == 1 else 'ies'} would be {rows} x {k} entries "
                f"(int32 distance + int64 id), {_format_bytes(total)}, all but {ntotal} "
                f"columns padding; use k <= {most} (k <= ntotal={ntotal} returns every code)"
            )
    return k


def _format_bytes(n: int) -> str:
    """``n`` bytes in binary units, e.g. '12.0 TiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"  # unreachable


def check_radius(radius: Any, nbits: int) -> int:
    """Return ``radius`` as an int after checking it is >= 0 (values above nbits are clipped)."""
    if not _is_int(radius):
        raise TypeError(f"radius must be an int, got {type(radius).__name__}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return int(min(radius, nbits))


def as_ids(ids: Any, n: int, name: str = "ids") -> np.ndarray:
    """Return ids as a C-contiguous int64 (n,) array of distinct non-negative values.

    Raises:
        TypeError: not an integer array.
        ValueError: wrong shape or length, negative or duplicate ids.
    """
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if arr.size == 0 and arr.dtype.kind in "fbO":
        arr = arr.astype(np.int64)  # np.asarray([]) is float64: an empty list is fine
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64, got {int(arr.max())}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries for {n} codes")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if n and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative (-1 marks 'no result'), got {int(arr.min())}")
    dup = first_duplicate(arr)
    if dup is not None:
        raise ValueError(f"{name} contains duplicates, e.g. {dup}")
    return arr


def first_duplicate(ids: np.ndarray) -> int | None:
    """The smallest value that occurs more than once in ``ids`` (1-D integers), or None."""
    if ids.size < 2:
        return None
    sorted_ids = np.sort(ids)
    dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
    return int(dup[0]) if dup.size else None


def as_lookup_ids(ids: Any, name: str = "ids") -> tuple[np.ndarray, np.ndarray]:
    """Ids to look up (``remove_ids``, ``reconstruct``): any integers, any shape.

    Returns:
        (ids int64 (m,), valid bool (m,)): ids flattened; ``valid`` is False for values
        outside int64 (they cannot be stored, so they are simply not found).

    Raises:
        TypeError: not integers.
    """
    if not isinstance(ids, np.ndarray):
        flat = _flat(ids)
        if not all(_is_int(v) for v in flat):
            raise TypeError(f"{name} must be integers, got {ids!r:.60}")
        ints = [int(v) for v in flat]
        valid = np.array([_INT64_MIN <= v <= _INT64_MAX for v in ints], dtype=bool)
        return np.array([v if ok else -1 for v, ok in zip(ints, valid, strict=True)], dtype=np.int64), valid
    if ids.dtype.kind not in "iu" and ids.size:
        raise TypeError(f"{name} must be integers, got dtype {ids.dtype}")
    arr = ids.ravel()
    if arr.dtype == np.uint64:
        valid = arr <= _INT64_MAX
        return np.where(valid, arr, 0).astype(np.int64), valid
    return arr.astype(np.int64, copy=False), np.ones(arr.shape, dtype=bool)


_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def _flat(values: Any) -> list[Any]:
    if isinstance(values, (list, tuple)):
        return [v for item in values for v in _flat(item)]
    return [values]
