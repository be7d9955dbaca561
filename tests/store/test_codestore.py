"""CodeStore: round trips, commit semantics, locking, crash consistency, damaged
and foreign stores, out-of-core search and its memory bound.

Every store is a real Zarr v3 group in ``tmp_path``; writers that crash are real
subprocesses killed with SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from search_helpers import require_native

from hashsearch import BinaryIndex, CodeStore
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError, StoreError, StoreLockedError
from hashsearch.search.plan import result_bytes
from hashsearch.store import FORMAT_VERSION, StoreConfig
from hashsearch.synthetic import random_codes, tied_codes

SRC = str(Path(__file__).resolve().parents[2])  # the repository root


def row_codes(rows: np.ndarray) -> np.ndarray:
    """The 64-bit code that the subprocess writers store at each row (a hash of the row)."""
    mixed = rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(12345)
    return mixed.view(np.uint8).reshape(-1, 8)


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {src!r})
    from hashsearch.store import CodeStore

    def row_codes(rows):
        mixed = rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(12345)
        return mixed.view(np.uint8).reshape(-1, 8)

    path, batch, appends, flush_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = CodeStore.open(path, "a")
    print("ready", store.ntotal, flush=True)
    i = 0
    while appends < 0 or i < appends:
        n = store.ntotal
        store.append(row_codes(np.arange(n, n + batch)))
        i += 1
        if flush_every and i % flush_every == 0:
            store.flush()
        print(store.committed_rows, flush=True)
    store.close()
    print("closed", flush=True)
    """
)


def start_writer(tmp_path: Path, store: Path, batch: int, appends: int, flush_every: int = 0) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(src=SRC))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store), str(batch), str(appends), str(flush_every)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HASHSEARCH_NUM_THREADS": "1"},
    )
    line = proc.stdout.readline()
    assert line.startswith("ready"), line + proc.stderr.read()
    return proc


def check_rows(store: CodeStore, batch: int) -> int:
    """Assert the store holds whole appends of the writers' codes; return its rows."""
    n = len(store)
    assert n % batch == 0, f"{n} rows is not a whole number of {batch}-row appends"
    if n:
        np.testing.assert_array_equal(store.read_codes(), row_codes(np.arange(n)))
        np.testing.assert_array_equal(store.read_ids(), np.arange(n))
    return n


def make_store(path: Path, codes: np.ndarray, **kwargs) -> None:
    kwargs.setdefault("shard_rows", 256)
    kwargs.setdefault("chunk_rows", 64)
    with CodeStore.create(path, codes.shape[1] * 8, **kwargs) as store:
        store.append(codes)


# -- layout and round trips ---------------------------------------------------------------
def test_config_defaults_and_checks():
    cfg = StoreConfig().resolved(64)
    assert cfg.shard_rows % cfg.chunk_rows == 0 and cfg.shard_rows % cfg.aux_chunk_rows == 0
    assert cfg.chunk_rows * 8 <= 1 << 20 and cfg.aux_chunk_rows <= 16384
    assert StoreConfig(shard_rows=1000).resolved(64).chunk_rows == 1000
    big = StoreConfig(shard_rows=300_000).resolved(64)
    assert big.shard_rows % big.chunk_rows == 0
    with pytest.raises(ValueError, match="multiple of chunk_rows"):
        StoreConfig(shard_rows=100, chunk_rows=30).resolved(64)
    with pytest.raises(ValueError, match=">= 1"):
        StoreConfig(shard_rows=0).resolved(64)
    with pytest.raises(TypeError):
        StoreConfig(chunk_rows=1.5).resolved(64)
    with pytest.raises(ValueError, match="source_names"):
        StoreConfig(source_names=("pan", "pan")).resolved(64)
    with pytest.raises(ValueError, match="multiple of 8"):
        StoreConfig().resolved(12)


@pytest.mark.parametrize("nbits", [8, 24, 64, 72])
def test_round_trip(tmp_path, rng, nbits):
    path = tmp_path / "codes.zarr"
    codes = random_codes(1500, nbits, seed=nbits)
    labels = rng.integers(-1, 8, 1500)
    names = np.array(["pan", "ms"])[rng.integers(0, 2, 1500)]
    encoder = {"model": "sidhcnn-pan", "checkpoint_sha256": "ab" * 32, "sensor": "GF-1 PAN"}
    with CodeStore.create(
        path, nbits, shard_rows=256, chunk_rows=64, with_labels=True, with_source=True, encoder=encoder
    ) as store:
        for lo, hi in [(0, 10), (10, 600), (600, 601), (601, 1024), (1024, 1500)]:
            store.append(codes[lo:hi], labels=labels[lo:hi], source=names[lo:hi])
        assert len(store) == 1500
    store = CodeStore.open(path)
    assert (store.nbits, len(store), store.ntotal, store.committed_rows) == (nbits, 1500, 1500, 1500)
    np.testing.assert_array_equal(store.read_codes(), codes)
    np.testing.assert_array_equal(store.read_ids(), np.arange(1500))
    np.testing.assert_array_equal(store.read_labels(), labels)
    np.testing.assert_array_equal(store.read_source(names=True), names)
    assert store.encoder_info == encoder
    attrs = store.attrs
    assert attrs["bit_order"] == "little" and attrs["format_version"] == FORMAT_VERSION and attrs["nrows"] == 1500
    assert attrs["library_version"] and attrs["uuid"] == store.uuid
    block = store.read(300, 700, fields=("codes", "labels"))
    assert block.ids is None and len(block) == 400
    np.testing.assert_array_equal(block.codes, codes[300:700])
    blocks = list(store.iter_blocks(200, start=100, stop=1500, fields=("codes", "ids", "source")))
    assert [b.start for b in blocks] == list(range(100, 1500, 200))
    np.testing.assert_array_equal(np.concatenate([b.codes for b in blocks]), codes[100:])
    with pytest.raises(IndexError):
        store.read(0, 1501)
    with pytest.raises(ValueError, match="unknown field"):
        store.read(fields=("nope",))
    assert store.verify().ok
    # plain zarr sees the same arrays (only nrows is hashsearch's own rule)
    group = zarr.open_group(path, mode="r")
    np.testing.assert_array_equal(group["codes"][:], codes)
    assert group["codes"].compressors == () or all("Crc32c" in type(c).__name__ for c in group["codes"].compressors)


def test_codes_are_uncompressed_and_ids_compressed(tmp_path):
    path = tmp_path / "codes.zarr"
    make_store(path, random_codes(4096, 64, seed=1), shard_rows=1024, chunk_rows=256)
    size = lambda name: sum(f.stat().st_size for f in (path / name).rglob("*") if f.is_file())
    assert size("codes") >= 4096 * 8  # random bits: stored as they are
    assert size("ids") < 4096 * 8 / 4  # consecutive ids compress well


def test_explicit_ids_and_reopen_append(tmp_path, rng):
    path = tmp_path / "codes.zarr"
    codes = random_codes(900, 32, seed=2)
    ids = rng.permutation(10_000)[:900]
    with CodeStore.create(path, 32, shard_rows=128, chunk_rows=32) as store:
        store.append(codes[:500], ids=ids[:500])
    with CodeStore.open(path, "a") as store:  # last shard is partial: its rows are reloaded
        assert len(store) == 500 and not store.ids_are_positions
        store.append(codes[500:], ids=ids[500:])
        store.append(codes[:3])  # default ids continue after the largest
    store = CodeStore.open(path)
    np.testing.assert_array_equal(store.read_codes(), np.concatenate([codes, codes[:3]]))
    np.testing.assert_array_equal(store.read_ids()[:900], ids)
    np.testing.assert_array_equal(store.read_ids()[900:], ids.max() + 1 + np.arange(3))
    assert store.verify().ok


def test_commit_only_at_append_boundaries(tmp_path):
    path = tmp_path / "codes.zarr"
    codes = random_codes(2000, 16, seed=3)
    writer = CodeStore.create(path, 16, shard_rows=100, chunk_rows=50)
    reader = CodeStore.open(path)
    writer.append(codes[:30])  # buffered: nothing on disk
    assert (len(writer), writer.committed_rows) == (30, 0)
    writer.append(codes[30:250])  # shards 0 and 1 written; this append's tail is buffered
    assert (len(writer), writer.committed_rows) == (250, 30)
    assert reader.refresh() == 30
    np.testing.assert_array_equal(reader.read_codes(), codes[:30])
    writer.append(codes[250:300])  # completes shard 2: both appends are whole on disk
    assert writer.committed_rows == 300
    writer.append(codes[300:340])
    writer.flush()  # partial shard written, everything committed
    assert reader.refresh() == 340
    writer.append(codes[340:400])  # rewrites the partial shard whole
    writer.close()
    assert reader.refresh() == 400
    np.testing.assert_array_equal(reader.read_codes(), codes[:400])
    assert reader.verify().ok


def test_writer_sees_and_searches_its_buffered_rows(tmp_path):
    path = tmp_path / "codes.zarr"
    codes = tied_codes(700, 32, 20, seed=4)
    with CodeStore.create(path, 32, shard_rows=256, chunk_rows=64) as store:
        store.append(codes)
        assert store.committed_rows == 0 and len(store) == 700
        np.testing.assert_array_equal(store.read_codes(600, 700), codes[600:])
        index = BinaryIndex(32, backend="numpy")
        index.add(codes)
        for got, want in zip(store.search(codes[:9], 40), index.search(codes[:9], 40), strict=True):
            np.testing.assert_array_equal(got, want)
        assert BinaryIndex.from_store(store).ntotal == 700


# -- bad input never changes the store ---------------------------------------------------
def test_rejected_appends_change_nothing(tmp_path, rng):
    path = tmp_path / "codes.zarr"
    codes = random_codes(300, 64, seed=5)
    store = CodeStore.create(path, 64, shard_rows=128, chunk_rows=32, with_labels=True, with_source=True)
    store.append(codes[:200], ids=np.arange(0, 400, 2), labels=np.zeros(200, int), source="pan")
    before = (len(store), store.next_id)
    good = {"labels": np.zeros(10, int), "source": "ms"}
    bad_calls = [
        (TypeError, dict(codes=codes[:10].astype(np.int16), **good)),
        (ValueError, dict(codes=codes[:10, :4], **good)),
        (ValueError, dict(codes=codes[:10], ids=np.arange(5), **good)),
        (ValueError, dict(codes=codes[:10], ids=np.full(10, 999), **good)),  # duplicates
        (ValueError, dict(codes=codes[:10], ids=-np.arange(1, 11), **good)),
        (ValueError, dict(codes=codes[:10], ids=np.arange(1, 11), **good)),  # id 2, 4... stored (slow check)
        (ValueError, {"codes": codes[:10], "labels": np.zeros(9, int), "source": "ms"}),
        (ValueError, {"codes": codes[:10], "source": "ms"}),  # labels missing
        (TypeError, {"codes": codes[:10], "labels": np.zeros(10), "source": "ms"}),
        (ValueError, {"codes": codes[:10], "labels": np.zeros(10, int), "source": "mul"}),
        (ValueError, {"codes": codes[:10], "labels": np.zeros(10, int), "source": np.full(10, 7)}),
        (ValueError, {"codes": codes[:10], "labels": np.zeros(10, int)}),  # source missing
    ]
    for error, kwargs in bad_calls:
        with pytest.raises(error):
            store.append(**kwargs)
        assert (len(store), store.next_id) == before
    store.append(codes[200:], ids=np.arange(1, 201, 2), labels=np.ones(100, int), source="ms")  # odd ids are free
    store.close()
    store = CodeStore.open(path)
    np.testing.assert_array_equal(store.read_codes(), codes)
    assert store.verify().ok
    with pytest.raises(StoreError, match="read-only"):
        store.append(codes[:1])
    with pytest.raises(ValueError, match="no labels"):
        CodeStore.create(tmp_path / "plain.zarr", 64).append(codes[:1], labels=[1])


def test_create_refuses_to_clobber(tmp_path):
    path = tmp_path / "codes.zarr"
    make_store(path, random_codes(10, 64, seed=6))
    with pytest.raises(StoreError, match="already exists"):
        CodeStore.create(path, 64)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"not codes")
    with pytest.raises(StoreError, match="not a Zarr store"):
        CodeStore.create(other, 64, overwrite=True)
    assert (other / "holiday.jpg").exists()
    with CodeStore.create(path, 32, overwrite=True) as store:
        assert len(store) == 0 and store.nbits == 32


# -- locking ------------------------------------------------------------------------------
def test_one_writer_many_readers(tmp_path):
    path = tmp_path / "codes.zarr"
    writer = CodeStore.create(path, 64, shard_rows=64, chunk_rows=32)
    with pytest.raises(StoreLockedError, match=f"pid {os.getpid()} on host"):
        CodeStore.open(path, "a")
    with pytest.raises(StoreLockedError):
        CodeStore.create(path, 64, overwrite=True)
    readers = [CodeStore.open(path) for _ in range(3)]
    writer.append(random_codes(100, 64, seed=7))
    writer.close()
    assert all(r.refresh() == 100 for r in readers)
    with CodeStore.open(path, "a") as again:
        again.append(random_codes(1, 64, seed=8))
    assert CodeStore.open(path).lock_holder() is None


def test_lock_of_a_killed_writer_is_released(tmp_path, caplog):
    path = tmp_path / "codes.zarr"
    CodeStore.create(path, 64, shard_rows=4096, chunk_rows=1024).close()
    proc = start_writer(tmp_path, path, batch=1000, appends=-1)
    try:
        proc.stdout.readline()
        with pytest.raises(StoreLockedError, match=f"pid {proc.pid} on host") as info:
            CodeStore.open(path, "a")
        assert "since" in str(info.value)
        holder = CodeStore.open(path).lock_holder()
        assert holder is not None and holder.pid == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the kernel dropped the dead writer's flock
    with caplog.at_level(logging.WARNING, logger="hashsearch"), CodeStore.open(path, "a") as store:
        check_rows(store, 1000)
    assert f"pid {proc.pid}" in caplog.text and "did not close" in caplog.text


def test_record_lock_on_object_like_stores(caplog):
    from zarr.storage import MemoryStore

    from hashsearch.store._lock import LOCK_KEY, LockHolder

    mem = MemoryStore()
    store = CodeStore.create(mem, 16, shard_rows=64, chunk_rows=16)
    with pytest.raises(StoreLockedError, match="hashsearch index unlock"):
        CodeStore.open(mem, "a")
    store.close()
    proto = zarr.core.buffer.default_buffer_prototype()

    def put(holder: LockHolder) -> None:
        zarr.core.sync.sync(mem.set(LOCK_KEY, proto.buffer.from_bytes(holder.to_bytes())))

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    me = LockHolder.me()
    put(LockHolder(pid=int(dead.stdout), host=me.host, since="earlier", token="t1"))
    with caplog.at_level(logging.WARNING, logger="hashsearch"):
        CodeStore.open(mem, "a").close()  # same host, process gone: broken automatically
    assert "stale lock" in caplog.text
    put(LockHolder(pid=1, host="another-host", since="earlier", token="t2"))
    with pytest.raises(StoreLockedError, match="pid 1 on host another-host"):
        CodeStore.open(mem, "a")
    assert CodeStore.break_lock(mem).host == "another-host"
    CodeStore.open(mem, "a").close()


# -- crash consistency and concurrent readers ---------------------------------------------
def test_kill_9_during_appends_keeps_committed_rows(tmp_path):
    path = tmp_path / "codes.zarr"
    CodeStore.create(path, 64, shard_rows=2048, chunk_rows=512).close()
    batch = 3000  # not a multiple of the shard: appends end mid-shard
    seen = []
    for round_ in range(3):
        proc = start_writer(tmp_path, path, batch=batch, appends=-1, flush_every=3)
        for _ in range(2 + round_):
            proc.stdout.readline()
        time.sleep(0.003 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = CodeStore.open(path)
        seen.append(check_rows(store, batch))
        report = store.verify()
        assert report.ok, report.errors
    assert seen[-1] > 0 and seen == sorted(seen)
    with CodeStore.open(path, "a") as store:  # the next writer cuts uncommitted rows and goes on
        n = len(store)
        store.append(row_codes(np.arange(n, n + batch)))
    store = CodeStore.open(path)
    check_rows(store, batch)
    report = store.verify()
    assert report.ok and not report.warnings, report


def test_readers_never_see_half_an_append(tmp_path):
    path = tmp_path / "codes.zarr"
    CodeStore.create(path, 64, shard_rows=1024, chunk_rows=256).close()
    batch = 2500
    proc = start_writer(tmp_path, path, batch=batch, appends=40, flush_every=2)
    counts = set()
    reader = CodeStore.open(path)
    try:
        while proc.poll() is None:
            reader.refresh()
            counts.add(check_rows(reader, batch))
            counts.add(check_rows(CodeStore.open(path), batch))  # a fresh reader too
    finally:
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    reader.refresh()
    assert check_rows(reader, batch) == 40 * batch
    assert len(counts) >= 3, counts  # the reader really ran during the appends


# -- damaged and foreign stores -----------------------------------------------------------
@pytest.fixture
def small_store(tmp_path):
    path = tmp_path / "codes.zarr"
    make_store(path, random_codes(1000, 64, seed=9), shard_rows=256, chunk_rows=64)
    return path


@pytest.mark.parametrize(
    "damage",
    ["truncate", "empty", "delete", "flip_data", "flip_index", "garbage"],
)
def test_damaged_shard_is_named(small_store, damage):
    shard = small_store / "codes" / "c" / "1" / "0"
    raw = bytearray(shard.read_bytes())
    if damage == "truncate":
        shard.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        shard.write_bytes(b"")
    elif damage == "delete":
        shard.unlink()
    elif damage == "flip_data":
        raw[100] ^= 0x10
        shard.write_bytes(raw)
    elif damage == "flip_index":
        raw[-7] ^= 0x01
        shard.write_bytes(raw)
    else:
        shard.write_bytes(os.urandom(len(raw)))
    store = CodeStore.open(small_store)
    with pytest.raises(CorruptStoreError, match=str(shard)):
        store.read_codes()
    with pytest.raises(CorruptStoreError, match=str(shard)):
        store.search(random_codes(2, 64, seed=1), 3)
    np.testing.assert_array_equal(store.read_codes(0, 256), random_codes(1000, 64, seed=9)[:256])  # the rest reads
    report = store.verify()
    assert not report.ok and str(shard) in report.errors[0]


@pytest.mark.parametrize("checksum", [True, False])
def test_direct_local_reads_equal_zarr_reads(tmp_path, checksum):
    # Local uncompressed codes are read straight from the shard files (the fast path of
    # the out-of-core search); any range, aligned or not, must equal zarr's own reading.
    path = tmp_path / "codes.zarr"
    codes = random_codes(3000, 64, seed=21)
    config = StoreConfig(shard_rows=1024, chunk_rows=128, checksum=checksum)
    with CodeStore.create(path, 64, config=config) as store:
        store.append(codes)
    store = CodeStore.open(path)
    checker = store._checkers["codes"]
    assert checker._direct
    ranges = [(0, 3000), (5, 1030), (128, 256), (1000, 2100), (2999, 3000), (700, 701)]
    for lo, hi in ranges:
        np.testing.assert_array_equal(store.read_codes(lo, hi), codes[lo:hi])
    target = np.empty((128, 8), np.uint8)
    assert checker.read_direct(1, 128, 256, target)  # shard 1, its second chunk
    np.testing.assert_array_equal(target, codes[1024 + 128 : 1024 + 256])
    checker._direct = False  # the zarr path gives the same
    for lo, hi in ranges:
        np.testing.assert_array_equal(store.read_codes(lo, hi), codes[lo:hi])


def test_damaged_ids_shard_is_named(small_store):
    shard = small_store / "ids" / "c" / "0"
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(CorruptStoreError, match=str(shard)):
        CodeStore.open(small_store).read_ids()


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda m: m.update(nbits=32), IncompatibleStoreError, "bytes per code"),
        (lambda m: m.update(bit_order="big"), IncompatibleStoreError, "bit_order 'big'"),
        (lambda m: m.update(format_version=FORMAT_VERSION + 1), IncompatibleStoreError, "newer hashsearch"),
        (lambda m: m.update(format_version=0), IncompatibleStoreError, "format_version 0"),
        (lambda m: m.update(format="something.else"), IncompatibleStoreError, "not a hashsearch code store"),
        (lambda m: m.update(nrows=5000), CorruptStoreError, "cut short"),
        (lambda m: m.update(nrows="many"), CorruptStoreError, "invalid hashsearch attributes"),
    ],
)
def test_foreign_metadata_is_refused(small_store, edit, error, match):
    meta_file = small_store / "zarr.json"
    doc = json.loads(meta_file.read_text())
    edit(doc["attributes"]["hashsearch"])
    meta_file.write_text(json.dumps(doc))
    with pytest.raises(error, match=match) as info:
        CodeStore.open(small_store)
    assert str(small_store) in str(info.value)


def test_foreign_and_broken_stores(tmp_path, small_store):
    with pytest.raises(IncompatibleStoreError, match="expected 32-bit"):
        CodeStore.open(small_store, nbits=32)
    (small_store / "zarr.json").write_text("{not json")
    with pytest.raises(CorruptStoreError, match=str(small_store / "zarr.json")):
        CodeStore.open(small_store)
    plain = tmp_path / "plain.zarr"
    zarr.create_group(str(plain), zarr_format=3)
    with pytest.raises(IncompatibleStoreError, match="not a hashsearch code store"):
        CodeStore.open(plain)
    v2 = tmp_path / "v2.zarr"
    zarr.create_group(str(v2), zarr_format=2)
    with pytest.raises(StoreError, match=str(v2)):
        CodeStore.open(v2)
    with pytest.raises(StoreError, match="does not exist"):
        CodeStore.open(tmp_path / "missing.zarr")
    broken = tmp_path / "broken.zarr"
    make_store(broken, random_codes(10, 64, seed=1))
    (broken / "codes" / "zarr.json").unlink()
    with pytest.raises(CorruptStoreError, match="codes"):
        CodeStore.open(broken)
    with pytest.raises(ValueError, match="mode"):
        CodeStore.open(small_store, "w")


# -- out-of-core search -------------------------------------------------------------------
@pytest.mark.parametrize("extra_memory", [None, 20_000, 2_500])  # one block; blocks of 3 shards; of 1 chunk
def test_search_equals_in_memory_index_on_ties(tmp_path, extra_memory):
    path = tmp_path / "codes.zarr"
    codes = tied_codes(5000, 32, 30, seed=10)  # thousands of exact ties
    ids = np.random.default_rng(1).permutation(50_000)[:5000]
    with CodeStore.create(path, 32, shard_rows=512, chunk_rows=128) as store:
        store.append(codes, ids=ids)
    store = CodeStore.open(path)
    index = BinaryIndex.load(path, backend="numpy")
    queries = tied_codes(25, 32, 30, seed=11)
    for k in (1, 10, 300, 6000):  # k > ntotal pads
        # the planner keeps 10 % of the limit in reserve
        limit = None if extra_memory is None else int((extra_memory + result_bytes(25, k) + queries.nbytes) / 0.9)
        got = store.search(queries, k, memory_limit=limit)
        want = index.search(queries, k)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert (got[1][:, 5000:] == -1).all() and (got[0][:, 5000:] == np.iinfo(np.int32).max).all()


def test_search_rejects_bad_arguments(small_store):
    store = CodeStore.open(small_store)
    with pytest.raises(TypeError):
        store.search(np.zeros((2, 8), np.float32), 3)
    with pytest.raises(ValueError, match="bytes per code"):
        store.search(np.zeros((2, 4), np.uint8), 3)
    with pytest.raises(ValueError, match="k must be"):
        store.search(np.zeros((2, 8), np.uint8), 0)
    with pytest.raises(ValueError, match="too small"):
        store.search(np.zeros((2, 8), np.uint8), 3, memory_limit=100)
    with pytest.raises(ValueError, match="memory size"):
        store.search(np.zeros((2, 8), np.uint8), 3, memory_limit="lots")


def test_empty_store_search(tmp_path):
    with CodeStore.create(tmp_path / "e.zarr", 64) as store:
        d, i = store.search(np.zeros((2, 8), np.uint8), 3)
    assert (i == -1).all() and d.shape == (2, 3)


MEMORY_PROBE = textwrap.dedent(
    """
    import sys, threading, tracemalloc
    import numpy as np, psutil
    sys.path.insert(0, {src!r})
    from hashsearch import CodeStore
    store = CodeStore.open(sys.argv[1])
    queries = np.load(sys.argv[2])
    limit = int(sys.argv[3])
    store.search(queries[:1], 1, memory_limit=1 << 20, backend="native", num_threads=1)  # imports, zarr's loop
    proc = psutil.Process()
    base = proc.memory_info().rss
    high = [base]
    running = True
    def sample():
        while running:
            high[0] = max(high[0], proc.memory_info().rss)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    D, I = store.search(queries, 10, memory_limit=limit, backend="native", num_threads=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    running = False
    sampler.join()
    np.save(sys.argv[4], D); np.save(sys.argv[5], I)
    print(peak, high[0] - base)
    """
)


def test_search_stays_within_memory_limit(tmp_path):
    require_native()
    path = tmp_path / "big.zarr"
    n, limit = 6_000_000, 8 << 20  # 48 MB of codes (plus 48 MB of ids), searched in 8 MB
    with CodeStore.create(path, 64, shard_rows=1 << 16, chunk_rows=1 << 14) as store:
        for lo in range(0, n, 1 << 20):
            store.append(random_codes(min(1 << 20, n - lo), 64, seed=lo))
    queries = random_codes(16, 64, seed=99)
    np.save(tmp_path / "q.npy", queries)
    script = tmp_path / "probe.py"
    script.write_text(MEMORY_PROBE.format(src=SRC))
    args = [str(path), str(tmp_path / "q.npy"), str(limit), str(tmp_path / "d.npy"), str(tmp_path / "i.npy")]
    out = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    peak, grown = map(int, out.stdout.split())
    print(f"traced peak {peak}, RSS growth {grown}")
    assert peak <= limit, f"traced peak {peak} > limit {limit}"
    assert grown < 24 << 20, f"RSS grew by {grown} bytes for a 48 MB store"
    index = BinaryIndex.load(path)
    d, i = index.search(queries, 10)
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), d)
    np.testing.assert_array_equal(np.load(tmp_path / "i.npy"), i)


def test_url_store(tmp_path):
    url = f"memory://{tmp_path.name}/codes.zarr"
    codes = random_codes(300, 64, seed=12)
    with CodeStore.create(url, 64, shard_rows=128, chunk_rows=64) as store:
        store.append(codes)
    store = CodeStore.open(url)
    np.testing.assert_array_equal(store.read_codes(), codes)
    assert store.location.local_root is None and store.verify().ok
    file_url = CodeStore.create("file://" + str(tmp_path / "f.zarr"), 64)
    assert file_url.location.local_root == tmp_path / "f.zarr"
    file_url.close()


@pytest.mark.parametrize(("nbits", "shard_rows", "chunk_rows"), [(8, 100, 25), (72, 96, 32), (24, 1000, 1000)])
def test_search_other_code_lengths_and_layouts(tmp_path, nbits, shard_rows, chunk_rows):
    codes = tied_codes(2500, nbits, 12, seed=nbits)
    with CodeStore.create(tmp_path / "s.zarr", nbits, shard_rows=shard_rows, chunk_rows=chunk_rows) as store:
        store.append(codes[:1234])
        store.append(codes[1234:])
    store = CodeStore.open(tmp_path / "s.zarr")
    index = BinaryIndex(nbits, backend="numpy")
    index.add(codes)
    queries = tied_codes(7, nbits, 12, seed=nbits + 1)
    for limit in (None, int((4 * chunk_rows * nbits // 8 + result_bytes(7, 50) + queries.nbytes) / 0.9) + 1):
        got = store.search(queries, 50, memory_limit=limit)
        want = index.search(queries, 50)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
