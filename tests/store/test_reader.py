"""hashsearch.store.reader: rows from disk and from a writer's buffer, ids at result
positions, refresh, retried reads; the CodeSource the out-of-core search streams."""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch import CodeStore
from hashsearch.errors import CorruptStoreError
from hashsearch.store.layout import StoreState, open_store
from hashsearch.store.reader import StoreReader, read_with_retries
from hashsearch.synthetic import random_codes

SHARD = 256


def reader_for(path) -> StoreReader:
    location, zstore, meta, _ = open_store(path, "r", None, None)
    return StoreReader(StoreState(location, zstore, "r", meta))


@pytest.fixture
def labelled(tmp_path):
    path = tmp_path / "s.zarr"
    codes = random_codes(900, 64, seed=90)
    ids = np.arange(900) * 7 + 3
    with CodeStore.create(path, 64, shard_rows=SHARD, chunk_rows=64, with_labels=True) as store:
        store.append(codes, ids=ids, labels=np.arange(900) % 4)
    return path, codes, ids


def test_reads_and_checks(labelled):
    path, codes, ids = labelled
    reader = reader_for(path)
    sizes = (reader.ntotal, reader.disk_rows, reader.code_size, reader.shard_rows, reader.chunk_rows)
    assert sizes == (900, 900, 8, 256, 64)
    assert not reader.ids_are_positions
    block = reader.read(250, 530, ["codes", "ids", "labels"])
    assert (block.start, block.stop, len(block), block.source) == (250, 530, 280, None)
    np.testing.assert_array_equal(block.codes, codes[250:530])
    np.testing.assert_array_equal(block.ids, ids[250:530])
    np.testing.assert_array_equal(block.labels, np.arange(250, 530) % 4)
    out = np.empty((10, 8), np.uint8)
    assert reader.read_codes(890, 900, out) is out
    np.testing.assert_array_equal(out, codes[890:])
    assert reader.fields(["labels", "codes"]) == ["labels", "codes"]
    with pytest.raises(ValueError, match="no 'source' array"):
        reader.fields(["source"])
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        reader.fields(["colour"])
    assert reader.check_range(None, None) == (0, 900) and reader.check_range(5, None) == (5, 900)
    for start, stop in ((-1, 5), (10, 5), (0, 901)):
        with pytest.raises(IndexError, match="outside the store's 900 rows"):
            reader.check_range(start, stop)


def test_blocks_and_ids_at(labelled):
    path, codes, ids = labelled
    reader = reader_for(path)
    blocks = list(reader.iter_blocks(300, 100, 900, ["codes"], 1))
    assert [(b.start, b.stop) for b in blocks] == [(100, 400), (400, 700), (700, 900)]
    np.testing.assert_array_equal(np.concatenate([b.codes for b in blocks]), codes[100:])
    shards = [(b.start, b.stop) for b in reader.iter_blocks(None, 0, 900, ["ids"], 0)]
    assert shards == [(0, 256), (256, 512), (512, 768), (768, 900)]
    with pytest.raises(ValueError):
        list(reader.iter_blocks(0, 0, 900, ["ids"], 1))
    positions = np.array([[899, -1], [0, 899]], np.int64)
    np.testing.assert_array_equal(reader.ids_at(positions), [[ids[899], -1], [ids[0], ids[899]]])
    np.testing.assert_array_equal(reader.ids_of_rows(np.array([3, 300, 800])), ids[[3, 300, 800]])


def test_a_writers_reader_sees_its_buffer(tmp_path):
    codes = random_codes(600, 64, seed=91)
    ids = np.arange(600) + 1000
    with CodeStore.create(tmp_path / "w.zarr", 64, shard_rows=SHARD, chunk_rows=64) as writer:
        writer.append(codes, ids=ids)  # 512 rows on disk, 88 in memory
        reader = writer.code_source
        assert (reader.disk_rows, reader.ntotal) == (512, 600)
        out = np.empty((200, 8), np.uint8)
        reader.read_into("codes", 400, 600, out)  # across the boundary
        np.testing.assert_array_equal(out, codes[400:])
        np.testing.assert_array_equal(reader.memory_codes(550, 600), codes[550:])
        rows = np.array([0, 511, 512, 599])
        np.testing.assert_array_equal(reader.ids_of_rows(rows), ids[rows])


def test_refresh_sees_new_commits_and_reopens_grown_arrays(tmp_path):
    path = tmp_path / "s.zarr"
    codes = random_codes(1000, 64, seed=92)
    with CodeStore.create(path, 64, shard_rows=SHARD, chunk_rows=64) as writer:
        writer.append(codes[:300])
    reader = reader_for(path)
    assert reader.ntotal == 300 and reader.ids_are_positions
    with CodeStore.open(path, "a") as writer:
        writer.append(codes[300:], ids=np.arange(700) + 5000)  # past the arrays the reader opened
    assert reader.ntotal == 300  # a reader sees what was committed when it opened
    assert reader.refresh() == 1000
    assert reader.ntotal == 1000 and not reader.ids_are_positions
    np.testing.assert_array_equal(reader.read(900, 1000, ["codes"]).codes, codes[900:])
    np.testing.assert_array_equal(reader.ids_at(np.array([999])), [5699])


def test_read_with_retries():
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("shard being replaced")
        return "rows"

    assert read_with_retries(flaky, lambda: "never used") == "rows" and len(attempts) == 3
    attempts.clear()

    def broken():
        attempts.append(1)
        raise ValueError("checksum mismatch")

    with pytest.raises(CorruptStoreError, match=r"^codes/c/0: cannot read \(checksum mismatch\)$"):
        read_with_retries(broken, lambda: "codes/c/0: cannot read")
    assert len(attempts) == 3
