"""Table IX of the SIDHCNN paper, row by row, at l = 32 on DSRSID-shaped inputs.

Table IX (Li et al., TGRS 2018) times the paper's MATLAB implementation on a GTX 745
GPU. Each of its rows is measured here in one pytest run, on inputs generated on the
fly in DSRSID's shapes (PAN 1x256x256, MS 4x64x64, 75,000 archive images, 32-bit
codes), with the thread count pinned for every library (``HASHSEARCH_BENCH_THREADS``,
default 2: ``torch.set_num_threads``, the backends' ``num_threads``,
``faiss.omp_set_num_threads``) and printed with the table at the end of the run:

======================  ==========================================================
row                     what is timed
======================  ==========================================================
``train``               one Algorithm 1 step of both networks (PAN then MS, batch
                        128, loss against stored F^P, F^M of V = 75,000 rows):
                        pairs/s, and the paper's schedule (30 x 75,000 pairs)
                        projected from it
``hash-query-pan/ms``   hashing one query image (``Encoder.encode``)
``hash-archive-pan/ms`` hashing the 75,000-image archive: a subset is timed and
                        images/s projected to the whole archive (PAN->MS searches
                        the MS archive: the paper's 29 s; MS->PAN the PAN one: 110 s)
``distances``           Hamming distances from one query to 75,000 codes
``rank-topk``           ranking them: the 10 nearest (distances included)
``rank-full``           ranking them: the full sort (k = 75,000; distances included,
                        the paper's row sorts precomputed distances)
======================  ==========================================================

The search rows run side by side on our native kernel, Numba, the NumPy reference and
FAISS ``IndexBinaryFlat`` (``faiss.hammings`` for the distances), on the same codes.
Each benchmark's ``extra_info`` holds ``table9_row``, ``impl``, ``threads``,
``paper_seconds`` (the paper's figure, labelled as the paper's), ``scale`` (the factor
from the timed unit to the row's quantity: steps per schedule, archive / subset) and,
where they apply, ``pairs_per_s`` / ``images_per_s``; ``benchmarks/report.py`` (and
``make_docs.py``) build the comparison table from them. Run::

    pytest benchmarks/test_table9.py                               # about 2 minutes on 2 cores
    pytest benchmarks/test_table9.py --benchmark-json=table9.json  # feeds benchmarks/make_docs.py

The training and hashing rows need torch (the ``train`` extra); they skip with the
reason without it, and the search rows still run.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import hashsearch
from hashsearch.backends import backend_class, make_backend
from hashsearch.synthetic import random_codes

faiss = pytest.importorskip("faiss")

#: Threads of every library in this run.
THREADS = int(os.environ.get("HASHSEARCH_BENCH_THREADS", "2"))
V = 75_000  # DSRSID's training split = the archive searched
BITS = 32
BATCH = 128
EPOCHS = 30
PAN_SHAPE = (1, 256, 256)
MS_SHAPE = (4, 64, 64)
#: Archive images timed per source (the rest is projected from images/s).
ARCHIVE_SUBSET = {"pan": 96, "ms": 768}
TOPK = 10

#: Table IX of the paper (seconds; MATLAB on an NVIDIA GTX 745), not measured here.
PAPER_SECONDS = {
    "train": 6.5 * 3600,
    "hash-query-pan": 1.5e-3,
    "hash-query-ms": 3.9e-4,
    "hash-archive-ms": 2.9e1,  # PAN->MUL: the MS archive is hashed
    "hash-archive-pan": 1.1e2,  # MUL->PAN: the PAN archive
    "distances": 3.1e-4,
    "rank-topk": 4.2e-3,  # the paper has one sorting row: its figure serves both
    "rank-full": 4.2e-3,
}
#: Every backend this build can run (``hashsearch.available_backends()``, cuda included
#: where present) plus FAISS; the ids stay ``...[native]``, ``...[numba]``, ``...[faiss]``.
#: The NumPy reference stays in: the Table IX cases are one archive's size.
SEARCH_IMPLS = [*hashsearch.available_backends(), "faiss"]


def _record(benchmark, row: str, impl: str, scale: float = 1.0, **extra) -> None:
    benchmark.group = f"table9 {row}"
    benchmark.extra_info.update(
        table9_row=row,
        impl=impl,
        threads=THREADS,
        paper_seconds=PAPER_SECONDS[row],
        paper_platform="MATLAB, NVIDIA GTX 745 (the paper's Table IX)",
        scale=scale,
        bits=BITS,
        **extra,
    )


def _seconds(benchmark) -> float | None:
    """Fastest round, or None under --benchmark-disable (no statistics are kept)."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.min


# -- training and hashing (torch) -------------------------------------------------------
@pytest.fixture(scope="module")
def torch_mod():
    torch = pytest.importorskip("torch", reason="the training rows need torch (pip install hashsearch[train])")
    torch.set_num_threads(THREADS)
    return torch


@pytest.fixture(scope="module")
def trainer(torch_mod):
    torch = torch_mod
    from hashsearch.training import TrainConfig, Trainer

    class _Archive(torch.utils.data.Dataset):
        """V DSRSID-shaped pairs cycling over a few random images (a step reads its batch only)."""

        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.pan = torch.rand(4, *PAN_SHAPE, generator=g)
            self.ms = torch.rand(4, *MS_SHAPE, generator=g)
            self.labels = np.arange(V) % 8

        def __len__(self) -> int:
            return V

        def __getitem__(self, i: int) -> dict:
            return {"pan": self.pan[i % 4], "ms": self.ms[i % 4], "label": int(self.labels[i]), "index": i}

    tr = Trainer(TrainConfig(bits=BITS, batch_size=BATCH, threads=THREADS), _Archive(), progress=False)
    g = torch.Generator().manual_seed(1)
    for key in ("pan", "ms"):
        tr.features[key].copy_(torch.randn(V, BITS, generator=g))
    tr.pan_net.train()
    tr.ms_net.train()
    return tr


def test_train(benchmark, torch_mod, trainer):
    """One Algorithm 1 step of both networks on a batch of 128 pairs."""
    from hashsearch.training.trainer import sign_codes

    torch = torch_mod
    torch.set_num_threads(THREADS)
    g = torch.Generator().manual_seed(2)
    positions = torch.randperm(V, generator=g)[:BATCH]
    pan = torch.rand(BATCH, *PAN_SHAPE, generator=g)
    ms = torch.rand(BATCH, *MS_SHAPE, generator=g)
    codes = sign_codes(trainer.features["pan"] + trainer.features["ms"])

    def step():
        trainer.step("pan", positions, pan, codes)
        trainer.step("ms", positions, ms, codes)

    steps = EPOCHS * V / BATCH
    _record(benchmark, "train", "torch", scale=steps, unit="step of 128 pairs", schedule_pairs=EPOCHS * V)
    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    seconds = _seconds(benchmark)
    if seconds is not None:
        benchmark.extra_info.update(
            pairs_per_s=round(BATCH / seconds, 1), projected_hours=round(steps * seconds / 3600, 2)
        )


@pytest.fixture(scope="module")
def encoder(torch_mod):
    from hashsearch.training import Encoder, build_networks

    torch_mod.manual_seed(0)
    pan, ms = build_networks(BITS)
    return Encoder.from_networks(pan, ms)


@pytest.mark.parametrize("source", ["pan", "ms"])
def test_hash_query(benchmark, torch_mod, encoder, source):
    """Hashing one query image (network forward, sign, pack)."""
    torch_mod.set_num_threads(THREADS)
    shape = PAN_SHAPE if source == "pan" else MS_SHAPE
    image = torch_mod.rand((1, *shape), generator=torch_mod.Generator().manual_seed(3))
    _record(benchmark, f"hash-query-{source}", "torch", unit="one image")
    codes = benchmark.pedantic(lambda: encoder.encode(image, source), rounds=20, iterations=1, warmup_rounds=2)
    assert np.asarray(codes).shape == (1, BITS // 8)


@pytest.mark.parametrize("source", ["pan", "ms"])
def test_hash_archive(benchmark, torch_mod, encoder, source):
    """Hashing the archive: a subset timed, images/s projected to 75,000 images."""
    torch_mod.set_num_threads(THREADS)
    n = ARCHIVE_SUBSET[source]
    shape = PAN_SHAPE if source == "pan" else MS_SHAPE
    images = torch_mod.rand((n, *shape), generator=torch_mod.Generator().manual_seed(4))
    _record(benchmark, f"hash-archive-{source}", "torch", scale=V / n, unit=f"{n} images", subset=n, archive=V)
    codes = benchmark.pedantic(
        lambda: encoder.encode(images, source, batch_size=256), rounds=3, iterations=1, warmup_rounds=1
    )
    assert np.asarray(codes).shape == (n, BITS // 8)
    seconds = _seconds(benchmark)
    if seconds is not None:
        benchmark.extra_info.update(images_per_s=round(n / seconds, 1), projected_seconds=round(V / n * seconds, 1))


# -- distances and ranking (the engine beside FAISS) ------------------------------------
@pytest.fixture(scope="module")
def archive_codes() -> np.ndarray:
    return random_codes(V, BITS, seed=20180601)


@pytest.fixture(scope="module")
def query_code() -> np.ndarray:
    return random_codes(1, BITS, seed=9)


@pytest.fixture(scope="module")
def faiss_index(archive_codes):
    index = faiss.IndexBinaryFlat(BITS)
    index.add(archive_codes)
    return index


def _backend(impl: str):
    cls = backend_class(impl)
    reason = cls.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return make_backend(impl, num_threads=THREADS)


@pytest.mark.parametrize("impl", SEARCH_IMPLS)
def test_distances(benchmark, impl, archive_codes, query_code):
    """Hamming distances from one query to the 75,000 archive codes."""
    _record(benchmark, "distances", impl, unit="one query x 75,000 codes")
    if impl == "faiss":
        faiss.omp_set_num_threads(THREADS)
        out = np.empty((1, V), dtype=np.int32)
        qp, cp, op = faiss.swig_ptr(query_code), faiss.swig_ptr(archive_codes), faiss.swig_ptr(out)

        def run():
            faiss.hammings(qp, cp, 1, V, BITS // 8, op)
            return out
    else:
        engine = _backend(impl)

        def run():
            return engine.distances(query_code, archive_codes)

    got = benchmark.pedantic(run, rounds=200, iterations=1, warmup_rounds=3)
    expected = np.unpackbits(archive_codes ^ query_code, axis=1).sum(axis=1)
    np.testing.assert_array_equal(np.asarray(got)[0], expected)


@pytest.mark.parametrize("impl", SEARCH_IMPLS)
@pytest.mark.parametrize("row", ["rank-topk", "rank-full"])
def test_rank(benchmark, impl, row, archive_codes, query_code, faiss_index):
    """Ranking the archive for one query: the 10 nearest, or the full sort."""
    k = TOPK if row == "rank-topk" else V
    _record(benchmark, row, impl, k=k, unit=f"one query, k={k}")
    if impl == "faiss":

        def run():
            faiss.omp_set_num_threads(THREADS)
            return faiss_index.search(query_code, k)
    else:
        engine = _backend(impl)

        def run():
            return engine.knn(archive_codes, query_code, k)

    distances, _ = benchmark.pedantic(run, rounds=50 if k == V else 200, iterations=1, warmup_rounds=2)
    expected = np.sort(np.unpackbits(archive_codes ^ query_code, axis=1).sum(axis=1))[:k]
    np.testing.assert_array_equal(np.asarray(distances)[0], expected)
