"""The on-disk dual-source format: writer, atomic builds, reader, splits, statistics."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from hashsearch.data.dual import SPLIT_CODES, DualDatasetWriter, DualSourceDataset, dataset_info
from hashsearch.data.errors import DataNotFoundError, IncompleteDatasetError, MalformedDataError


def _batches(seed: int, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.integers(0, 256, (b, 1, 8, 8), dtype=np.uint8),
            rng.integers(0, 1000, (b, 3, 2, 2), dtype=np.uint16),
            rng.integers(0, 3, b),
        )
        for b in sizes
    ]


def _build(out: Path, sizes: list[int], *, shard: int = 4, split: bool = True) -> list:
    batches = _batches(0, sizes)
    n = sum(sizes)
    with DualDatasetWriter(out, pan_shape=(1, 8, 8), ms_shape=(3, 2, 2), pan_dtype=np.uint8,
                           ms_dtype=np.uint16, shard_samples=shard) as w:
        start = 0
        for pan, ms, lab in batches:
            b = len(lab)
            bounds = np.tile(np.arange(4.0), (b, 1)) + np.arange(start, start + b)[:, None]
            w.append(pan, ms, lab, bounds=bounds, scene=1, pan_origin=np.zeros((b, 2), np.int64))
            start += b
        codes = np.where(np.arange(n) % 3 == 0, SPLIT_CODES["test"], SPLIT_CODES["train"]) if split else None
        w.finalize(classes=["a", "b", "c"], split=codes, ms_bands=["x", "y", "z"], ratio=4,
                   provenance={"recipe": "unit-test"})
    return batches


def test_roundtrip_values_labels_and_metadata(tmp_path: Path) -> None:
    sizes = [3, 5, 1, 6]  # 15 samples over shards of 4: flushes mid-batch and a partial tail
    batches = _build(tmp_path / "d.zarr", sizes)
    pan = np.concatenate([b[0] for b in batches])
    ms = np.concatenate([b[1] for b in batches])
    lab = np.concatenate([b[2] for b in batches])
    ds = DualSourceDataset(tmp_path / "d.zarr")
    assert len(ds) == 15 and ds.classes == ["a", "b", "c"]
    assert ds.pan_shape == (1, 8, 8) and ds.ms_shape == (3, 2, 2)
    for i in range(15):
        s = ds[i]
        np.testing.assert_array_equal(s["pan"], pan[i])
        np.testing.assert_array_equal(s["ms"], ms[i])
        assert s["ms"].dtype == np.uint16
        assert (s["label"], s["index"]) == (lab[i], i)
    np.testing.assert_array_equal(ds.array("bounds")[:, 0], np.arange(15.0))
    assert set(ds.array("scene")) == {1}
    batch = ds.read([14, 0, 14])
    np.testing.assert_array_equal(batch["pan"], pan[[14, 0, 14]])
    assert ds.meta["provenance"]["recipe"] == "unit-test"
    assert ds.meta["ms"]["bands"] == ["x", "y", "z"] and ds.meta["ratio"] == 4


def test_stats_are_per_band_over_the_train_split(tmp_path: Path) -> None:
    batches = _build(tmp_path / "d.zarr", [7, 6])
    ms = np.concatenate([b[1] for b in batches]).astype(np.float64)
    pan = np.concatenate([b[0] for b in batches]).astype(np.float64)
    train = np.arange(13) % 3 != 0
    ds = DualSourceDataset(tmp_path / "d.zarr")
    np.testing.assert_allclose(ds.stats["ms"]["mean"], ms[train].mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(ds.stats["ms"]["std"], ms[train].std(axis=(0, 2, 3)))
    np.testing.assert_allclose(ds.stats["pan"]["mean"], [pan[train].mean()])
    assert ds.meta["stats"]["computed_on"] == "train"
    # Without a split the statistics cover every sample.
    _build(tmp_path / "all.zarr", [5], split=False)
    assert DualSourceDataset(tmp_path / "all.zarr").meta["stats"]["computed_on"] == "all"


def test_split_views(tmp_path: Path) -> None:
    _build(tmp_path / "d.zarr", [10])
    train = DualSourceDataset(tmp_path / "d.zarr", "train")
    test = DualSourceDataset(tmp_path / "d.zarr", "test")
    np.testing.assert_array_equal(test.indices, [0, 3, 6, 9])
    assert len(train) == 6 and test[1]["index"] == 3
    custom = DualSourceDataset(tmp_path / "d.zarr", indices=[8, 1])
    assert [custom[0]["index"], custom[1]["index"]] == [8, 1] and custom.split == "custom"
    tr, te = train.resplit(test_fraction=0.5, seed=2)
    assert len(tr) + len(te) == 10 and not set(tr) & set(te)
    _build(tmp_path / "nosplit.zarr", [4], split=False)
    with pytest.raises(ValueError, match="no 'train' samples"):
        DualSourceDataset(tmp_path / "nosplit.zarr", "train")


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "d.zarr"
    with pytest.raises(RuntimeError, match="boom"), \
            DualDatasetWriter(out, pan_shape=(1, 8, 8), ms_shape=(3, 2, 2), shard_samples=2) as w:
        pan, ms, lab = _batches(0, [5])[0]
        w.append(pan, (ms % 256).astype(np.uint8), lab)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    # An empty build is an error too, and leaves nothing behind.
    with pytest.raises(ValueError, match="no samples"), \
            DualDatasetWriter(out, pan_shape=(1, 8, 8), ms_shape=(3, 2, 2)) as w:
        w.finalize()
    assert list(tmp_path.iterdir()) == []


def test_unfinished_group_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "d.zarr"
    w = DualDatasetWriter(out, pan_shape=(1, 8, 8), ms_shape=(3, 2, 2))
    pan, ms, lab = _batches(0, [3])[0]
    w.append(pan, (ms % 256).astype(np.uint8), lab)
    # Simulate a crash that left the partial group under the final name.
    shutil.copytree(w.tmp, out)
    w.abort()
    with pytest.raises(IncompleteDatasetError, match="incomplete"):
        DualSourceDataset(out)


def test_overwrite_rules(tmp_path: Path) -> None:
    out = tmp_path / "d.zarr"
    _build(out, [4])
    with pytest.raises(FileExistsError, match="overwrite"):
        DualDatasetWriter(out, pan_shape=(1, 8, 8), ms_shape=(3, 2, 2))
    with DualDatasetWriter(out, pan_shape=(1, 4, 4), ms_shape=(1, 1, 1), overwrite=True) as w:
        w.append(np.zeros((2, 1, 4, 4), np.uint8), np.zeros((2, 1, 1, 1), np.uint8), [0, 0])
        w.finalize()
    ds = DualSourceDataset(out)
    assert len(ds) == 2 and ds.pan_shape == (1, 4, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]  # no .old / .partial left


def test_append_checks_shapes_and_dtypes(tmp_path: Path) -> None:
    with DualDatasetWriter(tmp_path / "d.zarr", pan_shape=(1, 8, 8), ms_shape=(3, 2, 2)) as w:
        with pytest.raises(ValueError, match="pan batch"):
            w.append(np.zeros((2, 1, 8, 7), np.uint8), np.zeros((2, 3, 2, 2), np.uint8), [0, 0])
        with pytest.raises(ValueError, match="ms batch"):
            w.append(np.zeros((2, 1, 8, 8), np.uint8), np.zeros((3, 3, 2, 2), np.uint8), [0, 0])
        with pytest.raises(TypeError, match="uint8 cannot hold"):
            w.append(np.zeros((2, 1, 8, 8), np.uint16), np.zeros((2, 3, 2, 2), np.uint8), [0, 0])
        w.abort()


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="hashsearch dataset build"):
        DualSourceDataset(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["x"] = 1
    with pytest.raises(MalformedDataError, match="not a hashsearch dual-source dataset"):
        DualSourceDataset(tmp_path / "other.zarr")
    # A dataset whose label array was replaced by a group.
    _build(tmp_path / "d.zarr", [4])
    shutil.rmtree(tmp_path / "d.zarr" / "label")
    zarr.open_group(str(tmp_path / "d.zarr" / "label"), mode="w")
    with pytest.raises(MalformedDataError, match="'label' is a group, not an array"):
        DualSourceDataset(tmp_path / "d.zarr")


def test_rgb_bands_are_recorded(tmp_path: Path) -> None:
    with DualDatasetWriter(tmp_path / "a.zarr", pan_shape=(1, 4, 4), ms_shape=(4, 1, 1)) as w:
        w.append(np.zeros((2, 1, 4, 4), np.uint8), np.zeros((2, 4, 1, 1), np.uint8), [0, 1])
        w.finalize(ms_bands=["Blue", "green", "red", "nir"])  # found from the names
    assert DualSourceDataset(tmp_path / "a.zarr").meta["ms"]["rgb"] == [2, 1, 0]
    with DualDatasetWriter(tmp_path / "b.zarr", pan_shape=(1, 4, 4), ms_shape=(4, 1, 1)) as w:
        w.append(np.zeros((2, 1, 4, 4), np.uint8), np.zeros((2, 4, 1, 1), np.uint8), [0, 1])
        with pytest.raises(ValueError, match="3 band positions below 4"):
            w.finalize(ms_rgb=[0, 1, 4])
    assert not (tmp_path / "b.zarr").exists()
    with DualDatasetWriter(tmp_path / "c.zarr", pan_shape=(1, 4, 4), ms_shape=(2, 1, 1)) as w:
        w.append(np.zeros((2, 1, 4, 4), np.uint8), np.zeros((2, 2, 1, 1), np.uint8), [0, 1])
        w.finalize(ms_bands=["red", "nir"])
    assert DualSourceDataset(tmp_path / "c.zarr").meta["ms"]["rgb"] is None


def test_info_counts_classes_per_split(tmp_path: Path) -> None:
    batches = _build(tmp_path / "d.zarr", [9])
    lab = batches[0][2]
    info = dataset_info(tmp_path / "d.zarr")
    assert info["num_samples"] == 9 and info["splits"] == {"train": 6, "test": 3, "unassigned": 0}
    for k, name in enumerate("abc"):
        assert info["classes"][name]["total"] == int((lab == k).sum())
    assert info["classes"]["a"]["test"] + info["classes"]["b"]["test"] + info["classes"]["c"]["test"] == 3


def test_open_dataset_dispatches_on_the_path(tmp_path: Path) -> None:
    from hashsearch.data import DSRSID, open_dataset
    from hashsearch.data.fake import write_fake_dsrsid

    _build(tmp_path / "d.zarr", [4])
    assert isinstance(open_dataset(tmp_path / "d.zarr"), DualSourceDataset)
    mat = write_fake_dsrsid(tmp_path / "x.mat", per_class=1, pan_size=8, ms_size=8)
    assert isinstance(open_dataset(mat), DSRSID)
