"""Distributed search on a real LocalCluster (2 worker processes, 1 thread each):
identical to the out-of-core search and to an in-memory BinaryIndex, ties included."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from dask_cluster import shared_client

from hashsearch import BinaryIndex, CodeStore, distributed
from hashsearch.errors import CorruptStoreError, StoreError
from hashsearch.search.plan import result_bytes
from hashsearch.synthetic import random_codes, tied_codes


@pytest.fixture(scope="session")
def client(request):
    return shared_client(request)


@pytest.fixture(scope="module")
def tied_store(tmp_path_factory):
    """6,000 codes drawn from 25 distinct ones (every query has thousands of ties), shuffled ids."""
    path = tmp_path_factory.mktemp("dist") / "tied.zarr"
    codes = tied_codes(6000, 64, 25, seed=20)
    ids = np.random.default_rng(20).permutation(60_000)[:6000]
    with CodeStore.create(path, 64, shard_rows=512, chunk_rows=128) as store:
        store.append(codes, ids=ids)
    return path


@pytest.mark.parametrize(("shards_per_task", "split_every"), [(None, 8), (1, 2), (5, 3)])
def test_distributed_equals_out_of_core_equals_in_memory(client, tied_store, shards_per_task, split_every):
    store = CodeStore.open(tied_store)
    index = BinaryIndex.from_store(store, backend="numpy")
    queries = tied_codes(12, 64, 25, seed=21)
    for k in (1, 10, 700, 7000):
        want = index.search(queries, k)
        local = store.search(queries, k, memory_limit=int((100_000 + result_bytes(12, k)) / 0.9))
        dist = distributed.search(
            store, queries, k, client=client, shards_per_task=shards_per_task, split_every=split_every
        )
        for got in (local, dist):
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


def test_path_and_scheduler_address(client, tied_store):
    queries = tied_codes(3, 64, 25, seed=22)
    want = CodeStore.open(tied_store).search(queries, 5)
    got = distributed.search(str(tied_store), queries[0], 5, client=client.scheduler.address, num_threads=1)
    np.testing.assert_array_equal(got[0], want[0][:1])
    np.testing.assert_array_equal(got[1], want[1][:1])


def test_default_local_cluster_is_started_and_closed(tmp_path):
    path = tmp_path / "s.zarr"
    codes = random_codes(2000, 32, seed=23)
    with CodeStore.create(path, 32, shard_rows=256, chunk_rows=64) as store:
        store.append(codes)
    d, i = distributed.search(path, codes[:4], 1)
    np.testing.assert_array_equal(i[:, 0], np.arange(4))
    assert (d == 0).all()


def test_only_committed_rows_are_searched(client, tmp_path, caplog):
    codes = random_codes(600, 32, seed=24)
    with CodeStore.create(tmp_path / "w.zarr", 32, shard_rows=256, chunk_rows=64) as writer:
        writer.append(codes[:512])
        writer.append(codes[512:])  # buffered, not committed
        with caplog.at_level(logging.WARNING, logger="hashsearch"):
            _d, i = distributed.search(writer, codes[550:552], 1, client=client)
        assert "not committed" in caplog.text
        assert (i[:, 0] < 512).all()


def test_errors(client, tmp_path, tied_store):
    from zarr.storage import MemoryStore

    mem = CodeStore.create(MemoryStore(), 64)
    with pytest.raises(ValueError, match="workers can open"):
        distributed.search(mem, np.zeros((1, 8), np.uint8), 1, client=client)
    with pytest.raises(ValueError, match="bytes per code"):
        distributed.search(tied_store, np.zeros((1, 4), np.uint8), 1, client=client)
    with pytest.raises(ValueError, match="split_every"):
        distributed.search(tied_store, np.zeros((1, 8), np.uint8), 1, client=client, split_every=1)
    broken = tmp_path / "broken.zarr"
    with CodeStore.create(broken, 64, shard_rows=256, chunk_rows=64) as store:
        store.append(random_codes(1000, 64, seed=25))
    shard = broken / "codes" / "c" / "2" / "0"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(CorruptStoreError, match=str(shard)):
        distributed.search(broken, np.zeros((1, 8), np.uint8), 1, client=client)


def test_a_replaced_store_is_detected(tied_store, tmp_path):
    store = CodeStore.open(tied_store)
    with pytest.raises(StoreError, match="changed during the search"):
        distributed._open_reader(store.location, store.committed_rows, "another-uuid")
    with pytest.raises(StoreError, match="changed during the search"):
        distributed._open_reader(store.location, store.committed_rows + 1, store.uuid)


def test_shard_groups():
    assert distributed.shard_groups(10, 4, 1) == [(0, 4), (4, 8), (8, 10)]
    assert distributed.shard_groups(10, 4, 2) == [(0, 8), (8, 10)]
    assert distributed.shard_groups(0, 4, 2) == []
    with pytest.raises(ValueError):
        distributed.shard_groups(10, 4, 0)


def test_a_memory_limit_too_small_is_refused_before_a_cluster_starts(tmp_path, monkeypatch):
    from hashsearch.search import distributed as dist

    codes = random_codes(500, 64, seed=1)
    with CodeStore.create(tmp_path / "s.zarr", nbits=64) as store:
        store.append(codes)

    def no_cluster(client):
        raise AssertionError("a cluster was started before the memory limit was checked")

    monkeypatch.setattr(dist, "connect", no_cluster)
    with pytest.raises(ValueError, match="too small"):
        dist.search(CodeStore.open(tmp_path / "s.zarr"), codes[:2], 5, memory_limit=1000)
