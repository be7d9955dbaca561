"""hashsearch.store.metadata: the attributes of a new store and reading them back checked;
the layout options; encoder provenance."""

from __future__ import annotations

import json

import pytest
import zarr

from hashsearch import CodeStore
from hashsearch._version import __version__
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError, StoreError
from hashsearch.store._zarrio import resolve_location
from hashsearch.store.metadata import (
    FORMAT_NAME,
    FORMAT_VERSION,
    StoreConfig,
    check_encoder,
    config_from_metadata,
    id_policy_from_metadata,
    new_metadata,
    read_metadata,
)


def read(path, nbits=None):
    location = resolve_location(path)
    return read_metadata(location.open(read_only=True), location, nbits)


def test_sizes_of_a_resolved_config():
    with pytest.raises(ValueError, match="not resolved"):
        StoreConfig().sizes()
    assert StoreConfig(shard_rows=512, chunk_rows=64).resolved(64).sizes() == (512, 64, 64)
    assert StoreConfig(shard_rows=2**16).resolved(64).sizes() == (2**16, 2**16, 2**14)


def test_new_metadata():
    cfg = StoreConfig(shard_rows=512, chunk_rows=128, checksum=False, source_names=("a", "b", "c")).resolved(72)
    meta = new_metadata(72, cfg, with_labels=True, with_source=False, encoder={"model": "x"})
    assert (meta["format"], meta["format_version"]) == (FORMAT_NAME, FORMAT_VERSION)
    assert (meta["nbits"], meta["code_size"]) == (72, 9)
    assert (meta["nrows"], meta["next_id"], meta["max_id"], meta["ids_are_positions"]) == (0, 0, -1, True)
    assert meta["layout"] == {
        "shard_rows": 512, "chunk_rows": 128, "aux_chunk_rows": 128, "checksum": False, "compression_level": 1
    }
    assert (meta["labels"], meta["source"], meta["source_names"]) == (True, False, ["a", "b", "c"])
    assert meta["bit_order"] == "little" and meta["library_version"] == __version__ and len(meta["uuid"]) == 32
    json.dumps(meta)  # JSON all the way down
    assert config_from_metadata(meta) == cfg
    other = new_metadata(72, cfg, with_labels=True, with_source=False, encoder=None)
    assert other["uuid"] != meta["uuid"]


def test_id_policy_from_metadata():
    policy = id_policy_from_metadata({"next_id": 10, "max_id": 9, "ids_are_positions": False})
    assert (policy.next_id, policy.max_id, policy.positions, policy.increasing) == (10, 9, False, False)
    fresh = id_policy_from_metadata({})
    assert (fresh.next_id, fresh.max_id, fresh.positions) == (0, -1, True)


def test_check_encoder():
    info = {"model": "sidhcnn", "layers": [1, 2]}
    stored = check_encoder(info)
    assert stored == info and stored is not info
    info["layers"].append(3)
    assert stored["layers"] == [1, 2]  # a copy, not a view of the caller's dict
    assert check_encoder(None) is None
    with pytest.raises(TypeError, match="must be a dict"):
        check_encoder("sidhcnn")
    with pytest.raises(ValueError, match="JSON-serialisable"):
        check_encoder({"when": object()})


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "s.zarr"
    with CodeStore.create(path, 64, shard_rows=256, chunk_rows=64):
        pass
    return path


def rewrite(path, edit) -> None:
    doc = json.loads((path / "zarr.json").read_text())
    edit(doc)
    (path / "zarr.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda d: d.update(zarr_format=2), IncompatibleStoreError, "zarr_format 2; code stores are Zarr v3"),
        (lambda d: d.update(node_type="array"), IncompatibleStoreError, "a Zarr array, not a group"),
        (lambda d: d["attributes"].pop("hashsearch"), IncompatibleStoreError, "not a hashsearch code store"),
        (lambda d: d["attributes"]["hashsearch"].update(format="other"), IncompatibleStoreError, "not a hashsearch"),
        (lambda d: d["attributes"]["hashsearch"].update(nbits=12), CorruptStoreError, "invalid hashsearch attributes"),
        (lambda d: d["attributes"]["hashsearch"].update(nrows=-1), CorruptStoreError, "nrows must be >= 0"),
        (lambda d: d["attributes"]["hashsearch"]["layout"].update(chunk_rows=0), CorruptStoreError, "chunk_rows"),
        (lambda d: d["attributes"]["hashsearch"]["layout"].pop("shard_rows"), CorruptStoreError, "shard_rows"),
    ],
)
def test_read_metadata_refuses_foreign_and_invalid_attributes(store_path, edit, error, match):
    rewrite(store_path, edit)
    with pytest.raises(error, match=match) as info:
        read(store_path)
    assert str(store_path / "zarr.json") in str(info.value)


def test_read_metadata(store_path, tmp_path):
    meta = read(store_path, 64)
    assert meta["nbits"] == 64 and meta["nrows"] == 0
    with pytest.raises(IncompatibleStoreError, match="holds 64-bit codes, expected 32-bit"):
        read(store_path, 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreError, match=r"zarr\.json not found"):
        read(empty)
    zarr.create_group(str(tmp_path / "plain.zarr"), zarr_format=3)
    with pytest.raises(IncompatibleStoreError, match="not a hashsearch code store"):
        read(tmp_path / "plain.zarr")
