"""Torch adapters over the hashsearch.data readers (augmentation through them; the transforms: test_augment)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("rasterio", reason="the data extra is not installed")
pytest.importorskip("h5py", reason="the data extra is not installed")

from hashsearch.data.dsrsid import DSRSID  # noqa: E402
from hashsearch.data.dual import DualSourceDataset  # noqa: E402
from hashsearch.data.fake import fake_dsrsid_sample, write_fake_dsrsid, write_fake_scene  # noqa: E402
from hashsearch.data.tiler import TileConfig, tile_scene  # noqa: E402
from hashsearch.training.augment import PairedAugment  # noqa: E402
from hashsearch.training.datasets import DualSourceTorchDataset, dual_source_splits  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


@pytest.fixture(scope="module")
def dual_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiled fake scene: MS band b = round(4x4 block mean of PAN) + 10 b, 20 pairs."""
    folder = tmp_path_factory.mktemp("scene")
    sc = write_fake_scene(folder, pan_shape=(64, 80), ratio=4, seed=11)
    return tile_scene(sc.pan, sc.ms, folder / "d.zarr",
                      config=TileConfig(patch_size=16, test_fraction=0.25), progress=False)


def _raw(t: torch.Tensor, stats: dict, key: str) -> np.ndarray:
    mean = np.asarray(stats[key]["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(stats[key]["std"], dtype=np.float32)[:, None, None]
    return t.numpy() * std + mean


def test_items_follow_the_training_contract(dual_path: Path) -> None:
    src = DualSourceDataset(dual_path, "train")
    ds = DualSourceTorchDataset(src)
    assert len(ds) == len(src) == 15
    np.testing.assert_array_equal(ds.labels, src.labels)
    for i in (0, 7, 14):
        item = ds[i]
        assert set(item) == {"pan", "ms", "label", "index"}
        assert item["pan"].dtype == torch.float32 and tuple(item["pan"].shape) == (1, 16, 16)
        assert item["ms"].dtype == torch.float32 and tuple(item["ms"].shape) == (4, 4, 4)
        assert item["index"] == i and isinstance(item["label"], int)
        raw = src[i]
        np.testing.assert_allclose(_raw(item["pan"], src.stats, "pan"), raw["pan"], atol=1e-3)
        np.testing.assert_allclose(_raw(item["ms"], src.stats, "ms"), raw["ms"], atol=1e-3)
    # Normalised with the stored train statistics: about zero mean, unit variance per band.
    allms = torch.stack([ds[i]["ms"] for i in range(len(ds))])
    np.testing.assert_allclose(allms.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(allms.std(dim=(0, 2, 3), unbiased=False).numpy(), 1, atol=1e-4)
    pre = DualSourceTorchDataset(src, preload=True)
    assert torch.equal(pre[3]["ms"], ds[3]["ms"]) and pre[3]["label"] == ds[3]["label"]
    raw = DualSourceTorchDataset(src, normalize=False)
    assert torch.equal(raw[2]["pan"], torch.from_numpy(src[2]["pan"].astype(np.float32)))


def test_augmentation_keeps_pairs_registered(dual_path: Path) -> None:
    src = DualSourceDataset(dual_path)
    aug = PairedAugment(seed=5)
    ds = DualSourceTorchDataset(src, normalize=False, augment=aug)
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        pan, ms = item["pan"].numpy()[0], item["ms"].numpy()
        mean = np.floor(pan.reshape(4, 4, 4, 4).mean(axis=(1, 3)) + 0.5)
        np.testing.assert_array_equal(ms[0], mean)  # same geometry on both sources
        np.testing.assert_array_equal(ms[3], mean + 30)
        seen.add(aug.params(int(src.indices[i])))
    assert len(seen) >= 5  # really transformed, in several ways
    # Seeded by (seed, epoch, index): the same item repeats; another epoch draws again.
    again = DualSourceTorchDataset(src, normalize=False, augment=PairedAugment(seed=5))
    assert all(torch.equal(again[i]["pan"], ds[i]["pan"]) for i in range(len(ds)))
    before = [aug.params(i) for i in range(len(ds))]
    ds.set_epoch(1)
    assert [aug.params(i) for i in range(len(ds))] != before


def test_dual_source_splits_share_train_stats(dual_path: Path) -> None:
    train, test = dual_source_splits(dual_path, augment=True)
    assert len(train) == 15 and len(test) == 5
    assert train.stats == test.stats == DualSourceDataset(dual_path).stats
    assert isinstance(train.augment, PairedAugment) and test.augment is None


def test_dsrsid_through_a_dataloader(tmp_path: Path) -> None:
    path = write_fake_dsrsid(tmp_path / "DSRSID.mat", per_class=2, pan_size=32, ms_size=16, seed=3)
    ds = DualSourceTorchDataset(DSRSID(path), normalize=False)
    np.testing.assert_array_equal(ds[5]["pan"].numpy(), fake_dsrsid_sample(5, seed=3, pan_size=32, ms_size=16)[0])
    assert ds[5]["label"] == 2
    # spawn, not fork: forking a test process whose OpenMP pools (torch, numba, faiss) are
    # running can deadlock the children; spawned workers also prove the dataset pickles.
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, num_workers=2, shuffle=False, multiprocessing_context="spawn"
    )
    batches = list(loader)
    assert len(batches) == 4 and tuple(batches[0]["pan"].shape) == (4, 1, 32, 32)
    assert batches[3]["index"].tolist() == [12, 13, 14, 15]
    assert batches[3]["label"].tolist() == [6, 6, 7, 7]
    normed = DualSourceTorchDataset(DSRSID(path))  # no stored stats: estimated from the view
    assert abs(float(torch.stack([normed[i]["pan"] for i in range(16)]).mean())) < 1e-4
