"""hashsearch.store._lock: the flock of local stores, the record lock of other stores,
holders, stale records and breaking a lock by hand (real directories, real processes)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import pytest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import MemoryStore

from hashsearch.errors import CorruptStoreError, StoreLockedError
from hashsearch.store._lock import (
    LOCK_KEY,
    LockHolder,
    acquire_lock,
    break_lock,
    current_holder,
    read_holder,
)

fcntl = pytest.importorskip("fcntl")


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def put_record(store: MemoryStore, raw: bytes) -> None:
    sync(store.set(LOCK_KEY, default_buffer_prototype().buffer.from_bytes(raw)))


# -- holders --------------------------------------------------------------------------------
def test_holder_round_trip_and_garbage():
    me = LockHolder.me()
    assert me.pid == os.getpid() and me.host == socket.gethostname() and len(me.token) == 32
    assert LockHolder.from_bytes(me.to_bytes()) == me
    assert f"pid {me.pid} on host {me.host}" in me.describe()
    for raw in (b"", b"{", b"[]", b'{"pid": "x", "host": "h", "since": "s", "token": "t"}', b"\xff"):
        assert LockHolder.from_bytes(raw) is None


def test_is_dead_only_when_provably_gone():
    me = LockHolder.me()
    assert not me.is_dead()
    gone = LockHolder(pid=dead_pid(), host=me.host, since="earlier", token="t")
    assert gone.is_dead()
    elsewhere = LockHolder(pid=gone.pid, host="another-host", since="earlier", token="t")
    assert not elsewhere.is_dead()  # another host's pids say nothing here
    if me.start_time is not None:  # Linux: a reused pid has another start time
        reused = LockHolder(pid=me.pid, host=me.host, since="earlier", token="t", start_time=me.start_time + 1)
        assert reused.is_dead()


# -- local stores: flock ------------------------------------------------------------------
def test_flock_excludes_a_second_writer_and_is_released(tmp_path):
    where = str(tmp_path / LOCK_KEY)
    lock = acquire_lock(None, tmp_path, where)
    assert current_holder(None, tmp_path) == lock.holder
    with pytest.raises(StoreLockedError, match=f"{where} is locked for writing by pid {os.getpid()}"):
        acquire_lock(None, tmp_path, where)  # the same process counts as a second writer
    lock.release()
    lock.release()  # idempotent
    assert current_holder(None, tmp_path) is None  # the record is emptied, the file stays
    assert (tmp_path / LOCK_KEY).exists()
    again = acquire_lock(None, tmp_path, where)
    assert again.holder.token != lock.holder.token
    again.release()


def test_flock_of_a_dead_writer_is_taken_over_with_a_warning(tmp_path, caplog):
    # a record whose flock nobody holds: the writer died without closing
    gone = LockHolder(pid=dead_pid(), host=socket.gethostname(), since="earlier", token="old")
    (tmp_path / LOCK_KEY).write_bytes(gone.to_bytes())
    with caplog.at_level(logging.WARNING, logger="hashsearch"):
        lock = acquire_lock(None, tmp_path, "the lock")
    assert f"pid {gone.pid}" in caplog.text and "did not close" in caplog.text
    assert current_holder(None, tmp_path) == lock.holder
    lock.release()


def test_flock_held_by_another_process(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; sys.path.insert(0, sys.argv[2]);"
            "from hashsearch.store._lock import acquire_lock;"
            "lock = acquire_lock(None, pathlib.Path(sys.argv[1]), 'x'); print('held', flush=True); sys.stdin.read()",
            str(tmp_path),
            os.getcwd(),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid} on host"):
            acquire_lock(None, tmp_path, "the lock")
        with pytest.raises(StoreLockedError, match="a live process"):
            break_lock(None, tmp_path)
        assert current_holder(None, tmp_path).pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    lock = acquire_lock(None, tmp_path, "the lock")  # the kernel dropped the dead holder's flock
    lock.release()


def test_break_lock_on_a_local_store(tmp_path):
    assert break_lock(None, tmp_path) is None  # no lock file
    gone = LockHolder(pid=dead_pid(), host="h", since="earlier", token="old")
    (tmp_path / LOCK_KEY).write_bytes(gone.to_bytes())
    assert break_lock(None, tmp_path) == gone
    assert current_holder(None, tmp_path) is None


# -- other stores: the record lock --------------------------------------------------------
def test_record_lock_on_a_memory_store(caplog):
    store = MemoryStore()
    lock = acquire_lock(store, None, "mem://lock")
    assert read_holder(store) == lock.holder == current_holder(store, None)
    with pytest.raises(StoreLockedError, match="hashsearch index unlock"):
        acquire_lock(store, None, "mem://lock")
    lock.release()
    assert read_holder(store) is None
    # a stale record of a dead process on this host is broken automatically
    put_record(store, LockHolder(pid=dead_pid(), host=socket.gethostname(), since="then", token="t1").to_bytes())
    with caplog.at_level(logging.WARNING, logger="hashsearch"):
        lock = acquire_lock(store, None, "mem://lock")
    assert "stale lock" in caplog.text
    lock.release()
    # another host's record never is; breaking it by hand returns its holder
    other = LockHolder(pid=1, host="another-host", since="then", token="t2")
    put_record(store, other.to_bytes())
    with pytest.raises(StoreLockedError, match="pid 1 on host another-host"):
        acquire_lock(store, None, "mem://lock")
    assert break_lock(store, None) == other and read_holder(store) is None


def test_a_release_never_removes_someone_elses_record():
    store = MemoryStore()
    lock = acquire_lock(store, None, "mem://lock")
    other = LockHolder(pid=1, host="another-host", since="then", token="t3")
    put_record(store, other.to_bytes())  # e.g. the lock was broken by hand and taken by another writer
    lock.release()
    assert read_holder(store) == other


def test_unreadable_record():
    store = MemoryStore()
    put_record(store, b"{garbage")
    with pytest.raises(CorruptStoreError, match="not valid JSON"):
        read_holder(store)
    with pytest.raises(StoreLockedError, match="lock record unreadable"):
        acquire_lock(store, None, "mem://lock")  # never taken over: its holder is unknown
    assert break_lock(store, None) is None and read_holder(store) is None
    lock = acquire_lock(store, None, "mem://lock")
    lock.release()
