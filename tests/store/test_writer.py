"""hashsearch.store.writer: recovery at start-up, buffering and commits, a failed write
leaves the writer broken and the committed rows intact, provenance and reserved ids, and a
writer dropped without closing. Real stores on disk; the writer is built from its parts."""

from __future__ import annotations

import gc
import logging

import numpy as np
import pytest
import zarr

from hashsearch import CodeStore
from hashsearch.errors import StoreError
from hashsearch.store.layout import StoreState, open_store
from hashsearch.store.writer import StoreWriter
from hashsearch.synthetic import random_codes

SHARD = 256


def writer_for(path) -> StoreWriter:
    location, zstore, meta, lock = open_store(path, "a", None, None)
    return StoreWriter(StoreState(location, zstore, "a", meta), lock)


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "s.zarr"
    with CodeStore.create(path, 64, shard_rows=SHARD, chunk_rows=64):
        pass
    return path


def test_buffering_and_commits(store_path):
    codes = random_codes(700, 64, seed=80)
    writer = writer_for(store_path)
    writer.append(codes[:100], None, None, None)
    assert (writer.ntotal, writer.state.committed, writer.buffer.start, writer.buffer.length) == (100, 0, 0, 100)
    writer.append(codes[100:600], None, None, None)  # completes shard 0, writes shard 1 whole, buffers 88 rows
    assert (writer.buffer.start, writer.buffer.length) == (512, 88)
    # the first append's rows are all on disk now: committed; the second's last rows are still in memory
    assert writer.state.committed == 100 and CodeStore.open(store_path).ntotal == 100
    writer.flush()
    assert writer.state.committed == 600 and CodeStore.open(store_path).ntotal == 600
    writer.append(codes[600:], None, None, None)  # rewrites the partial shard 2 whole, on the next flush
    writer.flush()
    writer.release()
    np.testing.assert_array_equal(CodeStore.open(store_path).read_codes(), codes)


def test_recovery_cuts_uncommitted_rows_and_reloads_the_partial_shard(store_path, caplog):
    codes = random_codes(300, 64, seed=81)
    with CodeStore.open(store_path, "a") as store:
        store.append(codes)  # shard 0 whole, 44 rows of shard 1 (written at close)
    for name in ("codes", "ids"):  # an interrupted append left rows past the commit
        arr = zarr.open_array(str(store_path / name), mode="r+")
        arr.resize((400, *arr.shape[1:]))
    leftover = store_path / "codes" / "c" / "1" / "0.partial"
    leftover.write_bytes(b"half")
    with caplog.at_level(logging.WARNING, logger="hashsearch"):
        writer = writer_for(store_path)
    assert "dropping 100 uncommitted rows of 'codes'" in caplog.text
    assert not leftover.exists()
    assert zarr.open_array(str(store_path / "codes"), mode="r").shape[0] == 300
    assert (writer.buffer.start, writer.buffer.length) == (256, 44)
    np.testing.assert_array_equal(writer.buffer.columns["codes"][:44], codes[256:])
    writer.append(random_codes(10, 64, seed=82), None, None, None)
    writer.flush()
    writer.release()
    store = CodeStore.open(store_path)
    assert store.ntotal == 310 and store.verify().ok
    np.testing.assert_array_equal(store.read_codes(0, 300), codes)


def test_a_failed_write_breaks_the_writer_not_the_store(store_path, monkeypatch):
    codes = random_codes(600, 64, seed=83)
    writer = writer_for(store_path)
    writer.append(codes[:300], None, None, None)
    writer.flush()

    def disk_full(start, columns):
        raise OSError("no space left on device")

    monkeypatch.setattr(writer, "_write_rows", disk_full)
    with pytest.raises(OSError, match="no space"):
        writer.append(codes[300:], None, None, None)
    for again in (lambda: writer.append(codes[:1], None, None, None), writer.flush, lambda: writer.reserve_ids(10**6)):
        with pytest.raises(StoreError, match=r"an earlier write failed \(OSError: no space left on device\)"):
            again()
    writer.release()
    store = CodeStore.open(store_path)
    assert store.ntotal == 300 and store.verify().ok
    np.testing.assert_array_equal(store.read_codes(), codes[:300])


def test_encoder_info_and_reserved_ids_are_committed_at_once(store_path):
    writer = writer_for(store_path)
    writer.append(random_codes(10, 64, seed=84), np.arange(10) + 100, None, None)
    writer.set_encoder_info({"model": "m", "bits": 64})
    assert CodeStore.open(store_path).encoder_info == {"model": "m", "bits": 64}
    with pytest.raises(TypeError, match="encoder info must be a dict"):
        writer.set_encoder_info(["m"])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        writer.set_encoder_info({"model": {1, 2}})
    for bad, error in ((True, TypeError), (5.0, TypeError), (109, ValueError)):
        with pytest.raises(error):
            writer.reserve_ids(bad)
    writer.reserve_ids(500)  # flushes: the buffered rows are committed with it
    reader = CodeStore.open(store_path)
    assert reader.next_id == 500 and reader.ntotal == 10 and reader.encoder_info == {"model": "m", "bits": 64}
    writer.append(random_codes(2, 64, seed=85), None, None, None)
    np.testing.assert_array_equal(writer.reader.read(10, 12, ("ids",)).ids, [500, 501])
    writer.release()


def test_a_writer_dropped_without_closing_releases_the_lock(store_path, caplog):
    writer = writer_for(store_path)
    writer.append(random_codes(20, 64, seed=86), None, None, None)
    with caplog.at_level(logging.WARNING, logger="hashsearch"):
        del writer
        gc.collect()
    assert "its last 20 appended rows were never committed" in caplog.text
    with CodeStore.open(store_path, "a") as store:  # the lock is free again
        assert store.ntotal == 0
