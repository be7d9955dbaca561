"""training.prefetch: batches read ahead in a thread, in order, errors where they happened, and a trainer whose
results do not change with it."""

from __future__ import annotations

import threading

import pytest
import torch

from hashsearch.training import Trainer
from hashsearch.training import trainer as trainer_mod
from hashsearch.training.prefetch import prefetch


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hashsearch-prefetch"]


def test_items_come_in_order_and_depth_zero_passes_through():
    assert list(prefetch(range(50), 3)) == list(range(50))
    assert list(prefetch(iter("abc"), 0)) == ["a", "b", "c"]
    assert list(prefetch([], 2)) == []
    with pytest.raises(ValueError, match="depth must be >= 0"):
        list(prefetch(range(3), -1))


def test_the_next_item_is_read_while_the_consumer_holds_the_current_one():
    second_read = threading.Event()

    def items():
        yield 0
        second_read.set()
        yield 1

    it = prefetch(items(), 1)
    assert next(it) == 0
    # Without read-ahead, item 1 would only be read when asked for: this wait would time out.
    assert second_read.wait(timeout=30)
    assert list(it) == [1]


def test_an_error_while_reading_is_raised_at_its_position():
    def items():
        yield from (0, 1)
        raise OSError("chunk 2 is damaged")

    got = []
    with pytest.raises(OSError, match="chunk 2 is damaged"):
        for x in prefetch(items(), 2):
            got.append(x)
    assert got == [0, 1]


def test_leaving_the_loop_early_stops_the_thread():
    read = []

    def items():
        for i in range(10_000):
            read.append(i)
            yield i

    for x in prefetch(items(), 2):
        if x == 3:
            break
    assert not _prefetch_threads()
    assert len(read) <= 3 + 1 + 2 + 1  # the consumed items, the queue's depth and one in hand


def test_training_is_the_same_with_and_without_prefetch(monkeypatch, small_data, small_config):
    cfg = small_config.replace(epochs=1, precision="fp32")
    runs = []
    for depth in (0, 2):
        monkeypatch.setattr(trainer_mod, "PREFETCH_BATCHES", depth)
        tr = Trainer(cfg, small_data, progress=False)
        tr.fit()
        runs.append(tr)
    a, b = runs
    for key in ("pan", "ms"):
        assert torch.equal(a.features[key], b.features[key])
    for pa, pb in zip(a.pan_net.parameters(), b.pan_net.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not _prefetch_threads()
