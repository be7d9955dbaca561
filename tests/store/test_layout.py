"""hashsearch.store.layout: creating a store (target checked, lock taken), opening one,
clearing one, and the checks of its arrays against the metadata. Real stores on disk."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from hashsearch import CodeStore
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError, StoreError, StoreLockedError
from hashsearch.store._lock import LOCK_KEY
from hashsearch.store.layout import FIELDS, StoreArrays, StoreState, clear_store, create_store, open_store
from hashsearch.store.metadata import StoreConfig, config_from_metadata
from hashsearch.synthetic import random_codes

CFG = StoreConfig(shard_rows=256, chunk_rows=64).resolved(64)


def create(path, **kwargs):
    options = {"with_labels": False, "with_source": False, "encoder": None, "overwrite": False, "storage_options": None}
    options.update(kwargs)
    return create_store(path, 64, CFG, **options)


def test_create_writes_the_layout_and_holds_the_lock(tmp_path):
    path = tmp_path / "s.zarr"
    location, _zstore, meta, lock = create(path, with_labels=True, with_source=True)
    try:
        assert location.local_root == path and meta["nrows"] == 0
        with pytest.raises(StoreLockedError):
            open_store(path, "a", None, None)
        group = zarr.open_group(str(path), mode="r")
        assert all(isinstance(group[name], zarr.Array) for name in FIELDS)
        assert group["codes"].shape == (0, 8) and group["codes"].shards == (256, 8) and group["codes"].chunks == (64, 8)
        assert group["ids"].dtype == np.int64 and group["source"].dtype == np.uint8
        assert group.attrs["hashsearch"] == meta
    finally:
        lock.release()
    location, _zstore, meta, lock = open_store(path, "a", 64, None)
    lock.release()
    assert meta["labels"] and meta["source"]


def test_create_refuses_what_is_not_a_store(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is not a directory"):
        create(tmp_path / "file")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    with pytest.raises(StoreError, match="refusing to write into it"):
        create(photos)
    assert (photos / "a.jpg").exists() and not (photos / LOCK_KEY).exists()
    existing = tmp_path / "s.zarr"
    create(existing)[3].release()
    with pytest.raises(StoreError, match="already exists"):
        create(existing)


def test_overwrite_clears_everything_but_the_lock(tmp_path):
    path = tmp_path / "s.zarr"
    with CodeStore.create(path, 64, shard_rows=256, chunk_rows=64, with_labels=True) as store:
        store.append(random_codes(600, 64, seed=95), labels=np.zeros(600, int))
    old_uuid = CodeStore.open(path).uuid
    location, _zstore, meta, lock = create(path, overwrite=True)
    lock.release()
    assert meta["uuid"] != old_uuid and not (path / "labels").exists()
    assert CodeStore.open(path).ntotal == 0 and (path / LOCK_KEY).exists()
    (path / "extra").mkdir()
    (path / "extra" / "f").write_text("x")
    clear_store(location.open(read_only=False), location)
    assert sorted(p.name for p in path.iterdir()) == [LOCK_KEY]


def test_open_errors(tmp_path):
    with pytest.raises(StoreError, match="the path does not exist"):
        open_store(tmp_path / "missing.zarr", "r", None, None)
    (tmp_path / "dir").mkdir()
    with pytest.raises(StoreError, match=r"the path has no zarr\.json"):
        open_store(tmp_path / "dir", "r", None, None)
    path = tmp_path / "s.zarr"
    create(path)[3].release()
    with pytest.raises(IncompatibleStoreError, match="expected 32-bit"):
        open_store(path, "a", 32, None)
    location, _zstore, _meta, lock = open_store(path, "a", 64, None)  # the refused open left no lock behind
    lock.release()
    assert location.local_root == path


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "s.zarr"
    with CodeStore.create(path, 64, shard_rows=256, chunk_rows=64) as store:
        store.append(random_codes(300, 64, seed=96))
    return path


def arrays_of(path, committed=None, writable=False) -> StoreArrays:
    location, zstore, meta, _ = open_store(path, "r", None, None)
    rows = meta["nrows"] if committed is None else committed
    return StoreArrays(zstore, location, meta, config_from_metadata(meta), rows, writable=writable)


def test_arrays_are_checked_against_the_metadata(small):
    arrays = arrays_of(small)
    assert sorted(arrays.arrays) == ["codes", "ids"] and sorted(arrays.checkers) == ["codes", "ids"]
    with pytest.raises(CorruptStoreError, match=r"array cut short"):
        arrays_of(small, committed=301)
    group = zarr.open_group(str(small), mode="r+")
    del group["ids"]
    with pytest.raises(CorruptStoreError, match=f"{small / 'ids' / 'zarr.json'}: array 'ids' missing"):
        arrays_of(small)
    group.create_group("ids")
    with pytest.raises(CorruptStoreError, match="'ids' is a group, expected an array"):
        arrays_of(small)
    del group["ids"]
    group.create_array("ids", shape=(300,), dtype="int32", shards=(256,), chunks=(64,))
    with pytest.raises(CorruptStoreError, match="dtype int32, 1-D; expected int64"):
        arrays_of(small)
    del group["ids"]
    group.create_array("ids", shape=(300,), dtype="int64", shards=(128,), chunks=(64,))
    with pytest.raises(CorruptStoreError, match=r"shards \(128,\), expected 256 rows"):
        arrays_of(small)
    del group["ids"]
    group.create_array("ids", shape=(300,), dtype="int64", chunks=(64,))
    with pytest.raises(CorruptStoreError, match="shards None"):
        arrays_of(small)


def test_state(small):
    location, zstore, meta, _ = open_store(small, "r", None, None)
    state = StoreState(location, zstore, "r", meta)
    assert (state.nbits, state.code_size, state.committed, state.shard_rows, state.chunk_rows) == (64, 8, 300, 256, 64)
    assert state.config == config_from_metadata(meta) and state.id_policy.positions
    assert state.files.arrays["codes"].shape == (300, 8)
