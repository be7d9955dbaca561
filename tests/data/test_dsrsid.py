"""The DSRSID reader on fake files written in the released MATLAB v7.3 layout."""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from hashsearch.data.dsrsid import DSRSID, DSRSID_CLASSES, LABEL_KEY, MS_KEY, PAN_KEY
from hashsearch.data.errors import DataNotFoundError, MalformedDataError
from hashsearch.data.fake import FAKE_MARKER, fake_dsrsid_sample, write_fake_dsrsid

FAKE_PER_CLASS = 3  # pairs per class of the fake_dsrsid fixture (conftest.py)


def test_fake_file_has_the_released_layout(fake_dsrsid: Path) -> None:
    head = fake_dsrsid.read_bytes()[:520]
    assert head.startswith(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: ")
    assert head[124:128] == b"\x00\x02IM"
    assert head[512:520] == b"\x89HDF\r\n\x1a\n"  # HDF5 behind the 512-byte userblock
    n = 8 * FAKE_PER_CLASS
    with h5py.File(fake_dsrsid, "r") as f:
        assert f[PAN_KEY].shape == (n, 1, 256, 256) and f[PAN_KEY].dtype == np.uint8
        assert f[MS_KEY].shape == (n, 4, 64, 64) and f[MS_KEY].dtype == np.uint8
        assert f[LABEL_KEY].shape == (1, n) and f[LABEL_KEY].dtype == np.float64
        assert f[PAN_KEY].attrs["MATLAB_class"] == b"uint8"
        assert f[LABEL_KEY].attrs["MATLAB_class"] == b"double"
        # Column-major storage: the raw marker block is tall and narrow (transposed).
        raw = f[PAN_KEY][0, 0]
        rows, cols = np.nonzero(raw == FAKE_MARKER)
        assert (rows.max() + 1, cols.max() + 1) == (64, 32)


def test_samples_come_back_upright_and_paired(fake_dsrsid: Path) -> None:
    ds = DSRSID(fake_dsrsid)
    assert len(ds) == 8 * FAKE_PER_CLASS
    assert ds.pan_shape == (1, 256, 256) and ds.ms_shape == (4, 64, 64)
    for i in range(len(ds)):
        s = ds[i]
        pan, ms = fake_dsrsid_sample(i, seed=7)
        assert s["pan"].dtype == np.uint8 and s["pan"].shape == (1, 256, 256)
        assert s["ms"].dtype == np.uint8 and s["ms"].shape == (4, 64, 64)
        np.testing.assert_array_equal(s["pan"], pan)
        np.testing.assert_array_equal(s["ms"], ms)
        assert s["index"] == i
        assert s["label"] == i // FAKE_PER_CLASS
    # Orientation, independently of the generator: the marker is a wide block at the top left.
    s = ds[5]
    rows, cols = np.nonzero(s["pan"][0] == FAKE_MARKER)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 31, 0, 63)
    for b, value in enumerate((250, 240, 230, 220)):  # MS band order kept
        rows, cols = np.nonzero(s["ms"][b] == value)
        assert (rows.max(), cols.max()) == (7, 15)
    # The pair index sits at the bottom right of both images.
    assert s["pan"][0, 255, 255] == 5 and s["ms"][3, 63, 63] == 5


def test_classes_in_paper_order() -> None:
    assert DSRSID_CLASSES == (
        "aquafarm", "cloud", "forest", "high building", "low building", "farm land", "river", "water",
    )


def test_reads_lazily(fake_dsrsid: Path) -> None:
    total = 8 * FAKE_PER_CLASS * (256 * 256 + 4 * 64 * 64)
    tracemalloc.start()
    try:
        ds = DSRSID(fake_dsrsid)
        _ = ds[3]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    ds.close()
    # One sample is 82 KB; loading the variables whole would allocate ~2 MB.
    assert peak < total / 4


def test_standard_split_draws_625_per_class(fake_dsrsid_many: Path) -> None:
    test = DSRSID(fake_dsrsid_many, "test")
    train = DSRSID(fake_dsrsid_many, "train")
    assert len(test) == 8 * 625 and len(train) == 8 * 5
    np.testing.assert_array_equal(np.bincount(test.labels), np.full(8, 625))
    np.testing.assert_array_equal(np.bincount(train.labels), np.full(8, 5))
    assert not set(test.indices) & set(train.indices)
    assert sorted({*test.indices, *train.indices}) == list(range(8 * 630))
    # Seeded: the same seed draws the same pairs, another seed others.
    np.testing.assert_array_equal(DSRSID(fake_dsrsid_many, "test").indices, test.indices)
    other = DSRSID(fake_dsrsid_many, "test", seed=1)
    assert not np.array_equal(other.indices, test.indices)
    # Items of a split view keep their file index.
    item = train[0]
    assert item["index"] == train.indices[0]
    assert item["label"] == item["index"] // 630


def test_custom_splits(fake_dsrsid: Path, fake_dsrsid_many: Path) -> None:
    ds = DSRSID(fake_dsrsid, indices=[7, 2])
    assert len(ds) == 2 and ds.split == "custom"
    assert [ds[0]["index"], ds[1]["index"]] == [7, 2]
    small = DSRSID(fake_dsrsid_many, "test", test_per_class=10, seed=3)
    assert len(small) == 80
    with pytest.raises(ValueError, match="too few"):
        DSRSID(fake_dsrsid, "test")  # 3 pairs per class cannot give 625 test pairs
    with pytest.raises(ValueError, match="indices"):
        DSRSID(fake_dsrsid, indices=[0, 24])
    with pytest.raises(ValueError, match="split"):
        DSRSID(fake_dsrsid, "val")  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        ds[2]


def test_batch_read_matches_items(fake_dsrsid: Path) -> None:
    ds = DSRSID(fake_dsrsid, indices=[9, 1, 9, 20])
    batch = ds.read([3, 0, 2])
    for row, pos in enumerate([3, 0, 2]):
        item = ds[pos]
        np.testing.assert_array_equal(batch["pan"][row], item["pan"])
        np.testing.assert_array_equal(batch["ms"][row], item["ms"])
        assert batch["label"][row] == item["label"] and batch["index"][row] == item["index"]


def test_pickles_for_dataloader_workers(fake_dsrsid: Path) -> None:
    ds = DSRSID(fake_dsrsid)
    _ = ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[4]["pan"], ds[4]["pan"])


def test_compute_stats(fake_dsrsid: Path) -> None:
    ds = DSRSID(fake_dsrsid)
    stats = ds.compute_stats()
    allb = ds.read(np.arange(len(ds)))
    np.testing.assert_allclose(stats["pan"]["mean"], [allb["pan"].mean()], rtol=1e-12)
    np.testing.assert_allclose(stats["ms"]["std"], allb["ms"].astype(float).std(axis=(0, 2, 3)), rtol=1e-9)


# --------------------------------------------------------------------------- errors
def test_missing_file_names_path_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataNotFoundError, match=r"nope\.mat"):
        DSRSID(tmp_path / "nope.mat")
    with pytest.raises(FileNotFoundError):  # a DataNotFoundError is a FileNotFoundError
        DSRSID(tmp_path / "nope.mat")
    monkeypatch.setenv("HASHSEARCH_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="HASHSEARCH_DATA") as info:
        DSRSID()
    assert str(tmp_path) in str(info.value)
    # A folder holding DSRSID.mat is accepted, and the default location is found.
    write_fake_dsrsid(tmp_path / "DSRSID.mat", per_class=1, pan_size=8, ms_size=8)
    assert len(DSRSID(tmp_path)) == 8 and len(DSRSID()) == 8


def test_matlab_v5_file_is_explained(tmp_path: Path) -> None:
    import scipy.io

    path = tmp_path / "DSRSID.mat"
    scipy.io.savemat(path, {PAN_KEY: np.zeros((2, 2), np.uint8)})
    with pytest.raises(MalformedDataError, match=r"v5.*v7\.3"):
        DSRSID(path)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 40)
    with pytest.raises(MalformedDataError, match=r"not a MATLAB v7\.3"):
        DSRSID(junk)


def _write(path: Path, **arrays: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f[key] = value
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({PAN_KEY: np.zeros((2, 1, 8, 8), np.uint8), LABEL_KEY: np.ones((1, 2))}, "lacks MUL_IMAGES"),
        ({PAN_KEY: np.zeros((2, 8, 8), np.uint8), MS_KEY: np.zeros((2, 4, 8, 8), np.uint8),
          LABEL_KEY: np.ones((1, 2))}, "4-D"),
        ({PAN_KEY: np.zeros((2, 1, 8, 8), np.uint16), MS_KEY: np.zeros((2, 4, 8, 8), np.uint8),
          LABEL_KEY: np.ones((1, 2))}, "uint8"),
        ({PAN_KEY: np.zeros((2, 3, 8, 8), np.uint8), MS_KEY: np.zeros((2, 4, 8, 8), np.uint8),
          LABEL_KEY: np.ones((1, 2))}, "1 band"),
        ({PAN_KEY: np.zeros((2, 1, 8, 8), np.uint8), MS_KEY: np.zeros((3, 4, 8, 8), np.uint8),
          LABEL_KEY: np.ones((1, 2))}, "share an index"),
        ({PAN_KEY: np.zeros((2, 1, 8, 8), np.uint8), MS_KEY: np.zeros((2, 4, 8, 8), np.uint8),
          LABEL_KEY: np.ones((1, 3))}, r"\(1, 2\)"),
        ({PAN_KEY: np.zeros((2, 1, 8, 8), np.uint8), MS_KEY: np.zeros((2, 4, 8, 8), np.uint8),
          LABEL_KEY: np.array([[1.0, 9.0]])}, "1..8"),
        ({PAN_KEY: np.zeros((2, 1, 8, 8), np.uint8), MS_KEY: np.zeros((2, 4, 8, 8), np.uint8),
          LABEL_KEY: np.array([[1.0, 2.5]])}, "1..8"),
    ],
)
def test_malformed_files_say_what_is_wrong(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    path = _write(tmp_path / "bad.mat", **arrays)
    with pytest.raises(MalformedDataError, match=message):
        DSRSID(path)


def test_labels_accept_both_vector_orientations(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "col.mat",
        **{PAN_KEY: np.zeros((2, 1, 8, 8), np.uint8), MS_KEY: np.zeros((2, 4, 8, 8), np.uint8),
           LABEL_KEY: np.array([[8.0], [1.0]])},
    )
    assert DSRSID(path).labels.tolist() == [7, 0]
