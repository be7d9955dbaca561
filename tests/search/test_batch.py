"""Batch querying: results written block by block to Zarr, resumable, identical to one search."""

from __future__ import annotations

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
from dask_cluster import shared_client

from hashsearch import BinaryIndex, CodeStore
from hashsearch.backends.numpy_backend import NumpyBackend
from hashsearch.errors import IncompatibleStoreError, StoreError
from hashsearch.search.batch import batch_search, load_results
from hashsearch.synthetic import random_codes, tied_codes

SRC = str(Path(__file__).resolve().parents[2])  # the repository root


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    path = tmp_path_factory.mktemp("batch") / "db.zarr"
    with CodeStore.create(path, 64, shard_rows=1024, chunk_rows=256) as store:
        store.append(tied_codes(8000, 64, 60, seed=30), ids=np.arange(8000) * 5 + 7)
    return path


@pytest.fixture(scope="module")
def expected(database):
    queries = tied_codes(2100, 64, 60, seed=31)
    index = BinaryIndex.load(database, backend="numpy")
    return queries, index.search(queries, 10)


def assert_results(output, want) -> None:
    d, i = load_results(output)
    np.testing.assert_array_equal(d, want[0])
    np.testing.assert_array_equal(i, want[1])


def test_batch_in_installments_equals_one_search(tmp_path, database, expected):
    queries, want = expected
    out = tmp_path / "results.zarr"
    first = batch_search(database, queries, 10, out, query_block=300, max_blocks=3, progress=False)
    assert (first.blocks, first.computed, first.skipped, first.complete) == (7, 3, 0, False)
    with pytest.raises(StoreError, match="4 of 7 query blocks are not done"):
        load_results(out)
    done = zarr.open_group(str(out), mode="r")["done"][:]
    np.testing.assert_array_equal(done, [1, 1, 1, 0, 0, 0, 0])
    rest = batch_search(database, queries, 10, out, query_block=300, progress=False)
    assert (rest.computed, rest.skipped, rest.complete) == (4, 3, True)
    assert rest.comparisons == (2100 - 900) * 8000 and rest.comparisons_per_s > 0
    assert_results(out, want)
    again = batch_search(database, queries, 10, out, query_block=300, progress=False)
    assert again.computed == 0 and again.skipped == 7


def test_query_store_and_in_memory_database(tmp_path, database, expected):
    queries, want = expected
    qpath = tmp_path / "queries.zarr"
    with CodeStore.create(qpath, 64, shard_rows=512, chunk_rows=128) as qstore:
        qstore.append(queries)
    batch_search(str(database), str(qpath), 10, tmp_path / "a.zarr", progress=False)
    assert_results(tmp_path / "a.zarr", want)
    np.save(tmp_path / "q.npy", queries)
    batch_search(database, tmp_path / "q.npy", 10, tmp_path / "c.zarr", progress=False)
    assert_results(tmp_path / "c.zarr", want)
    index = BinaryIndex.load(database)
    result = batch_search(index, queries, 10, tmp_path / "b.zarr", memory_limit="1MB", progress=False)
    assert result.blocks > 1  # the memory limit split the queries
    assert_results(tmp_path / "b.zarr", want)


class CountingBackend(NumpyBackend):
    """The NumPy kernels, counting their k-NN calls (to see which backend ran)."""

    def __init__(self, num_threads=None):
        super().__init__(num_threads)
        self.calls = 0

    def knn(self, codes, queries, k):
        self.calls += 1
        return super().knn(codes, queries, k)


def test_in_memory_database_uses_the_backend_arguments(tmp_path, database, expected):
    queries, want = expected
    own = CountingBackend(num_threads=2)
    index = BinaryIndex.load(database, backend=own)
    given = CountingBackend(num_threads=1)
    batch_search(index, queries, 10, tmp_path / "a.zarr", query_block=700, backend=given, progress=False)
    assert_results(tmp_path / "a.zarr", want)
    assert given.calls == 3 and own.calls == 0  # the backend given searched, not the index's
    # "auto" with other threads: a backend of the index's kind, the index itself untouched
    batch_search(index, queries, 10, tmp_path / "b.zarr", query_block=700, num_threads=1, progress=False)
    assert_results(tmp_path / "b.zarr", want)
    assert own.calls == 0 and index.num_threads == 2 and index.backend_impl is own
    batch_search(index, queries, 10, tmp_path / "c.zarr", query_block=700, progress=False)  # "auto": the index's own
    assert own.calls == 3
    with pytest.raises(ValueError, match="num_threads=1, but num_threads=2"):
        batch_search(index, queries, 10, tmp_path / "d.zarr", backend=given, num_threads=2, progress=False)
    with pytest.raises(ValueError, match="unknown backend"):
        batch_search(index, queries, 10, tmp_path / "e.zarr", backend="no-such-backend", progress=False)
    assert given.num_threads == 1 and not (tmp_path / "d.zarr").exists() and not (tmp_path / "e.zarr").exists()


def test_batch_on_dask_equals_local(request, tmp_path, database, expected):
    queries, want = expected
    client = shared_client(request)
    result = batch_search(database, queries, 10, tmp_path / "r.zarr", query_block=500, client=client, progress=False)
    assert result.complete and result.computed == 5
    assert_results(tmp_path / "r.zarr", want)
    with pytest.raises(ValueError, match="unknown backend"):  # refused before any task runs or anything is written
        batch_search(database, queries, 10, tmp_path / "x.zarr", client=client, backend="no-such", progress=False)
    assert not (tmp_path / "x.zarr").exists()


def test_other_inputs_are_not_mixed_in(tmp_path, database, expected):
    queries, _ = expected
    out = tmp_path / "r.zarr"
    batch_search(database, queries[:500], 10, out, query_block=200, max_blocks=1, progress=False)
    with pytest.raises(IncompatibleStoreError, match="queries differ"):
        batch_search(database, queries[500:1000], 10, out, query_block=200, progress=False)
    with pytest.raises(IncompatibleStoreError, match="k"):
        batch_search(database, queries[:500], 5, out, query_block=200, progress=False)
    with pytest.raises(StoreError, match="already holds results"):
        batch_search(database, queries[:500], 10, out, query_block=200, resume=False, progress=False)
    done = batch_search(database, queries[:50], 3, out, overwrite=True, progress=False)
    assert done.complete and load_results(out)[0].shape == (50, 3)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    with pytest.raises(StoreError, match="not a Zarr group"):
        batch_search(database, queries[:5], 3, photos, progress=False)
    with pytest.raises(ValueError, match="query_block"):
        batch_search(database, queries[:5], 3, tmp_path / "q.zarr", query_block=0, progress=False)
    with pytest.raises(ValueError, match="bytes per code"):
        batch_search(database, random_codes(5, 32), 3, tmp_path / "w.zarr", progress=False)


BATCH_RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, {src!r})
    from hashsearch.search.batch import batch_search
    queries = np.load(sys.argv[2])
    batch_search(sys.argv[1], queries, 10, sys.argv[3], query_block=500, num_threads=1, progress=False)
    """
)


def test_resume_after_kill_9(tmp_path):
    db = tmp_path / "db.zarr"
    with CodeStore.create(db, 64, shard_rows=1 << 14, chunk_rows=1 << 12) as store:
        store.append(random_codes(200_000, 64, seed=32))
    queries = random_codes(20_000, 64, seed=33)
    np.save(tmp_path / "q.npy", queries)
    out = tmp_path / "r.zarr"
    script = tmp_path / "run.py"
    script.write_text(BATCH_RUN.format(src=SRC))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(tmp_path / "q.npy"), str(out)],
        stderr=subprocess.PIPE,
        env={**os.environ, "HASHSEARCH_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            done = int(zarr.open_group(str(out), mode="r")["done"][:].sum())
        except Exception:  # not created yet
            done = 0
        if done >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    assert 2 <= done < 40, f"{done} of 40 blocks done when killed"
    result = batch_search(db, queries, 10, out, query_block=500, progress=False)
    assert result.skipped >= 2 and result.complete
    index = BinaryIndex.load(db)
    assert_results(out, index.search(queries, 10))
