"""hashsearch.Retriever: query by image over real CodeStores on disk, with a tiny trained fake-data model.

The expected results are computed independently: codes from the Encoder of the
checkpoint, the top-k from the brute-force oracle over the codes read back from
the store, labels from the labels written.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
from search_helpers import oracle_knn
from tiny_model import BITS, MS_SIZE, PAN_SIZE, tiny_run, write_store

torch = pytest.importorskip("torch")

from hashsearch import Retriever  # noqa: E402
from hashsearch.retrieval import RetrievalResult, read_image, tile_image  # noqa: E402
from hashsearch.store import CodeStore  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def encoder(tiny):
    from hashsearch.training import Encoder

    return Encoder.load(tiny.run)


@pytest.fixture(scope="module")
def codes(tiny, encoder):
    return {"pan": encoder.encode(tiny.pan, "pan"), "ms": encoder.encode(tiny.ms, "ms")}


@pytest.fixture
def ms_store(tmp_path, tiny, codes):
    ids = np.arange(100, 100 + len(tiny.labels), dtype=np.int64)[::-1].copy()  # not positions
    info = {"source": "ms", "dataset": {"path": None, "ids": "sample_index", "classes": ["a", "b", "c", "d"]}}
    return write_store(tmp_path / "ms.zarr", codes["ms"], source="ms", labels=tiny.labels, ids=ids, encoder=info)


def test_pan_query_finds_the_oracle_ms_results_with_labels(tiny, encoder, codes, ms_store):
    queries = tiny.pan[:7]
    with Retriever(tiny.run, ms_store) as retriever:
        result = retriever.search(queries, "pan", k=9)
    stored = CodeStore.open(ms_store)
    db, db_ids, db_labels = stored.read_codes(), stored.read_ids(), stored.read_labels()
    want_d, want_pos = oracle_knn(db, encoder.encode(queries, "pan"), 9)
    assert isinstance(result, RetrievalResult)
    assert (result.source, result.target, result.k, len(result)) == ("pan", "ms", 9, 7)
    np.testing.assert_array_equal(result.distances, want_d)
    np.testing.assert_array_equal(result.ids, db_ids[want_pos])
    np.testing.assert_array_equal(result.labels, db_labels[want_pos])
    np.testing.assert_array_equal(result.indices, result.ids)  # the store says its ids are sample indices
    hit = result.hits(0)[0]
    assert hit == {"rank": 1, "id": int(db_ids[want_pos[0, 0]]), "distance": int(want_d[0, 0]),
                   "label": int(db_labels[want_pos[0, 0]]), "class": "abcd"[db_labels[want_pos[0, 0]]],
                   "index": int(db_ids[want_pos[0, 0]])}


def test_model_as_encoder_or_path_gives_the_same_result(tiny, encoder, ms_store):
    with Retriever(encoder, ms_store) as a, Retriever(tiny.run / "last.pt", ms_store) as b:
        ra, rb = a.search(tiny.pan[:4], "pan", 5), b.search(tiny.pan[:4], "pan", 5)
    np.testing.assert_array_equal(ra.ids, rb.ids)
    np.testing.assert_array_equal(ra.distances, rb.distances)


def test_one_image_and_tensor_inputs(tiny, encoder, ms_store):
    with Retriever(encoder, ms_store) as retriever:
        one = retriever.search(tiny.pan[3], "pan", 4)
        batch = retriever.search(torch.from_numpy(tiny.pan[3:4]), "pan", 4)
    assert one.ids.shape == (1, 4)
    np.testing.assert_array_equal(one.ids, batch.ids)


def test_mixed_store_is_searched_only_among_the_other_source(tmp_path, tiny, encoder, codes):
    n = len(tiny.labels)
    both = np.concatenate([codes["pan"], codes["ms"]])
    labels = np.concatenate([tiny.labels, tiny.labels])
    path = write_store(tmp_path / "both.zarr", both, source=["pan"] * n + ["ms"] * n, labels=labels)
    with Retriever(encoder, path) as retriever:
        p2m = retriever.search(tiny.pan[:5], "pan", 6)
        m2p = retriever.search(tiny.ms[:5], "ms", 6)
    for result, rows, q in ((p2m, np.arange(n, 2 * n), codes["pan"][:5]), (m2p, np.arange(n), codes["ms"][:5])):
        want_d, want_pos = oracle_knn(both[rows], q, 6)
        np.testing.assert_array_equal(result.distances, want_d)
        np.testing.assert_array_equal(result.ids, rows[want_pos])  # ids are positions in this store
        np.testing.assert_array_equal(result.labels, labels[rows[want_pos]])
    assert p2m.indices is None  # the store does not say its ids are sample indices


def test_one_store_per_source_and_k_beyond_the_archive(tmp_path, tiny, encoder, codes):
    pan = write_store(tmp_path / "pan.zarr", codes["pan"][:3], source="pan")
    ms = write_store(tmp_path / "ms.zarr", codes["ms"][:3], source="ms")
    with Retriever(encoder, {"pan": pan, "ms": ms}) as retriever:
        result = retriever.search(tiny.ms[:2], "ms", 5)
    want_d, want_pos = oracle_knn(codes["pan"][:3], codes["ms"][:2], 5)
    np.testing.assert_array_equal(result.distances, want_d)
    np.testing.assert_array_equal(result.ids, want_pos)
    assert (result.ids[:, 3:] == -1).all() and result.labels is None
    assert len(result.hits(0)) == 3


def test_pixel_stats_undo_the_dataset_normalisation(tmp_path, tiny, encoder, codes, ms_store):
    # Pixels y = 4 x + 100 with x on a 1/256 grid: (y - 100) / 4 gives x back exactly in float32.
    x = np.round(tiny.pan[:6] * 256) / 256
    y = (x * 4 + 100).astype(np.float32)
    stats = {"pan": {"mean": [100.0], "std": [4.0]}, "ms": {"mean": [0.0] * 4, "std": [1.0] * 4}}
    with Retriever(encoder, ms_store, pixel_stats=stats) as retriever:
        np.testing.assert_array_equal(retriever.encode(y, "pan"), encoder.encode(x, "pan"))
    recorded = write_store(tmp_path / "ms-stats.zarr", codes["ms"], source="ms", encoder={"pixel_stats": stats})
    with Retriever(encoder, recorded) as retriever:  # taken from the store's provenance
        np.testing.assert_array_equal(retriever.encode(y, "pan"), encoder.encode(x, "pan"))


def test_images_in_other_units_are_warned_about(tiny, encoder, ms_store, caplog):
    with Retriever(encoder, ms_store) as retriever, caplog.at_level(logging.WARNING, logger="hashsearch"):
        retriever.search(tiny.pan[:2] * 1000 + 5000, "pan", 3)
    assert "standard deviations" in caplog.text
    caplog.clear()
    with Retriever(encoder, ms_store) as retriever, caplog.at_level(logging.WARNING, logger="hashsearch"):
        retriever.search(tiny.pan[:2], "pan", 3)
    assert "standard deviations" not in caplog.text


def test_bad_input_raises_and_leaves_the_store_intact(tmp_path, tiny, encoder, codes, ms_store):
    before = CodeStore.open(ms_store).read_codes()
    with Retriever(encoder, ms_store) as retriever:
        with pytest.raises(ValueError, match=r"pan images for this model have shape \(n, 1, 32, 32\)"):
            retriever.search(tiny.pan[:2, :, :16, :16], "pan", 3)
        with pytest.raises(ValueError, match="shape"):
            retriever.search(tiny.ms[:2], "pan", 3)
        with pytest.raises(ValueError, match="k"):
            retriever.search(tiny.pan[:2], "pan", 0)
        with pytest.raises(TypeError, match="k"):
            retriever.search(tiny.pan[:2], "pan", 2.5)
        bad = tiny.pan[:2].copy()
        bad[0, 0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            retriever.search(bad, "pan", 3)
        with pytest.raises(TypeError, match="real-valued"):
            retriever.search(np.full((1, 1, PAN_SIZE, PAN_SIZE), "x"), "pan", 3)
        with pytest.raises(ValueError, match="source must be 'pan' or 'ms'"):
            retriever.search(tiny.pan[:2], "sar", 3)
        with pytest.raises(ValueError, match="ms queries search pan codes, but the store"):
            retriever.search(tiny.ms[:2], "ms", 3)
    after = CodeStore.open(ms_store)
    np.testing.assert_array_equal(after.read_codes(), before)
    assert after.verify().ok
    wide = write_store(tmp_path / "wide.zarr", np.zeros((2, 4), np.uint8), source="ms")
    with pytest.raises(ValueError, match=f"32-bit codes, the model makes {BITS}-bit"):
        Retriever(encoder, wide)
    with pytest.raises(TypeError, match="store must be"):
        Retriever(encoder, object())
    with pytest.raises(TypeError, match="model must be"):
        Retriever(object(), ms_store)
    with pytest.raises(ValueError, match="holds ms codes"):
        Retriever(encoder, {"pan": ms_store})


def test_tile_image_cuts_whole_patches_row_major():
    scene = np.arange(2 * 70 * 100, dtype=np.uint16).reshape(2, 70, 100)
    tiles, origins = tile_image(scene, 32)
    assert tiles.shape == (6, 2, 32, 32) and tiles.dtype == np.uint16
    np.testing.assert_array_equal(origins, [[0, 0], [0, 32], [0, 64], [32, 0], [32, 32], [32, 64]])
    for tile, (r, c) in zip(tiles, origins, strict=True):
        np.testing.assert_array_equal(tile, scene[:, r : r + 32, c : c + 32])
    _, strided = tile_image(scene, 32, stride=16)
    assert strided.shape == (3 * 5, 2)
    with pytest.raises(ValueError, match="smaller than the model's 80x80 patch"):
        tile_image(scene, 80)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        tile_image(scene[0], 8)


def test_read_image_npy_and_geotiff(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    img = np.random.default_rng(0).integers(0, 4000, (4, MS_SIZE * 3, MS_SIZE * 2), dtype=np.uint16)
    np.save(tmp_path / "q.npy", img[0])
    arr, meta = read_image(tmp_path / "q.npy")
    np.testing.assert_array_equal(arr, img[:1])  # (H, W) reads as one band
    transform = from_origin(500000.0, 4000000.0, 40.0, 40.0)
    with rasterio.open(tmp_path / "q.tif", "w", driver="GTiff", width=img.shape[2], height=img.shape[1], count=4,
                       dtype="uint16", crs="EPSG:32633", transform=transform) as ds:
        ds.write(img)
    arr, meta = read_image(tmp_path / "q.tif")
    np.testing.assert_array_equal(arr, img)
    assert meta["crs"] == "EPSG:32633" and meta["transform"][0] == 500000.0
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.npy")
    (tmp_path / "q.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.npy arrays or GeoTIFFs"):
        read_image(tmp_path / "q.png")
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(ValueError, match="expected an image"):
        read_image(tmp_path / "bad.npy")


def test_import_hashsearch_does_not_import_torch_until_used():
    code = ("import sys, hashsearch; from hashsearch import Retriever, RetrievalResult; "
            "assert Retriever.__module__ == 'hashsearch.retrieval'; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_growing_store_refreshes_the_cached_labels_and_ids(tmp_path):
    from hashsearch.retrieval import _Target
    from hashsearch.synthetic import random_codes

    codes = random_codes(30, 32, seed=3)
    with CodeStore.create(tmp_path / "g.zarr", 32, with_labels=True) as store:
        store.append(codes[:10], ids=np.arange(10) * 5, labels=np.arange(10))
        store.flush()
        target = _Target(store, None)
        np.testing.assert_array_equal(target.positions_of(np.array([45, -1, 0])), [9, -1, 0])
        np.testing.assert_array_equal(target.labels_at(np.array([9])), [9])
        store.append(codes[10:], ids=np.arange(10, 30) * 5, labels=np.arange(10, 30) + 100)
        store.flush()
        # rows 10.. were not in the first cache: read again, not an IndexError or a wrong row
        np.testing.assert_array_equal(target.positions_of(np.array([145, 50])), [29, 10])
        np.testing.assert_array_equal(target.labels_at(np.array([29, 10])), [129, 110])
        with pytest.raises(KeyError, match="id 7 "):
            target.positions_of(np.array([7]))
