"""Numeric precision of the networks' forward passes: bf16 autocast where the hardware has it.

What this module owns: the ``precision`` setting of :class:`~hashsearch.training.config.TrainConfig`
("auto" | "fp32" | "bf16") and what it means on a device.

- :func:`cpu_flags` / :func:`native_bf16` — whether the device computes bf16 natively:
  a CPU whose flags (``/proc/cpuinfo``, as ``lscpu`` prints them) include
  ``avx512_bf16`` or ``amx_bf16`` (oneDNN's bf16 convolution and matmul kernels), or
  a CUDA device for which ``torch.cuda.is_bf16_supported()`` holds.
- :func:`resolve_precision` — the setting as "fp32" or "bf16" on a device. "auto"
  takes :data:`AUTO_BF16` into account: bf16 where it is native, else fp32.
  "bf16" without native support still runs (emulated, slower than fp32) with a warning.
- :func:`autocast` — the context the trainer (and, when asked, the encoder) runs the
  networks' forward passes in: ``torch.autocast(device_type, dtype=torch.bfloat16)``
  under "bf16", nothing under "fp32".

What stays float32 under "bf16": the weights and their gradients (autocast casts
copies for each convolution / linear layer), the SGD update, the input
standardisation (element-wise, outside autocast's lower-precision list), the loss of
eq. (5) and the stored feature matrices F^P, F^M (the trainer casts each batch's
features to float32 before the loss, outside the autocast region). Why "auto" still
means fp32 (measured speed and MAP, fp32 against bf16, three seeds each, and the runs
that diverged) is recorded in ``docs/training.md`` ("CPU speed").

Imports torch and :mod:`.config` (for the :data:`Precision` type) only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import typing
from collections.abc import Iterator
from pathlib import Path

import torch

from .config import Precision

__all__ = [
    "AUTO_BF16",
    "BF16_CPU_FLAGS",
    "PRECISIONS",
    "Precision",
    "autocast",
    "check_precision",
    "cpu_flags",
    "native_bf16",
    "resolve_precision",
]

logger = logging.getLogger("hashsearch")

#: The settings of ``TrainConfig.precision``.
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
#: CPU flags (as in /proc/cpuinfo and ``lscpu``) of native bf16 arithmetic.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: Whether "auto" chooses bf16 where the device computes it natively. Not yet: MAP is unchanged within seed
#: noise on eurosat-ms (3 seeds each) and a step is ~1.4x faster, but tiny fake-data runs at lr 0.1 diverged
#: to NaN in bf16 where fp32 did not (docs/training.md, "CPU speed"); bf16 is opt-in (precision="bf16").
AUTO_BF16 = False


def check_precision(value: object) -> str:
    """``value`` if it is one of :data:`PRECISIONS`.

    Raises:
        ValueError: any other value.
    """
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {value!r}")
    return value


@functools.lru_cache(maxsize=1)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the ``flags`` line of ``/proc/cpuinfo``); empty where there is none."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 convolutions and matmuls natively.

    CPU: its flags include ``avx512_bf16`` or ``amx_bf16`` (and torch has oneDNN).
    CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        return bool(cpu_flags() & BF16_CPU_FLAGS) and torch.backends.mkldnn.is_available()
    return False


def resolve_precision(setting: str, device: torch.device | str) -> str:
    """"fp32" or "bf16": what ``setting`` means on ``device``.

    Args:
        setting: "auto" (bf16 where :func:`native_bf16`, when :data:`AUTO_BF16`), "fp32" or "bf16".
        device: the device the networks run on.

    Raises:
        ValueError: an unknown setting.
    """
    check_precision(setting)
    native = native_bf16(device)
    if setting == "auto":
        return "bf16" if native and AUTO_BF16 else "fp32"
    if setting == "bf16" and not native:
        logger.warning("precision='bf16' on %s, which has no native bf16 arithmetic (CPU flags %s, or a CUDA "
                       "device with bf16): it runs emulated, slower than fp32", device,
                       "/".join(sorted(BF16_CPU_FLAGS)))
    return setting


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str) -> Iterator[None]:
    """Run the enclosed forward passes in ``precision`` ("fp32": unchanged; "bf16": autocast).

    Args:
        device: where the networks run (its type selects the autocast backend).
        precision: a resolved precision, "fp32" or "bf16" (see :func:`resolve_precision`).
    """
    if precision == "fp32":
        yield
        return
    if precision != "bf16":
        raise ValueError(f"autocast takes a resolved precision 'fp32' or 'bf16', got {precision!r}")
    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
        yield
