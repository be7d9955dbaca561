"""hashsearch.search.plan: block plans within a budget, read-ahead with reused buffers."""

from __future__ import annotations

import itertools
import re
import threading

import numpy as np
import pytest

from hashsearch.backends import PAD_DISTANCE, PAD_POSITION
from hashsearch.search.plan import empty_result, plan_blocks, prefetch, result_bytes


def test_block_plans():
    plan = plan_blocks(10_000, 8, 1000, 100, memory_limit=100_000)  # 4 shards fit: blocks of shards
    assert plan.block_rows % 1000 == 0 and plan.nblocks == -(-10_000 // plan.block_rows)
    plan = plan_blocks(10_000, 8, 1000, 100, memory_limit=10_000)  # chunks only
    assert plan.block_rows % 100 == 0 and plan.block_rows < 1000
    assert list(plan.ranges())[-1][1] == 10_000
    assert plan_blocks(10_000, 8, 1000, 100, memory_limit=10**9, max_rows=2500).block_rows == 2000


def test_plans_cover_every_row_once():
    cases = ((10_000, 100_000, None), (10_001, 10_000, None), (999, 10**9, 300), (1, 50_000, None))
    for nrows, limit, max_rows in cases:
        plan = plan_blocks(nrows, 8, 1000, 100, memory_limit=limit, max_rows=max_rows)
        ranges = list(plan.ranges())
        assert ranges[0][0] == 0 and ranges[-1][1] == nrows and len(ranges) == plan.nblocks
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        assert all(0 < hi - lo <= plan.block_rows for lo, hi in ranges)
    empty = plan_blocks(0, 8, 1000, 100, memory_limit=100_000)
    assert empty.nblocks == 0 and list(empty.ranges()) == []


def test_a_larger_budget_never_gives_smaller_blocks():
    limits = range(10_000, 400_000, 7_919)
    sizes = [plan_blocks(10**7, 8, 1000, 100, memory_limit=m, fixed_bytes=5000).block_rows for m in limits]
    assert sizes == sorted(sizes) and sizes[0] < 1000 <= sizes[-1]


def test_too_small_a_budget_names_the_exact_minimum():
    for fixed in (0, 1234, result_bytes(25, 10)):
        with pytest.raises(ValueError, match="too small") as info:
            plan_blocks(10_000, 8, 1000, 100, memory_limit=1000, fixed_bytes=fixed)
        message = str(info.value)
        need = int(re.search(r"at least (\d+) bytes", message).group(1))
        assert f"queries and results {fixed}" in message and "4 chunks of 100 rows" in message
        assert plan_blocks(10_000, 8, 1000, 100, memory_limit=need, fixed_bytes=fixed).block_rows == 100
        with pytest.raises(ValueError, match=f"at least {need} bytes"):
            plan_blocks(10_000, 8, 1000, 100, memory_limit=need - 1, fixed_bytes=fixed)


def test_result_bytes_grow_with_queries_and_k():
    assert result_bytes(10, 5) < result_bytes(20, 5) and result_bytes(10, 5) < result_bytes(10, 6)
    # at least the running result (int32 distance + int64 position per entry) and one block's
    assert result_bytes(100, 50) >= 2 * 100 * 50 * 12


def test_empty_result():
    d, i = empty_result(3, 4)
    assert d.shape == i.shape == (3, 4) and d.dtype == np.int32 and i.dtype == np.int64
    assert (d == PAD_DISTANCE).all() and (i == PAD_POSITION).all()


def test_prefetch_reuses_buffers_and_propagates_errors():
    ranges = [(i, i + 1) for i in range(6)]
    made = []

    def make():
        made.append(np.zeros(1))
        return made[-1]

    def fill(lo, hi, buf):
        buf[0] = lo
        return buf

    seen = [(lo, float(data[0])) for lo, _, data in prefetch(ranges, fill, make)]
    assert seen == [(i, float(i)) for i in range(6)] and len(made) == 2

    def fail(lo, hi, buf):
        if lo == 3:
            raise OSError("disk gone")
        return lo

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for _lo, _, data in prefetch(ranges, fail):
            got.append(data)
    assert got == [0, 1, 2]
    gen = prefetch(ranges, lambda lo, hi, buf: lo)
    assert next(gen)[0] == 0
    gen.close()  # stops the reader thread


def test_a_yielded_block_is_not_overwritten_until_the_next_is_asked_for():
    ranges = [(i, i + 1) for i in range(8)]

    def fill(lo, hi, buf):
        buf[0] = lo
        return buf

    for depth in (1, 2):
        for lo, _, data in prefetch(ranges, fill, lambda: np.zeros(1), depth=depth):
            threading.Event().wait(0.002)  # the reader runs meanwhile
            assert data[0] == lo


def test_prefetch_without_a_thread_and_after_closing():
    callers = set()

    def read(lo, hi, buf):
        callers.add(threading.current_thread().name)
        return lo

    assert [d for _, _, d in prefetch([(0, 1), (1, 2)], read, depth=0)] == [0, 1]
    assert callers == {threading.current_thread().name}
    callers.clear()
    gen = prefetch([(i, i + 1) for i in range(100)], read)
    next(gen)
    gen.close()
    assert callers == {"hashsearch-prefetch"}
    assert not any(t.name == "hashsearch-prefetch" for t in threading.enumerate())
    assert list(prefetch([], read)) == []
