"""hashsearch.store._zarrio: locations, JSON documents, the shard index, shard checks and
the direct reads, on real Zarr v3 stores on disk (and fsspec's in-memory file system)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore, MemoryStore

from hashsearch import CodeStore
from hashsearch.errors import CorruptStoreError, StoreError
from hashsearch.store import StoreConfig
from hashsearch.store._zarrio import (
    ShardChecker,
    StoreLocation,
    read_json,
    resolve_location,
    shard_index_entries,
)
from hashsearch.synthetic import random_codes

SHARD, CHUNK = 256, 64


@pytest.fixture
def codes_store(tmp_path):
    """1,000 64-bit codes in shards of 256 rows (inner chunks of 64): 4 shards, the last partial."""
    path = tmp_path / "codes.zarr"
    codes = random_codes(1000, 64, seed=60)
    with CodeStore.create(path, 64, config=StoreConfig(shard_rows=SHARD, chunk_rows=CHUNK)) as store:
        store.append(codes)
    return path, codes


def checker_for(path: Path, name: str = "codes", *, checksum: bool = True) -> ShardChecker:
    location = resolve_location(path)
    zstore = location.open(read_only=True)
    array = zarr.open_array(zstore, path=name, mode="r")
    return ShardChecker(
        array, name, zstore, location, uncompressed_row_bytes=8 if name == "codes" else None, checksum=checksum
    )


# -- locations ------------------------------------------------------------------------------
def test_resolve_location(tmp_path, monkeypatch):
    local = resolve_location(str(tmp_path / "a.zarr"))
    assert local.local_root == tmp_path / "a.zarr" and local.url == str(tmp_path / "a.zarr") and local.shareable
    assert resolve_location(tmp_path / "a.zarr") == local  # os.PathLike
    assert resolve_location("file://" + str(tmp_path / "a.zarr")) == local
    assert resolve_location(local) is local
    monkeypatch.chdir(tmp_path)
    assert resolve_location("rel.zarr").local_root == tmp_path / "rel.zarr"  # made absolute
    assert resolve_location(LocalStore(tmp_path / "b.zarr")).local_root == tmp_path / "b.zarr"
    url = resolve_location("s3://bucket/codes.zarr", {"anon": True})
    assert url.local_root is None and url.storage_options == {"anon": True} and url.shareable
    assert url.describe("codes/zarr.json") == "s3://bucket/codes.zarr/codes/zarr.json"
    assert local.describe("ids/c/0") == str(tmp_path / "a.zarr" / "ids" / "c" / "0") and local.describe() == local.url
    mem = resolve_location(MemoryStore())
    assert not mem.shareable and mem.local_root is None and mem.url.startswith("<MemoryStore")
    for bad in (None, 3, ""):
        with pytest.raises(TypeError, match="path, URL or zarr Store"):
            resolve_location(bad)


def test_open_locations(tmp_path):
    store = StoreLocation(str(tmp_path), None, tmp_path).open(read_only=True)
    assert isinstance(store, LocalStore) and store.read_only
    mem = MemoryStore()
    location = resolve_location(mem)
    assert location.open(read_only=False) is mem and location.open(read_only=True).read_only
    with pytest.raises(StoreError, match="cannot open store URL"):
        resolve_location("nosuchprotocol://x/y").open(read_only=True)


# -- JSON documents ---------------------------------------------------------------------------
def test_read_json(tmp_path):
    root = tmp_path / "g.zarr"
    zarr.create_group(str(root), zarr_format=3, attributes={"a": 1})
    location = resolve_location(root)
    zstore = location.open(read_only=True)
    assert read_json(zstore, "zarr.json", location)["attributes"] == {"a": 1}
    assert read_json(zstore, "missing.json", location) is None
    (root / "bad.json").write_bytes(b"{not json")
    with pytest.raises(CorruptStoreError, match=f"{root / 'bad.json'}: not valid JSON"):
        read_json(zstore, "bad.json", location)
    (root / "list.json").write_text(json.dumps([1, 2]))
    with pytest.raises(CorruptStoreError, match="expected a JSON object"):
        read_json(zstore, "list.json", location)
    (root / "latin.json").write_bytes(b"\xff\xfe")
    with pytest.raises(CorruptStoreError, match="not valid JSON"):
        read_json(zstore, "latin.json", location)


# -- the shard index ----------------------------------------------------------------------
def test_shard_index_entries_decodes_offsets_and_sizes(codes_store):
    path, _ = codes_store
    raw = (path / "codes" / "c" / "0" / "0").read_bytes()
    table = shard_index_entries(raw, SHARD // CHUNK)
    assert table.shape == (4, 2) and table.dtype == np.dtype("<u8")
    # uncompressed chunks of 64 rows x 8 bytes, each followed by its 4-byte CRC32C, back to back
    np.testing.assert_array_equal(table[:, 1], [CHUNK * 8 + 4] * 4)
    np.testing.assert_array_equal(table[:, 0], np.arange(4) * (CHUNK * 8 + 4))
    # a hand-made index: the entry 2**64 - 1 marks a chunk that is not stored
    tail = struct.pack("<6Q", 0, 10, 2**64 - 1, 2**64 - 1, 10, 7) + b"crc!"
    np.testing.assert_array_equal(shard_index_entries(b"prefix" + tail, 3), [[0, 10], [2**64 - 1, 2**64 - 1], [10, 7]])


def test_missing_chunks(tmp_path):
    # zarr leaves out inner chunks that hold only the fill value when write_empty_chunks is off
    root = tmp_path / "sparse.zarr"
    group = zarr.create_group(str(root), zarr_format=3)
    arr = group.create_array("codes", shape=(256, 8), dtype="uint8", shards=(256, 8), chunks=(64, 8), fill_value=0)
    block = np.zeros((256, 8), np.uint8)
    block[0:64] = 1
    block[128:192] = 2
    arr[:] = block
    checker = checker_for(root)
    assert checker.missing_chunks(0, 256) == [1, 3]
    assert checker.missing_chunks(0, 64) == [] and checker.missing_chunks(0, 100) == [1]


# -- shard checks -------------------------------------------------------------------------
def test_check_names_missing_and_truncated_shards(codes_store):
    path, _ = codes_store
    checker = checker_for(path)
    checker.check(0, 1000)  # a sound store passes
    checker.check(5, 5)  # an empty range checks nothing
    shard = path / "codes" / "c" / "2" / "0"
    assert checker.min_size(SHARD) == 4 * 16 + 4 + 4 * (CHUNK * 8 + 4) == shard.stat().st_size
    raw = shard.read_bytes()
    shard.write_bytes(raw[:-100])
    checker.check(0, 1000)  # checks are cached until the shard is forgotten
    checker.forget(2)
    with pytest.raises(CorruptStoreError, match=f"{shard}: shard file truncated"):
        checker.check(512, 768)
    checker.check(0, 512)  # the other shards stay checked
    shard.unlink()
    checker.forget()
    with pytest.raises(CorruptStoreError, match=rf"{shard}: shard file missing \(it holds committed rows 512..767\)"):
        checker.check(0, 1000)


def test_check_on_an_fsspec_store(tmp_path):
    import fsspec

    url = f"memory://{tmp_path.name}/codes.zarr"
    with CodeStore.create(url, 64, shard_rows=SHARD, chunk_rows=CHUNK) as store:
        store.append(random_codes(600, 64, seed=61))
    location = resolve_location(url)
    zstore = location.open(read_only=True)
    array = zarr.open_array(zstore, path="codes", mode="r")
    checker = ShardChecker(array, "codes", zstore, location, uncompressed_row_bytes=8, checksum=True)
    assert not checker.direct  # not a local file: reads go through zarr
    checker.check(0, 600)
    fsspec.filesystem("memory").rm(f"{url}/{checker.key(1)}")
    checker.forget()
    with pytest.raises(CorruptStoreError, match=f"{url}/codes/c/1/0: shard file missing"):
        checker.check(0, 600)


# -- direct reads -------------------------------------------------------------------------
def test_read_direct_equals_the_stored_rows(codes_store):
    path, codes = codes_store
    checker = checker_for(path)
    assert checker.direct
    for shard, lo, hi in ((0, 0, 256), (1, 5, 70), (3, 0, 1000 - 768), (2, 255, 256), (0, 64, 128)):
        out = np.empty((hi - lo, 8), np.uint8)
        assert checker.read_direct(shard, lo, hi, out)
        np.testing.assert_array_equal(out, codes[shard * SHARD + lo : shard * SHARD + hi])
    wide = np.empty((10, 16), np.uint8)
    assert not checker.read_direct(0, 0, 10, wide[:, :8])  # not C-contiguous: the caller reads through zarr
    assert not checker.read_direct(0, 0, 10, np.empty((10, 8), np.int8))
    assert not checker.read_direct(9, 0, 10, np.empty((10, 8), np.uint8))  # no such shard file
    assert not checker_for(path, "ids").direct  # compressed arrays always go through zarr


def test_read_direct_refuses_a_damaged_chunk(codes_store):
    path, codes = codes_store
    shard = path / "codes" / "c" / "1" / "0"
    raw = bytearray(shard.read_bytes())
    raw[CHUNK * 8 + 4 + 3] ^= 0x01  # one bit of the second inner chunk
    shard.write_bytes(bytes(raw))
    checker = checker_for(path)
    out = np.empty((CHUNK, 8), np.uint8)
    assert checker.read_direct(1, 0, CHUNK, out)  # the first chunk is intact
    np.testing.assert_array_equal(out, codes[SHARD : SHARD + CHUNK])
    assert not checker.read_direct(1, CHUNK, 2 * CHUNK, out)  # its CRC32C fails
    assert not checker.read_direct(1, CHUNK + 1, CHUNK + 2, out[:1])  # part of it: the whole chunk is verified
    with pytest.raises(CorruptStoreError, match=str(shard)):
        CodeStore.open(path).read_codes(SHARD + CHUNK, SHARD + 2 * CHUNK)  # zarr's path names the file


def test_read_direct_without_checksums(tmp_path):
    path = tmp_path / "plain.zarr"
    codes = random_codes(300, 64, seed=62)
    with CodeStore.create(path, 64, config=StoreConfig(shard_rows=SHARD, chunk_rows=CHUNK, checksum=False)) as store:
        store.append(codes)
    checker = checker_for(path, checksum=False)
    assert checker.direct
    out = np.empty((44, 8), np.uint8)
    assert checker.read_direct(1, 0, 44, out)
    np.testing.assert_array_equal(out, codes[256:300])
