"""hashsearch.search.outofcore: the one memory limit (default, parser, meaning), backend
resolution, the streaming search over real stores on disk, the merge and the id mapping."""

from __future__ import annotations

import re

import numpy as np
import pytest
from dask_cluster import shared_client

from hashsearch import BinaryIndex, CodeStore, distributed
from hashsearch.backends.numpy_backend import NumpyBackend
from hashsearch.search import outofcore
from hashsearch.search.batch import batch_search, load_results
from hashsearch.search.outofcore import (
    DEFAULT_MEMORY_LIMIT,
    MAX_QUERY_BLOCK,
    describe_bytes,
    merge_parts,
    parse_memory_limit,
    positions_to_ids,
    resolve_backend,
    search_positions,
    task_backend,
)
from hashsearch.synthetic import random_codes, tied_codes


@pytest.fixture(scope="module")
def tied_store(tmp_path_factory):
    """3,000 codes drawn from 20 distinct ones (thousands of ties), shuffled ids, 12 shards."""
    path = tmp_path_factory.mktemp("ooc") / "tied.zarr"
    codes = tied_codes(3000, 64, 20, seed=50)
    ids = np.random.default_rng(50).permutation(30_000)[:3000]
    with CodeStore.create(path, 64, shard_rows=256, chunk_rows=64) as store:
        store.append(codes, ids=ids)
    return path, codes, ids


def minimum_limit(call) -> int:
    """The minimum that the 'too small' error of ``call(1)`` names."""
    with pytest.raises(ValueError, match="too small") as info:
        call(1)
    return int(re.search(r"at least (\d+) bytes", str(info.value)).group(1))


# -- the memory limit ---------------------------------------------------------------------
def test_parse_memory_limit():
    assert parse_memory_limit(None) == DEFAULT_MEMORY_LIMIT == 512 * 2**20
    assert parse_memory_limit(1) == 1 and parse_memory_limit(np.int64(4096)) == 4096
    assert parse_memory_limit("512MB") == 512 * 10**6 and parse_memory_limit("512 MiB") == 512 * 2**20
    assert parse_memory_limit(" 1.5GiB ") == 3 * 2**29 and parse_memory_limit("2k") == 2000
    assert parse_memory_limit("3 KiB") == 3072 and parse_memory_limit("1tb") == 10**12
    for bad in ("lots", "12 parsecs", "", "MB", "1e6", "1,000"):
        with pytest.raises(ValueError, match="cannot parse memory size"):
            parse_memory_limit(bad)
    for bad in (0, -5, "-1MB", "0 GiB"):
        with pytest.raises(ValueError):
            parse_memory_limit(bad)
    for bad in (True, 1.5, b"1MB", [1]):
        with pytest.raises(TypeError, match="memory sizes"):
            parse_memory_limit(bad)


def test_parse_bytes_examples():
    parse_bytes = parse_memory_limit
    assert parse_bytes(1000) == 1000 and parse_bytes("2 GiB") == 2 << 30 and parse_bytes("1.5MB") == 1_500_000
    for bad in ("lots", "-1MB", 0):
        with pytest.raises(ValueError):
            parse_bytes(bad)
    with pytest.raises(TypeError):
        parse_bytes(True)


def test_describe_bytes():
    assert describe_bytes(DEFAULT_MEMORY_LIMIT) == "512 MiB"
    assert describe_bytes(3 * 2**29) == "1.5 GiB" and describe_bytes(2048) == "2 KiB" and describe_bytes(800) == "800 B"


def test_the_named_minimum_is_the_minimum(tied_store):
    # The message names the smallest limit that works: that limit searches, one byte less is refused.
    path, codes, _ids = tied_store
    store = CodeStore.open(path)
    queries = codes[:9]
    need = minimum_limit(lambda limit: store.search(queries, 30, memory_limit=limit))
    index = BinaryIndex.load(path, backend="numpy")
    got = store.search(queries, 30, memory_limit=need)
    for a, b in zip(got, index.search(queries, 30), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=f"at least {need} bytes"):
        store.search(queries, 30, memory_limit=need - 1)
    # more queries or a larger k need more: the limit covers the queries and the top-k lists
    assert minimum_limit(lambda limit: store.search(codes[:90], 30, memory_limit=limit)) > need
    assert minimum_limit(lambda limit: store.search(queries, 300, memory_limit=limit)) > need


def test_one_meaning_for_the_store_the_batch_and_dask(request, tmp_path, tied_store):
    # A limit bounds one search (one query block against the rows): the store search, a
    # local batch block and a Dask task of the same queries need exactly the same minimum.
    path, codes, _ = tied_store
    store = CodeStore.open(path)
    queries = codes[:40]
    need = minimum_limit(lambda limit: store.search(queries, 10, memory_limit=limit))
    out = tmp_path / "r.zarr"
    batch = batch_search(store, queries, 10, out, query_block=40, memory_limit=need, progress=False)
    assert batch.complete and batch.blocks == 1  # the whole limit, not half of it
    want = store.search(queries, 10)
    for a, b in zip(load_results(out), want, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=f"at least {need} bytes"):
        batch_search(store, queries, 10, tmp_path / "s.zarr", query_block=40, memory_limit=need - 1, progress=False)
    client = shared_client(request)
    got = distributed.search(store, queries, 10, client=client, memory_limit=need, shards_per_task=3)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=f"at least {need} bytes"):
        distributed.search(store, queries, 10, client=client, memory_limit=need - 1, shards_per_task=3)
    blocked = tmp_path / "b.zarr"
    with pytest.raises(ValueError, match=f"at least {need} bytes"):
        batch_search(store, queries, 10, blocked, query_block=40, memory_limit=need - 1, client=client, progress=False)


def test_default_query_block_fits_the_limit(tied_store, tmp_path):
    path, _codes, _ = tied_store
    store = CodeStore.open(path)
    queries = tied_codes(5000, 64, 20, seed=51)
    need_one = minimum_limit(lambda limit: store.search(queries[:1], 10, memory_limit=limit))
    for limit in (2 * need_one, 100_000, 1 << 20):
        block = outofcore.default_query_block(len(queries), 10, store.code_size, limit)
        assert 1 <= block <= len(queries)
        store.search(queries[:block], 10, memory_limit=limit)  # a default block searches within the limit
    assert outofcore.default_query_block(10**8, 1, 8, 1 << 40) == MAX_QUERY_BLOCK
    assert outofcore.default_query_block(7, 10, 8, 1 << 30) == 7


# -- backends -----------------------------------------------------------------------------
def test_resolve_backend_never_changes_the_callers_backend():
    mine = NumpyBackend(num_threads=1)
    assert resolve_backend(mine) is mine and resolve_backend(mine, 1) is mine
    with pytest.raises(ValueError, match="num_threads=1, but num_threads=2"):
        resolve_backend(mine, 2)
    assert mine.num_threads == 1
    # an index's backend: "auto" keeps it; other threads give a new one of the same kind
    assert resolve_backend("auto", current=mine) is mine and resolve_backend(None, 1, current=mine) is mine
    other = resolve_backend("AUTO", 2, current=mine)
    assert other is not mine and other.name == "numpy" and other.num_threads == 2 and mine.num_threads == 1
    named = resolve_backend("numpy", 3, current=mine)
    assert named is not mine and named.num_threads == 3
    with pytest.raises(ValueError):
        resolve_backend("no-such-backend")
    with pytest.raises(ValueError):
        resolve_backend("numpy", 0)


def test_task_backend():
    assert task_backend() == outofcore.TaskBackend("auto", 1)
    assert task_backend(None, 3) == outofcore.TaskBackend("auto", 3)
    assert task_backend(" NumPy ") == outofcore.TaskBackend("numpy", 1)
    assert task_backend(NumpyBackend(num_threads=4)) == outofcore.TaskBackend("numpy", 1)  # travels as its name
    made = task_backend("numpy", 2).make()
    assert made.name == "numpy" and made.num_threads == 2
    with pytest.raises(ValueError):
        task_backend("no-such-backend")
    with pytest.raises(TypeError):
        task_backend(42)
    with pytest.raises(ValueError):
        task_backend("numpy", 0)


# -- searching, merging, mapping ------------------------------------------------------------
def test_search_positions_of_a_row_range_and_merge(tied_store):
    path, codes, _ = tied_store
    store = CodeStore.open(path)
    queries = tied_codes(6, 64, 20, seed=52)
    impl = NumpyBackend()
    whole = search_positions(store.code_source, queries, 50, impl, memory_limit=DEFAULT_MEMORY_LIMIT)
    # unaligned ranges: positions stay global, and merging the parts in database order gives the whole
    parts = [
        search_positions(store.code_source, queries, 50, impl, memory_limit=200_000, start=lo, stop=hi)
        for lo, hi in ((0, 1000), (1000, 1001), (1001, 2900), (2900, 3000))
    ]
    _d, p = parts[1]
    assert set(p[:, 0].tolist()) == {1000} and (p[:, 1:] == -1).all()
    merged = merge_parts(50, *parts)
    for a, b in zip(merged, whole, strict=True):
        np.testing.assert_array_equal(a, b)
    index = BinaryIndex(64, backend="numpy")
    index.add(codes)  # ids = positions
    for a, b in zip(whole, index.search(queries, 50), strict=True):
        np.testing.assert_array_equal(a, b)


def test_search_includes_a_writers_buffered_rows(tmp_path):
    codes = random_codes(1000, 32, seed=53)
    with CodeStore.create(tmp_path / "w.zarr", 32, shard_rows=256, chunk_rows=64) as writer:
        writer.append(codes[:700], ids=np.arange(700) + 5)  # 512 rows on disk, 188 buffered
        writer.append(codes[700:], ids=np.arange(300) + 2000)
        assert writer.code_source.disk_rows == 768 and writer.ntotal == 1000
        got = outofcore.search(writer.code_source, codes[::97], 3, nbits=32, memory_limit="1MB")
    index = BinaryIndex(32, backend="numpy")
    index.add(codes, ids=np.concatenate([np.arange(700) + 5, np.arange(300) + 2000]))
    for a, b in zip(got, index.search(codes[::97], 3), strict=True):
        np.testing.assert_array_equal(a, b)


def test_search_rejects_bad_input(tied_store):
    path, _, _ = tied_store
    source = CodeStore.open(path).code_source
    with pytest.raises(ValueError, match="bytes per code"):
        outofcore.search(source, np.zeros((1, 4), np.uint8), 1, nbits=64)
    with pytest.raises(ValueError, match="k must be"):
        outofcore.search(source, np.zeros((1, 8), np.uint8), 0, nbits=64)
    with pytest.raises(ValueError, match="cannot parse memory size"):
        outofcore.search(source, np.zeros((1, 8), np.uint8), 1, nbits=64, memory_limit="plenty")
    with pytest.raises(TypeError):
        outofcore.search(source, np.zeros((1, 8), np.uint8), 1, nbits=64, memory_limit=2.5)


def test_positions_to_ids():
    table = np.array([70, 71, 72, 73, 74, 75], np.int64)
    calls = []

    def ids_of_rows(rows):
        calls.append(rows.copy())
        return table[rows]

    positions = np.array([[3, -1, 0], [3, 5, -1]], np.int64)
    got = positions_to_ids(positions, ids_of_rows)
    np.testing.assert_array_equal(got, [[73, -1, 70], [73, 75, -1]])
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [0, 3, 5])  # each row looked up once, sorted
    same = positions_to_ids(positions, None)
    np.testing.assert_array_equal(same, positions)
    assert same is not positions
    empty = positions_to_ids(np.full((2, 2), -1, np.int64), lambda rows: pytest.fail("nothing to look up"))
    assert (empty == -1).all()
