"""hashsearch.store.view: the reading side of CodeStore: the description of a store, what a
writer's view shows, and every read refused once the store is closed."""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch import CodeStore
from hashsearch._version import __version__
from hashsearch.errors import StoreError
from hashsearch.store.view import StoreView
from hashsearch.synthetic import random_codes


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "s.zarr"
    with CodeStore.create(p, 64, shard_rows=256, chunk_rows=64, with_source=True, encoder={"model": "m"}) as store:
        store.append(random_codes(300, 64, seed=97), ids=np.arange(300) + 10, source="ms")
    return p


def test_description(path):
    store = CodeStore.open(path)
    assert isinstance(store, StoreView)
    info = store.info()
    expected = {
        "path": str(path), "format_version": 1, "library_version": __version__, "nbits": 64,
        "bit_order": "little", "nrows": 300, "ntotal": 300, "shards": 2, "shard_rows": 256, "chunk_rows": 64,
        "aux_chunk_rows": 64, "checksum": True, "labels": False, "source": True, "source_names": ["pan", "ms"],
        "ids_are_positions": False, "next_id": 310, "encoder": {"model": "m"},
    }
    assert {key: info[key] for key in expected} == expected
    assert set(info) - set(expected) == {"uuid", "created", "updated", "bytes_on_disk"}
    assert info["uuid"] == store.uuid and len(store.uuid) == 32
    assert info["bytes_on_disk"] == sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert store.attrs["nrows"] == 300 and store.attrs is not store.attrs  # a copy each time
    assert repr(store) == f"CodeStore({str(path)!r}, nbits=64, ntotal=300, mode='r')"
    assert (len(store), store.committed_rows, store.path, store.code_size) == (300, 300, str(path), 8)
    assert store.lock_holder() is None


def test_a_writers_view_includes_what_is_not_committed(path):
    with CodeStore.open(path, "a") as writer:
        writer.append(random_codes(5, 64, seed=98), source="pan")  # default ids from 310
        assert (writer.ntotal, writer.committed_rows, writer.next_id) == (305, 300, 315)
        assert writer.refresh() == 305  # a writer has nothing to pick up
        assert writer.lock_holder() is not None
        np.testing.assert_array_equal(writer.read_ids(300, 305), np.arange(310, 315))
        assert list(writer.read_source(299, 301, names=True)) == ["ms", "pan"]
    assert CodeStore.open(path).info()["next_id"] == 315


def test_a_closed_store_refuses_every_read(path):
    store = CodeStore.open(path)
    store.close()
    store.close()  # idempotent
    assert store.closed and repr(store).endswith("mode='closed')")
    queries = np.zeros((1, 8), np.uint8)
    for call in (
        store.read,
        store.read_codes,
        lambda: store.read_into("codes", 0, 1, np.empty((1, 8), np.uint8)),
        lambda: list(store.iter_blocks()),
        lambda: store.search(queries, 1),
        store.verify,
        store.refresh,
        lambda: store.code_source,
    ):
        with pytest.raises(StoreError, match="the store is closed"):
            call()
