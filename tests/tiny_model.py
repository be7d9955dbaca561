"""A tiny SIDHCNN run on fake data, and code stores of its archive, for the retrieval and query tests.

``tiny_run(folder)`` trains PAN 1x32x32 / MS 4x8x8 networks (16 bits, one epoch, one
thread) on 40 seeded fake pairs and returns the run folder and the data. A real
training run, so the checkpoint holds the input standardisation the networks apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAN_SIZE, MS_SIZE, BITS, SAMPLES = 32, 8, 16, 40


@dataclass
class TinyRun:
    run: Path  # folder holding last.pt
    pan: np.ndarray  # float32 (n, 1, 32, 32)
    ms: np.ndarray  # float32 (n, 4, 8, 8)
    labels: np.ndarray  # int64 (n,)


def tiny_run(folder: Path) -> TinyRun:
    """Train the tiny model into ``folder / "run"`` (seeded, one epoch)."""
    import torch

    from hashsearch.training import TrainConfig, Trainer, fake_dual_source

    data = fake_dual_source(SAMPLES, num_classes=4, pan_size=PAN_SIZE, ms_size=MS_SIZE, seed=5)
    config = TrainConfig(bits=BITS, epochs=1, batch_size=20, threads=1, lr=0.003, stats_samples=SAMPLES,
                         calibration_samples=16).replace(pan_size=PAN_SIZE, ms_size=MS_SIZE, padding="same")
    old = torch.get_num_threads()
    try:
        Trainer(config, data, checkpoint_dir=folder / "run", progress=False).fit()
    finally:
        torch.set_num_threads(old)
    return TinyRun(folder / "run", np.asarray(data.pan, np.float32), np.asarray(data.ms, np.float32),
                   np.asarray(data.labels, np.int64))


def write_store(path: Path, codes: np.ndarray, *, source: str | list[str], labels: np.ndarray | None = None,
                ids: np.ndarray | None = None, encoder: dict | None = None):
    """A CodeStore on disk holding ``codes`` (closed; returns its path)."""
    from hashsearch.store import CodeStore

    with CodeStore.create(path, codes.shape[1] * 8, with_labels=labels is not None, with_source=True,
                          encoder=encoder, shard_rows=16, chunk_rows=8) as store:
        kwargs = {"labels": labels} if labels is not None else {}
        if ids is not None:
            kwargs["ids"] = ids
        src = np.asarray([source] * codes.shape[0] if isinstance(source, str) else source, dtype=object)
        store.append(codes, source=src, **kwargs)
    return path
