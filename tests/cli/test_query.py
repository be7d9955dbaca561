"""``hashsearch query``: a PAN image finds MS results in a store built by ``hashsearch encode``.

The model is trained by ``hashsearch train --data`` on a small synthetic dual-source
dataset on disk (so it learns on normalised pixels and the query needs ``--data``),
the archive is encoded by ``hashsearch encode``; expected results come from the
Encoder and the brute-force oracle over the codes read back from the store.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from search_helpers import oracle_knn
from typer.testing import CliRunner

from hashsearch.cli import app

torch = pytest.importorskip("torch")

PAN, MS = 32, 8


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from hashsearch.demo.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("query")
    data = write_synthetic_dataset(root / "data.zarr", samples=40, num_classes=4, pan_size=PAN, ms_size=MS, seed=2)
    runner = CliRunner()
    old = torch.get_num_threads()
    try:
        _ok(runner.invoke(app, ["train", "--data", str(data), "--bits", "16", "--epochs", "1", "--batch-size", "16",
                                "--threads", "1", "--no-progress", "--out", str(root / "run"), "--json"]))
        _ok(runner.invoke(app, ["encode", str(root / "run"), "--source", "ms", "--data", str(data), "--split", "train",
                                "--store", str(root / "ms.zarr"), "--no-progress", "--threads", "1"]))
    finally:
        torch.set_num_threads(old)
    return root, data


def _expected(root, data, pan_images, k):
    """Oracle results over the store, the query normalised as the training dataset normalises it."""
    from hashsearch.data import open_dataset
    from hashsearch.store import CodeStore
    from hashsearch.training.encoder import Encoder

    stats = open_dataset(data, "train").stats["pan"]
    x = (pan_images.astype(np.float32) - np.float32(stats["mean"][0])) / np.float32(stats["std"][0])
    codes = Encoder.load(root / "run").encode(x, "pan")
    store = CodeStore.open(root / "ms.zarr")
    d, pos = oracle_knn(store.read_codes(), codes, k)
    return d, store.read_ids()[pos], store.read_labels()[pos]


def test_pan_npy_returns_ms_results_with_labels(archive, tmp_path):
    from hashsearch.data import open_dataset

    root, data = archive
    test = open_dataset(data, "test")
    image = np.asarray(test[0]["pan"])  # uint16 (1, 32, 32), the dataset's pixel units
    np.save(tmp_path / "q.npy", image)
    result = _ok(CliRunner().invoke(app, ["query", "--model", str(root / "run"), "--store", str(root / "ms.zarr"),
                                          "--data", str(data), str(tmp_path / "q.npy"), "-k", "5", "--json"]))
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert (out["source"], out["target"], out["k"]) == ("pan", "ms", 5)
    d, ids, labels = _expected(root, data, image[None], 5)
    hits = out["queries"][0]["results"]
    assert [h["distance"] for h in hits] == d[0].tolist()
    assert [h["id"] for h in hits] == ids[0].tolist()
    assert [h["label"] for h in hits] == labels[0].tolist()


def test_geotiff_scene_is_tiled_and_every_tile_answered(archive, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from hashsearch.data import open_dataset

    root, data = archive
    pans = np.asarray(open_dataset(data, "test").read(np.arange(6))["pan"])  # (6, 1, 32, 32)
    scene = np.concatenate([np.concatenate(list(pans[r * 3 : r * 3 + 3]), axis=2) for r in range(2)], axis=1)
    scene = np.pad(scene, ((0, 0), (0, 5), (0, 7)), mode="edge")  # a margin that is not a whole patch
    with rasterio.open(tmp_path / "scene.tif", "w", driver="GTiff", width=scene.shape[2], height=scene.shape[1],
                       count=1, dtype="uint16", crs="EPSG:32633", transform=from_origin(5e5, 4e6, 10, 10)) as ds:
        ds.write(scene)
    result = _ok(CliRunner().invoke(app, ["query", "-m", str(root / "run"), "-s", str(root / "ms.zarr"), "--data",
                                          str(data), str(tmp_path / "scene.tif"), "-k", "3", "--json"]))
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert [q["origin"] for q in out["queries"]] == [[0, 0], [0, 32], [0, 64], [32, 0], [32, 32], [32, 64]]
    d, ids, _ = _expected(root, data, pans, 3)
    assert [[h["id"] for h in q["results"]] for q in out["queries"]] == ids.tolist()
    assert [[h["distance"] for h in q["results"]] for q in out["queries"]] == d.tolist()


def test_text_output_and_strip(archive, tmp_path):
    pytest.importorskip("matplotlib")
    from hashsearch.data import open_dataset

    root, data = archive
    np.save(tmp_path / "q.npy", np.asarray(open_dataset(data, "test").read(np.arange(2))["pan"]))
    result = _ok(CliRunner().invoke(app, ["query", "-m", str(root / "run"), "-s", str(root / "ms.zarr"), "--data",
                                          str(data), str(tmp_path / "q.npy"), "-k", "4", "--show",
                                          str(tmp_path / "strip.png")]))
    assert "2 pan queries -> ms archive, top 4" in result.stdout
    assert result.stdout.count("distance") == 8
    png = (tmp_path / "strip.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_a_model_trained_on_a_dataset_carries_its_normalisation(archive, tmp_path):
    # `hashsearch train --data` records the dataset's pixel statistics in the checkpoint:
    # a query without --data is normalised the same way (same answers, no unit warning).
    from hashsearch.data import open_dataset

    root, data = archive
    np.save(tmp_path / "q.npy", np.asarray(open_dataset(data, "test")[0]["pan"]))
    base = ["query", "-m", str(root / "run"), "-s", str(root / "ms.zarr"), str(tmp_path / "q.npy"), "-k", "5", "--json"]
    alone = _ok(CliRunner().invoke(app, base))
    with_data = _ok(CliRunner().invoke(app, [*base, "--data", str(data)]))
    assert "standard deviations" not in alone.stderr
    assert json.loads(alone.stdout) == json.loads(with_data.stdout)


def test_errors_are_one_line_and_exit_1(archive, tmp_path):
    root, _ = archive
    args = ["query", "-m", str(root / "run"), "-s", str(root / "ms.zarr")]
    np.save(tmp_path / "three.npy", np.zeros((3, PAN, PAN), np.uint16))
    np.save(tmp_path / "ms.npy", np.zeros((4, MS, MS), np.uint16))
    np.save(tmp_path / "small.npy", np.zeros((1, 8, 8), np.uint16))
    cases = [
        (["three.npy"], "3 band(s)"),
        (["ms.npy"], "ms queries search pan codes"),  # inferred as MS; the store holds MS codes only
        (["small.npy", "--source", "pan"], "smaller than the model's 32x32 patch"),
        (["small.npy", "--source", "sar"], "source must be 'pan' or 'ms'"),
        (["missing.npy"], "no image at"),
    ]
    for extra, message in cases:
        extra = [str(tmp_path / extra[0]), *extra[1:]]
        result = CliRunner().invoke(app, [*args, *extra])
        assert result.exit_code == 1, (extra, result.output)
        assert message in result.stderr, (extra, result.stderr)
    result = CliRunner().invoke(app, ["query", "-m", str(root / "run"), "-s", str(tmp_path / "nostore.zarr"),
                                      str(tmp_path / "ms.npy")])
    assert result.exit_code == 1 and "no code store" in result.stderr


def test_hand_set_pixel_stats_normalise_the_query(archive):
    """The expectation uses constants, not the dataset's statistics (the rule the CLI
    applies is not recomputed from the same source)."""
    from hashsearch import Retriever
    from hashsearch.store import CodeStore
    from hashsearch.training.encoder import Encoder

    root, _ = archive
    image = (np.arange(PAN * PAN, dtype=np.uint16).reshape(1, 1, PAN, PAN) * 7) % 1000
    stats = {"pan": {"mean": [300.0], "std": [50.0]}, "ms": {"mean": [0.0] * 4, "std": [1.0] * 4}}
    with Retriever(root / "run", root / "ms.zarr", pixel_stats=stats) as retriever:
        got = retriever.search(image, "pan", k=4)
    codes = Encoder.load(root / "run").encode((image.astype(np.float32) - 300.0) / 50.0, "pan")
    np.testing.assert_array_equal(got.codes, codes)
    store = CodeStore.open(root / "ms.zarr")
    d, pos = oracle_knn(store.read_codes(), codes, 4)
    np.testing.assert_array_equal(got.distances, d)
    np.testing.assert_array_equal(got.ids, store.read_ids()[pos])
