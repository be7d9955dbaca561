"""BinaryIndex.save / load / from_store: a saved index is a code store and back."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from hashsearch import BinaryIndex, CodeStore
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError, StoreError
from hashsearch.synthetic import random_codes, tied_codes


def assert_same_index(a: BinaryIndex, b: BinaryIndex) -> None:
    assert (a.nbits, a.ntotal) == (b.nbits, b.ntotal)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.ids, b.ids)


@pytest.mark.parametrize("nbits", [16, 64, 72])
def test_save_load_round_trip(tmp_path, rng, nbits):
    index = BinaryIndex(nbits)
    codes = tied_codes(2000, nbits, 40, seed=nbits)
    index.add(codes, ids=rng.permutation(100_000)[:2000])
    index.remove_ids(index.ids[::7])
    path = tmp_path / "index.zarr"
    index.save(path, shard_rows=256, encoder={"model": "test"})
    loaded = BinaryIndex.load(path)
    assert_same_index(index, loaded)
    queries = codes[:15]
    for got, want in zip(loaded.search(queries, 25), index.search(queries, 25), strict=True):
        np.testing.assert_array_equal(got, want)
    store = CodeStore.open(path)
    assert store.encoder_info == {"model": "test"} and store.config.shard_rows == 256
    assert store.verify().ok


def test_removed_ids_stay_reserved(tmp_path):
    index = BinaryIndex(32)
    index.add(random_codes(10, 32, seed=1))
    index.remove_ids([8, 9])  # the largest ids: new default ids must not reuse them
    index.save(tmp_path / "i.zarr")
    loaded = BinaryIndex.load(tmp_path / "i.zarr")
    loaded.add(random_codes(2, 32, seed=2))
    np.testing.assert_array_equal(loaded.ids[-2:], [10, 11])
    assert CodeStore.open(tmp_path / "i.zarr").next_id == 10


def test_loaded_index_can_be_changed(tmp_path):
    index = BinaryIndex(64, backend="numpy")
    index.add(random_codes(500, 64, seed=3))
    index.save(tmp_path / "i.zarr")
    loaded = BinaryIndex.load(tmp_path / "i.zarr", backend="numpy", num_threads=1)
    assert loaded.backend == "numpy" and loaded.num_threads == 1
    assert loaded.remove_ids(np.arange(0, 500, 2)) == 250
    loaded.add(random_codes(600, 64, seed=4))  # grows past the loaded size
    assert loaded.ntotal == 850
    np.testing.assert_array_equal(loaded.reconstruct(1), index.reconstruct(1))
    assert BinaryIndex.load(tmp_path / "i.zarr").ntotal == 500  # the file is untouched


def test_empty_index(tmp_path):
    BinaryIndex(8).save(tmp_path / "e.zarr")
    loaded = BinaryIndex.load(tmp_path / "e.zarr")
    assert loaded.ntotal == 0
    _d, i = loaded.search(np.zeros((1, 1), np.uint8), 2)
    assert (i == -1).all()


def test_from_store_includes_a_writers_buffer(tmp_path):
    codes = random_codes(700, 32, seed=5)
    with CodeStore.create(tmp_path / "s.zarr", 32, shard_rows=256, chunk_rows=64) as store:
        store.append(codes[:600])
        store.append(codes[600:], ids=np.arange(1000, 1100))
        index = BinaryIndex.from_store(store)
        assert store.committed_rows == 0  # nothing committed yet, all of it is found
    np.testing.assert_array_equal(index.codes, codes)
    np.testing.assert_array_equal(index.ids[600:], np.arange(1000, 1100))
    assert index.reconstruct(1050).tobytes() == codes[650].tobytes()


def test_save_and_load_errors(tmp_path):
    index = BinaryIndex(16)
    index.add(random_codes(5, 16, seed=6))
    index.save(tmp_path / "i.zarr")
    with pytest.raises(StoreError, match="already exists"):
        index.save(tmp_path / "i.zarr")
    index.add(random_codes(5, 16, seed=7))
    index.save(tmp_path / "i.zarr", overwrite=True)
    assert BinaryIndex.load(tmp_path / "i.zarr").ntotal == 10
    with pytest.raises(StoreError, match="does not exist"):
        BinaryIndex.load(tmp_path / "missing.zarr")
    zarr.create_group(str(tmp_path / "plain.zarr"), zarr_format=3)
    with pytest.raises(IncompatibleStoreError):
        BinaryIndex.load(tmp_path / "plain.zarr")


def test_duplicate_ids_in_a_damaged_store_are_refused(tmp_path):
    with CodeStore.create(tmp_path / "s.zarr", 16, shard_rows=64, chunk_rows=16) as store:
        store.append(random_codes(100, 16, seed=8), ids=np.arange(100, 0, -1))
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")
    group["ids"][5] = 100  # another row already has id 100
    with pytest.raises(CorruptStoreError, match="duplicate id 100"):
        BinaryIndex.load(tmp_path / "s.zarr")


def test_save_arrays_writes_extra_attributes_with_the_first_commit(tmp_path, monkeypatch):
    from hashsearch.index import persistence
    from hashsearch.store.writer import StoreWriter

    codes = random_codes(300, 32, seed=5)
    ids = np.arange(300, dtype=np.int64)
    path = tmp_path / "a.zarr"
    persistence.save_arrays(path, 32, codes, ids, next_id=400, attrs={"extra": {"m": 3}}, shard_rows=128)
    group = zarr.open_group(path, mode="r")
    assert group.attrs["extra"] == {"m": 3}
    store = CodeStore.open(path)
    assert store.ntotal == 300 and store.next_id == 400 and store.verify().ok
    # a save that fails while writing its rows leaves the attributes on every committed state
    calls = []
    real_commit = StoreWriter.commit

    def failing_commit(self, nrows, changes):
        calls.append(nrows)
        raise OSError("disk full")

    monkeypatch.setattr(StoreWriter, "commit", failing_commit)
    with pytest.raises(OSError, match="disk full"):
        persistence.save_arrays(tmp_path / "b.zarr", 32, codes, ids, next_id=300, attrs={"extra": 1})
    assert calls
    assert zarr.open_group(tmp_path / "b.zarr", mode="r").attrs["extra"] == 1
    monkeypatch.setattr(StoreWriter, "commit", real_commit)
    with pytest.raises(ValueError, match="hashsearch"):
        persistence.save_arrays(tmp_path / "c.zarr", 32, codes, ids, next_id=300, attrs={"hashsearch": {}})
    assert not (tmp_path / "c.zarr").exists()
