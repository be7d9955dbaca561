"""hashsearch.store.verify: every problem of a damaged store is reported (not raised), naming
the file; leftovers of an interrupted writer are warnings. Stores are real, damaged with zarr."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from hashsearch import CodeStore
from hashsearch.store._lock import LOCK_KEY, LockHolder
from hashsearch.store.layout import StoreState, open_store
from hashsearch.store.reader import StoreReader
from hashsearch.store.verify import VerifyReport, verify_store
from hashsearch.synthetic import random_codes

SHARD = 256


def make(path, *, ids=None, labels=False, source=False, n=1000):
    with CodeStore.create(path, 64, shard_rows=SHARD, chunk_rows=64, with_labels=labels, with_source=source) as store:
        store.append(
            random_codes(n, 64, seed=70),
            ids=ids,
            labels=np.arange(n) % 5 if labels else None,
            source=np.arange(n) % 2 if source else None,
        )
    return path


def verify(path, **kwargs) -> VerifyReport:
    location, zstore, meta, _ = open_store(path, "r", None, None)
    return verify_store(StoreReader(StoreState(location, zstore, "r", meta)), **kwargs)


def edit_meta(path, **changes) -> None:
    group = zarr.open_group(str(path), mode="r+")
    meta = dict(group.attrs["hashsearch"])
    meta.update(changes)
    group.update_attributes({"hashsearch": meta})


def test_a_sound_store(tmp_path):
    report = verify(make(tmp_path / "s.zarr", labels=True, source=True))
    assert report.ok and report.errors == [] and report.warnings == []
    assert (report.nrows, report.shards) == (1000, 4)
    assert report.to_dict() == {
        "path": str(tmp_path / "s.zarr"), "nrows": 1000, "shards": 4, "errors": [], "warnings": [], "ok": True
    }
    assert verify(make(tmp_path / "e.zarr", n=0)).ok


@pytest.mark.parametrize("block_rows", [None, 1000, 1])  # one shard; rounded to 3 shards; at least one shard
def test_id_problems(tmp_path, block_rows):
    path = make(tmp_path / "s.zarr", ids=np.arange(1000) * 3 + 1)
    ids = zarr.open_array(str(path / "ids"), mode="r+")
    ids[700] = 4  # row 1 has id 4 already
    ids[20] = -9
    report = verify(path, block_rows=block_rows)
    assert not report.ok
    assert any(e == f"{path / 'ids'}: negative id -9" for e in report.errors)
    assert any(e == f"{path / 'ids'}: duplicate id 4" for e in report.errors)


def test_ids_that_should_be_positions(tmp_path):
    path = make(tmp_path / "s.zarr")  # default ids: the metadata says ids are positions
    zarr.open_array(str(path / "ids"), mode="r+")[300] = 5000
    errors = verify(path).errors
    assert f"{path / 'zarr.json'}: says ids equal positions, but rows 256..511 differ" in errors
    assert any("next_id 1000 is not above the largest id 5000" in e for e in errors)


def test_next_id_must_be_above_every_id(tmp_path):
    path = make(tmp_path / "s.zarr", ids=np.arange(1000) + 10)
    edit_meta(path, next_id=1009)
    assert verify(path).errors == [f"{path / 'zarr.json'}: next_id 1009 is not above the largest id 1009"]
    edit_meta(path, next_id=1010)
    assert verify(path).ok


def test_source_values_must_be_source_indices(tmp_path):
    path = make(tmp_path / "s.zarr", source=True)
    zarr.open_array(str(path / "source"), mode="r+")[999] = 7
    assert verify(path).errors == [f"{path / 'source'}: value 7 is not a source index (0..1)"]


def test_damaged_shards_do_not_stop_the_other_checks(tmp_path):
    path = make(tmp_path / "s.zarr", ids=np.arange(1000)[::-1] + 1)
    zarr.open_array(str(path / "ids"), mode="r+")[0] = 2  # a duplicate, in shard 0 of ids
    codes_shard = path / "codes" / "c" / "1" / "0"
    codes_shard.write_bytes(codes_shard.read_bytes()[:50])  # truncated
    missing = path / "codes" / "c" / "3" / "0"
    missing.unlink()
    errors = verify(path).errors
    assert any(e.startswith(f"{codes_shard}: shard file truncated") for e in errors)
    assert any(e.startswith(f"{missing}: shard file missing") for e in errors)
    assert f"{path / 'ids'}: duplicate id 2" in errors
    assert len(errors) == 3  # each damaged shard once, though rows of it are read later


def test_a_bit_flip_is_an_error_naming_the_shard(tmp_path):
    path = make(tmp_path / "s.zarr")
    shard = path / "codes" / "c" / "2" / "0"
    raw = bytearray(shard.read_bytes())
    raw[100] ^= 0x10
    shard.write_bytes(bytes(raw))
    report = verify(path)
    assert len(report.errors) == 1 and str(shard) in report.errors[0]


def test_leftovers_of_an_interrupted_writer_are_warnings(tmp_path):
    path = make(tmp_path / "s.zarr")
    zarr.open_array(str(path / "codes"), mode="r+").resize((1100, 8))  # rows past the commit
    (path / "ids" / "c" / "0.partial").write_bytes(b"half a file")
    holder = LockHolder(pid=12345, host="another-host", since="yesterday", token="t")
    (path / LOCK_KEY).write_bytes(holder.to_bytes())
    report = verify(path)
    assert report.ok  # nothing committed is wrong
    assert report.warnings == [
        f"{path / 'codes'}: 100 rows past the commit (an interrupted append; the next writer drops them)",
        f"{path / 'ids' / 'c' / '0.partial'}: temporary file of an interrupted write",
        "lock record names pid 12345 on host another-host since yesterday (a writer is active or did not close)",
    ]


def test_the_facade_reports_the_same(tmp_path):
    path = make(tmp_path / "s.zarr", source=True)
    zarr.open_array(str(path / "source"), mode="r+")[5] = 3
    report = CodeStore.open(path).verify()
    assert report.to_dict() == verify(path).to_dict() and json.dumps(report.to_dict())
