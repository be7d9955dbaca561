"""Training checkpoints: atomic writes, checked reads, and the RNG states a resume restores.

Owns the checkpoint file format (:data:`CHECKPOINT_FORMAT`, version
:data:`CHECKPOINT_VERSION`): a ``torch.save`` dict written to a temporary file
beside the target, fsynced, then ``os.replace``-d into place, so a crash or
Ctrl-C during a write leaves the previous checkpoint intact; read back with
``weights_only=True`` (no code runs). What goes into the dict is the trainer's
business (:meth:`hashsearch.training.trainer.Trainer.state_dict`); the RNG states
(torch, CUDA, NumPy, Python) are packed here into tensors and plain values that
``weights_only`` loading accepts.

Imports torch and NumPy only (nothing else of :mod:`hashsearch.training`).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "load_checkpoint", "restore_rng", "rng_state",
           "save_checkpoint"]

CHECKPOINT_FORMAT = "hashsearch-sidhcnn-checkpoint"
CHECKPOINT_VERSION = 1


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, fsync, then os.replace (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        try:
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:  # pragma: no cover - directories cannot be fsynced everywhere
            pass
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a checkpoint dict atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    _atomic_torch_save(state, path)
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by the trainer (a file, or a directory holding ``last.pt``).

    Loads with ``weights_only=True`` (no arbitrary code runs). Adds ``"path"`` and
    ``"sha256"`` (of the file's bytes) to the returned dict.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: the file is not a hashsearch checkpoint or has another version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    raw = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ValueError(f"{path} is not a readable torch checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a hashsearch SIDHCNN checkpoint")
    if state.get("format_version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {state.get('format_version')}; "
                         f"this hashsearch reads {CHECKPOINT_VERSION}")
    state["path"] = str(path)
    state["sha256"] = hashlib.sha256(raw).hexdigest()
    return state


def rng_state() -> dict[str, Any]:
    """The torch, CUDA, NumPy and Python global RNG states, as values ``weights_only`` loading accepts."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": _python_state_to_plain(random.getstate()),
    }


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def restore_rng(state: dict[str, Any]) -> None:
    """Restore the global RNG states that :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npst = state["numpy"]
    np.random.set_state({
        "bit_generator": npst["bit_generator"],
        "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": npst["pos"]},
        "has_gauss": npst["has_gauss"],
        "gauss": npst["gauss"],
    })
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))

