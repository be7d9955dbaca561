"""The single-writer lock of a code store.

This module owns the lock record (:data:`LOCK_KEY`), taking, releasing and
breaking the lock, and naming its holder. It imports only the standard
library, :mod:`hashsearch.errors` and (inside functions) zarr.

One process at a time may append to a :class:`hashsearch.CodeStore`; any number
may read. The lock lives inside the store, next to the group's ``zarr.json``, as
``hashsearch.lock``: a small JSON record of the holder (pid, host, process start
time, since when, a random token) that error messages quote.

Two mechanisms, one per kind of storage:

- **Local file systems** (a path, or ``file://``): the lock file is held with
  ``fcntl.flock``. The kernel releases it when the holder exits in any way,
  ``kill -9`` included, so a lock can never be stale: a leftover record of a dead
  writer is simply overwritten by the next one (and logged). ``flock`` also
  excludes a second writer in the same process. On NFS it relies on the server's
  lock support (Linux emulates ``flock`` with NFS byte-range locks).
- **Other stores** (object storage through fsspec, in-memory stores): the record
  is created with the store's create-if-absent operation (``set_if_not_exists``)
  and removed on release. A record left by a writer that died is *stale*. It is
  broken automatically, with a warning, only when it can be proven dead: same
  host, and no process with that pid and start time is running. A lock from
  another host is never broken automatically: the error names the holder and
  :func:`break_lock` (``hashsearch index unlock``) removes it by hand.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hashsearch.errors import CorruptStoreError, StoreLockedError

try:  # POSIX only; elsewhere every store uses the record lock.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_KEY", "LockHolder", "WriteLock", "acquire_lock", "break_lock", "current_holder", "read_holder"]

logger = logging.getLogger("hashsearch")

#: Name of the lock record inside the store (a key of the Zarr store).
LOCK_KEY = "hashsearch.lock"


def _process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may hold spaces, so split after ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a store's write lock."""

    pid: int
    host: str
    since: str
    token: str
    start_time: int | None = None

    @classmethod
    def me(cls) -> LockHolder:
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            since=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            token=uuid.uuid4().hex,
            start_time=_process_start_time(os.getpid()),
        )

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} since {self.since}"

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> LockHolder | None:
        try:
            data = json.loads(raw.decode())
            return cls(
                pid=int(data["pid"]),
                host=str(data["host"]),
                since=str(data["since"]),
                token=str(data["token"]),
                start_time=data.get("start_time"),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def is_dead(self) -> bool:
        """True only when the holder provably no longer runs (same host, pid gone or reused)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, owned by someone else
            pass
        if self.start_time is not None:
            now = _process_start_time(self.pid)
            if now is not None and now != self.start_time:
                return True  # the pid was reused by another process
        return False


class WriteLock:
    """A held write lock; :meth:`release` (idempotent) gives it back."""

    def __init__(self, holder: LockHolder, *, fd: int | None = None, store: Any = None, where: str = "") -> None:
        self.holder = holder
        self._fd = fd
        self._store = store
        self.where = where

    def release(self) -> None:
        """Give the lock back (safe to call twice, and from a finalizer)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # pragma: no cover - read-only remount or similar
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the flock
        store, self._store = self._store, None
        if store is not None:
            from zarr.core.sync import sync

            try:
                current = read_holder(store)
                if current is not None and current.token == self.holder.token:
                    sync(store.delete(LOCK_KEY))
            except Exception:  # pragma: no cover - best effort on teardown
                logger.warning("could not remove the lock record %s", self.where, exc_info=True)


def _locked_error(where: str, holder: LockHolder | None, hint: str) -> StoreLockedError:
    who = holder.describe() if holder is not None else "another process (lock record unreadable)"
    return StoreLockedError(f"{where} is locked for writing by {who}{hint}")


def acquire_lock(store: Any, local_root: Path | None, where: str) -> WriteLock:
    """Take the write lock of a store or raise :class:`StoreLockedError` naming the holder.

    Args:
        store: the zarr ``Store`` (used for non-local stores).
        local_root: the store's directory when it is on a local file system, else None.
        where: how to name the lock in messages (path or URL of the lock record).
    """
    me = LockHolder.me()
    if local_root is not None and fcntl is not None:
        return _acquire_flock(local_root / LOCK_KEY, me, where)
    return _acquire_record(store, me, where)


def _acquire_flock(path: Path, me: LockHolder, where: str) -> WriteLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = LockHolder.from_bytes(os.pread(fd, 4096, 0))
        os.close(fd)
        raise _locked_error(where, holder, "") from None
    except BaseException:
        os.close(fd)
        raise
    previous = LockHolder.from_bytes(os.pread(fd, 4096, 0))
    if previous is not None:
        # The kernel dropped the previous holder's flock: it exited without closing the store.
        logger.warning(
            "%s: the previous writer (%s) did not close the store; its last committed rows are kept",
            where,
            previous.describe(),
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, me.to_bytes(), 0)
    return WriteLock(me, fd=fd, where=where)


def read_holder(store: Any) -> LockHolder | None:
    """The holder recorded in a store's lock record, or None when there is none."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    buf = sync(store.get(LOCK_KEY, prototype=default_buffer_prototype()))
    if buf is None:
        return None
    raw = buf.to_bytes()
    if not raw:
        return None
    holder = LockHolder.from_bytes(raw)
    if holder is None:
        raise CorruptStoreError(f"lock record {LOCK_KEY} is not valid JSON")
    return holder


def current_holder(store: Any, local_root: Path | None) -> LockHolder | None:
    """The writer a store's lock record names (None when there is none).

    Locally the record is the lock file (empty once its holder released it); on
    other stores it is the record key.

    Raises:
        CorruptStoreError: a record on a non-local store is not valid JSON.
    """
    if local_root is not None:
        try:
            raw = (local_root / LOCK_KEY).read_bytes()
        except FileNotFoundError:
            return None
        return LockHolder.from_bytes(raw) if raw else None
    return read_holder(store)


def _acquire_record(store: Any, me: LockHolder, where: str) -> WriteLock:
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    payload = default_buffer_prototype().buffer.from_bytes(me.to_bytes())
    for attempt in range(2):
        sync(store.set_if_not_exists(LOCK_KEY, payload))
        try:
            holder = read_holder(store)
        except CorruptStoreError:
            holder = None
        if holder is not None and holder.token == me.token:
            return WriteLock(me, store=store, where=where)
        if attempt == 0 and holder is not None and holder.is_dead():
            logger.warning("%s: breaking the stale lock of %s (process gone)", where, holder.describe())
            sync(store.delete(LOCK_KEY))
            continue
        break
    raise _locked_error(
        where,
        holder,
        "; if that process is gone, remove the lock with `hashsearch index unlock` "
        "(hashsearch.store.CodeStore.break_lock)",
    )


def break_lock(store: Any, local_root: Path | None) -> LockHolder | None:
    """Remove a lock record by hand; returns the holder it named (None if there was none).

    For local stores this refuses while a live process holds the ``flock``.
    """
    if local_root is not None and fcntl is not None:
        path = local_root / LOCK_KEY
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDWR)
        try:
            holder = LockHolder.from_bytes(os.pread(fd, 4096, 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _locked_error(str(path), holder, " (a live process; close it instead)") from None
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        return holder
    from zarr.core.sync import sync

    try:
        holder = read_holder(store)
    except CorruptStoreError:
        holder = None
    sync(store.delete(LOCK_KEY))
    return holder
