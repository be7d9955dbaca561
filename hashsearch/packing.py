"""Packing binary codes: one function owns the conventions.

A code of ``nbits`` bits is stored as ``nbits // 8`` uint8 bytes. Bit ``k`` of a
code goes to bit ``k % 8`` of byte ``k // 8``, least significant first — the
layout of ``np.packbits(..., bitorder="little")`` and of FAISS's binary indexes,
so packed codes move between hashsearch and FAISS unchanged.

Which values become bit 1:

- ``encoding="sign"``: value >= 0 -> 1, value < 0 -> 0 (real-valued features,
  ±1 codes). Zero is a 1, never a third value (SPEC §2, Algorithm 2).
- ``encoding="binary"``: nonzero -> 1, zero -> 0 ({0, 1} and bool codes).
- ``encoding="auto"`` (default): bool arrays and arrays whose values are all 0 or
  1 use "binary"; everything else uses "sign". Pass the encoding explicitly when a
  real-valued array could happen to hold only zeros and ones.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import numpy as np

__all__ = ["BIT_ORDER", "pack", "sign_codes", "unpack"]

#: Bit order of packed codes, recorded in stores and checked when they are opened.
BIT_ORDER: Final = "little"

Encoding = Literal["auto", "sign", "binary"]


def _is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch object (checked without importing torch)."""
    return type(x).__module__.split(".", 1)[0] == "torch"


def _sign_bits(x: Any) -> Any:
    """The sign rule, the one place it is written: value >= 0 -> bit 1 (NumPy array or torch tensor)."""
    return x >= 0


def _to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a NumPy array; torch tensors are converted without importing torch."""
    if _is_torch(x):
        # A torch.Tensor: detach from autograd, move to host memory.
        x = x.detach()
        if getattr(x, "is_cuda", False) or str(getattr(x, "device", "cpu")) != "cpu":
            x = x.cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x)


def pack(x: Any, *, encoding: Encoding = "auto") -> np.ndarray:
    """Pack codes into bytes, least-significant bit first.

    Args:
        x: real-valued, ±1, {0, 1} or bool array-like (NumPy array, torch tensor,
            nested lists) of shape (n, nbits) or (nbits,); nbits must be a positive
            multiple of 8.
        encoding: which values become bit 1 (see the module docstring).

    Returns:
        uint8 array of shape (n, nbits // 8), or (nbits // 8,) for 1-D input.

    Raises:
        TypeError: ``x`` is not numeric (strings, objects, complex).
        ValueError: wrong number of dimensions, nbits not a positive multiple of 8,
            NaN or infinite values, or an unknown encoding.

    Example:
        >>> pack(np.array([[0.3, -1.2, 0.0, 2.0, -0.1, -5.0, 1.0, -1.0]]))
        array([[77]], dtype=uint8)
    """
    if encoding not in ("auto", "sign", "binary"):
        raise ValueError(f"encoding must be 'auto', 'sign' or 'binary', got {encoding!r}")
    arr = _to_numpy(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"pack expects a numeric or bool array, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(f"pack expects shape (n, nbits) or (nbits,), got shape {arr.shape}")
    nbits = arr.shape[-1]
    if nbits == 0 or nbits % 8:
        raise ValueError(f"nbits (the last dimension) must be a positive multiple of 8, got {nbits}")
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"cannot pack codes with NaN or infinite values ({bad} found)")
    if encoding == "auto":
        encoding = "binary" if arr.dtype.kind == "b" or _only_zero_one(arr) else "sign"
    bits = _sign_bits(arr) if encoding == "sign" else arr != 0
    return np.packbits(bits, axis=-1, bitorder=BIT_ORDER)


def sign_codes(x: Any) -> Any:
    """The ±1 form of ``encoding="sign"``: +1 where :func:`pack` writes bit 1 (x >= 0), -1 elsewhere.

    For code that needs the signs unpacked (Algorithm 1's B = sign(F^P + F^M), ITQ's and
    SCM's sign(XW)): the same rule as :func:`pack`, so such codes pack to what the engine
    searches. Zero is +1, never a third value.

    Args:
        x: real NumPy array or torch tensor (torch is not imported here), any shape.

    Returns:
        The same kind of array (a tensor stays on its device), the same shape, values
        exactly ±1; floating dtypes are kept, other input gives float32. NaN gives -1
        (:func:`pack` rejects NaN; check first where it can occur).

    Example:
        >>> sign_codes(np.array([0.3, 0.0, -0.0, -2.0]))
        array([ 1.,  1.,  1., -1.])
    """
    if _is_torch(x):
        if x.dtype.is_complex or str(x.dtype) == "torch.bool":
            raise TypeError(f"sign_codes expects a real (integer or float) tensor, got dtype {x.dtype}")
        bits = _sign_bits(x)
        return (bits.to(x.dtype) if x.is_floating_point() else bits.float()) * 2 - 1
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":  # bool is {0, 1} data, not signs: pack() reads it as "binary"
        raise TypeError(f"sign_codes expects a real (integer or float) array, got dtype {arr.dtype}")
    dtype = arr.dtype if arr.dtype.kind == "f" else np.float32
    return np.where(_sign_bits(arr), 1, -1).astype(dtype)


def _only_zero_one(arr: np.ndarray) -> bool:
    if arr.size == 0:
        return False
    if arr.dtype.kind == "u":
        return bool(arr.max() <= 1)
    return bool(((arr == 0) | (arr == 1)).all())


def unpack(codes: Any, *, encoding: Literal["binary", "sign"] = "binary") -> np.ndarray:
    """Unpack packed codes back to one value per bit (inverse of :func:`pack`).

    Args:
        codes: uint8 array of shape (n, nbytes) or (nbytes,).
        encoding: "binary" for {0, 1} (uint8) or "sign" for {-1, +1} (int8).

    Returns:
        Array of shape (n, 8 * nbytes) or (8 * nbytes,): uint8 {0, 1} or int8 ±1.

    Raises:
        TypeError: ``codes`` is not uint8.
        ValueError: wrong number of dimensions, zero bytes, or an unknown encoding.
    """
    if encoding not in ("binary", "sign"):
        raise ValueError(f"encoding must be 'binary' or 'sign', got {encoding!r}")
    arr = _to_numpy(codes)
    if arr.dtype != np.uint8:
        raise TypeError(f"packed codes must be uint8, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0:
        raise ValueError(f"packed codes must have shape (n, nbytes) or (nbytes,), got {arr.shape}")
    bits = np.unpackbits(arr, axis=-1, bitorder=BIT_ORDER)
    if encoding == "sign":
        return bits.astype(np.int8) * 2 - 1
    return bits
