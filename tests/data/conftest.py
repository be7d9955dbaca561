"""Fixtures of the dataset tests: seeded fake inputs, and the real data when present."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("h5py", reason="the data extra (h5py, rasterio, scipy) is not installed")
pytest.importorskip("rasterio", reason="the data extra (h5py, rasterio, scipy) is not installed")

from hashsearch._paths import data_root
from hashsearch.data.fake import write_fake_dsrsid

#: Pairs per class of the full-size fake DSRSID file (8 classes).
FAKE_PER_CLASS = 3


@pytest.fixture(scope="session")
def fake_dsrsid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DSRSID file in the released layout and sizes (256 / 64), 8 classes x 3 pairs."""
    return write_fake_dsrsid(tmp_path_factory.mktemp("dsrsid") / "DSRSID.mat", per_class=FAKE_PER_CLASS, seed=7)


@pytest.fixture(scope="session")
def fake_dsrsid_many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The released layout with tiny images (8 / 8) and 630 pairs per class: enough for
    the standard 625-per-class split."""
    return write_fake_dsrsid(
        tmp_path_factory.mktemp("dsrsid_many") / "DSRSID.mat", per_class=630, pan_size=8, ms_size=8, seed=1
    )


def real_dir(name: str) -> Path:
    """The real data set folder ``name``, or skip the test saying where it was looked for."""
    folder = data_root() / name
    if not folder.is_dir():
        pytest.skip(f"real data {name!r} not found at {folder} (set HASHSEARCH_DATA to the folder holding it)")
    return folder


@pytest.fixture
def need_real():
    """``need_real(name)`` returns the real data folder or skips the test with the reason."""
    return real_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # rasterio 1.4 multiplies Affine objects with `*`, which affine 3 flags as pending deprecation.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning"))
