"""Read the next mini-batches while the current one trains: a background-thread prefetcher.

What this module owns: :func:`prefetch`, which the trainer puts around its in-process
batch loader (``num_workers=0``, the default) so that reading the next batches overlaps
the network's step where the reading waits on storage. Per-item Zarr reads that are
Python-bound gain nothing on a busy 2-core machine (they hold the GIL): measured in
``docs/training.md`` ("CPU speed").

The batches come out in the order the wrapped iterator makes them, so a run is the
same with and without it (the trainer's batch orders and the augmentation draws do
not depend on when an item is read). An exception raised while reading is re-raised
in the consumer at the batch where it happened; leaving the loop early (an error in
the step, Ctrl-C) stops the thread.

Imports the standard library only.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 2, *, name: str = "hashsearch-prefetch") -> Generator[T, None, None]:
    """Yield ``items`` in order, reading up to ``depth`` of them ahead in a daemon thread.

    Args:
        items: any iterable (consumed in the background thread only).
        depth: items read ahead (>= 1); 0 yields from ``items`` directly.
        name: the thread's name.

    Raises:
        ValueError: a negative ``depth``.
        whatever ``items`` raises, at the position it raised.
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if depth == 0:
        yield from items
        return
    ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(_Failure(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            value = ahead.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.exc
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a put() waiting on a full queue
            with contextlib.suppress(queue.Empty):
                ahead.get_nowait()
            thread.join(timeout=_POLL_S)
