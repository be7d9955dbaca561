"""Fixtures of the evaluation tests: small dual-source Zarr datasets on disk, label-oracle and tiny models."""

from __future__ import annotations

import numpy as np
import pytest

PAN, MS = 32, 8
MS_BANDS = ("blue", "green", "red", "nir")


def write_dataset(path, *, task: str, n: int = 48, classes: int = 3, seed: int = 0):
    """A real dual-source Zarr group: uint16 PAN (1, 32, 32), MS (4, 8, 8), stored split 3 : 1."""
    from hashsearch.data.dual import DualDatasetWriter

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes if task == "class" else np.arange(n)
    ground = rng.integers(0, 4000, (n, 4, PAN, PAN))
    pan = ground.mean(axis=1, keepdims=True).astype(np.uint16)
    ms = ground.reshape(n, 4, MS, PAN // MS, MS, PAN // MS).mean(axis=(3, 5)).astype(np.uint16)
    split = np.zeros(n, np.int8)
    split[rng.permutation(n)[: n // 4]] = 1
    with DualDatasetWriter(path, pan_shape=(1, PAN, PAN), ms_shape=(4, MS, MS), pan_dtype=np.uint16,
                           ms_dtype=np.uint16) as w:
        w.append(pan, ms, labels, split=split)
        return w.finalize(classes=[f"class{c}" for c in range(classes)] if task == "class" else None,
                          task=task, ms_bands=list(MS_BANDS), pan_bands=["pan"], ratio=PAN // MS)


@pytest.fixture(scope="session")
def class_dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "class.zarr", task="class")


@pytest.fixture(scope="session")
def instance_dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "instance.zarr", task="instance", seed=1)


class LabelOracle:
    """A duck-typed model whose features are the ±1 bits of each item's label (perfect codes).

    For class data, same label = same code (MAP 1); for instance data every pair has its own
    code (recall@1 1). It reads the items of the dataset it is given.
    """

    name = "oracle"
    bits = 16

    def features(self, images, source):
        labels = np.array([int(images[i]["label"]) for i in range(len(images))], dtype=np.int64)
        bits = (labels[:, None] >> np.arange(self.bits)) & 1
        return (2.0 * bits - 1.0).astype(np.float32)


@pytest.fixture
def oracle():
    return LabelOracle()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, class_dataset):
    """A SIDHCNN checkpoint trained one epoch on ``class_dataset`` (16 bits)."""
    pytest.importorskip("torch")
    import torch

    from hashsearch.training import TrainConfig, train
    from hashsearch.training.datasets import dual_source_splits

    torch.set_num_threads(1)
    train_set, _ = dual_source_splits(class_dataset)
    cfg = TrainConfig(bits=16, epochs=1, batch_size=12, threads=1, lr=0.003, stats_samples=36,
                      calibration_samples=24).replace(pan_size=PAN, ms_size=MS, ms_bands=4, padding="same")
    out = tmp_path_factory.mktemp("ckpt")
    train(cfg, train_set, checkpoint_dir=out, progress=False)
    return out
