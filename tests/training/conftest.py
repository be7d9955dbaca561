"""Shared fixtures of the training tests: torch is optional, tests run single-threaded on tiny fake data."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    """Pin torch to one thread (the CI machine has 2 cores shared with other suites)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def small_data():
    """48 fake dual samples, PAN 64×64 and MS 4×16×16, 4 classes, in memory."""
    from hashsearch.training import fake_dual_source

    return fake_dual_source(48, num_classes=4, pan_size=64, ms_size=16, seed=3)


@pytest.fixture
def small_config():
    """A config for ``small_data``: 'same' padding, 16 bits, batch 16, 2 epochs, one thread."""
    from hashsearch.training import TrainConfig

    return TrainConfig(bits=16, epochs=2, batch_size=16, threads=1, lr=0.003, stats_samples=48,
                       calibration_samples=32).replace(pan_size=64, ms_size=16, padding="same")
