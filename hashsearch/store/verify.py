"""Verifying a code store: every committed shard, the ids and the metadata.

:func:`verify_store` reads the whole store and collects problems in a
:class:`VerifyReport` instead of raising: missing, short or undecodable shards
(checksum failures included), inner chunks missing for committed rows, negative
or duplicate ids, ids that do not equal positions when the metadata says so, a
``next_id`` not above every id, and source values that are not source indices.
Leftovers of an interrupted writer (rows past the commit, temporary files, a
lock record) are reported as warnings.

This module owns :class:`VerifyReport` and :func:`verify_store`. It may import
the base modules, :mod:`.reader` and :mod:`._lock`; never the writer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hashsearch._validate import first_duplicate
from hashsearch.errors import CorruptStoreError
from hashsearch.store._lock import current_holder
from hashsearch.store.reader import StoreReader

__all__ = ["VerifyReport", "verify_store"]


@dataclass
class VerifyReport:
    """Result of :meth:`CodeStore.verify`: ``ok`` when ``errors`` is empty."""

    path: str
    nrows: int
    shards: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def _leftovers(reader: StoreReader, report: VerifyReport) -> None:
    """Warnings: rows past the commit, temporary files, the lock record."""
    state = reader.state
    n = state.committed
    for name, arr in state.files.arrays.items():
        if arr.shape[0] > n:
            report.warnings.append(
                f"{state.location.describe(name)}: {arr.shape[0] - n} rows past the commit "
                "(an interrupted append; the next writer drops them)"
            )
    if state.location.local_root is not None:
        for tmp in state.location.local_root.rglob("*.partial"):
            report.warnings.append(f"{tmp}: temporary file of an interrupted write")
    holder = None
    try:
        holder = current_holder(state.zstore, state.location.local_root)
    except CorruptStoreError as exc:
        report.warnings.append(str(exc))
    if holder is not None:
        report.warnings.append(f"lock record names {holder.describe()} (a writer is active or did not close)")


def _check_shards(reader: StoreReader, report: VerifyReport) -> set[tuple[str, int]]:
    """Errors for shards that are missing, short or lack inner chunks; returns them."""
    n = reader.state.committed
    shard = reader.shard_rows
    bad: set[tuple[str, int]] = set()
    for name, checker in reader.state.files.checkers.items():
        for s in range(report.shards):
            rows = min(n, (s + 1) * shard) - s * shard
            try:
                checker.forget(s)
                checker.check(s * shard, s * shard + rows)
                missing = checker.missing_chunks(s, rows)
                if missing:
                    raise CorruptStoreError(
                        f"{checker.describe(s)}: inner chunks {missing[:5]} missing for committed rows"
                    )
            except CorruptStoreError as exc:
                report.errors.append(str(exc))
                bad.add((name, s))
    return bad


def verify_store(reader: StoreReader, *, progress: bool = False, block_rows: int | None = None) -> VerifyReport:
    """Check every committed shard, the ids and the metadata of the store ``reader`` reads.

    Args:
        reader: the store's reader (only committed rows are checked).
        progress: tqdm progress bar over the rows.
        block_rows: rows read at once (rounded to whole shards; default one shard).

    Returns:
        :class:`VerifyReport`; problems are collected, not raised.
    """
    from tqdm.auto import tqdm

    state = reader.state
    where = state.location.describe
    n = state.committed
    shard = reader.shard_rows
    report = VerifyReport(path=where(), nrows=n, shards=-(-n // shard))
    _leftovers(reader, report)
    bad_shards = _check_shards(reader, report)
    prev_last = -1
    increasing = True
    id_parts: list[np.ndarray] = []
    max_id = -1
    positions = reader.ids_are_positions
    nsources = len(state.config.source_names)
    rows = int(block_rows or shard)
    rows = max(shard, rows // shard * shard)
    with tqdm(total=n, unit="rows", unit_scale=True, disable=not progress, leave=False) as bar:
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            shards_here = range(lo // shard, (hi - 1) // shard + 1)
            for name in state.files.arrays:
                if any((name, s) in bad_shards for s in shards_here):
                    continue
                try:
                    values = reader.read_array(name, lo, hi)
                except CorruptStoreError as exc:
                    report.errors.append(str(exc))
                    bad_shards.update((name, s) for s in shards_here)
                    continue
                if name == "ids":
                    if values.size and values.min() < 0:
                        report.errors.append(f"{where('ids')}: negative id {int(values.min())}")
                    if positions and not np.array_equal(values, np.arange(lo, hi)):
                        report.errors.append(
                            f"{where('zarr.json')}: says ids equal positions, but rows {lo}..{hi - 1} differ"
                        )
                    if values.size:
                        max_id = max(max_id, int(values.max()))
                        if increasing and (values[0] <= prev_last or (np.diff(values) <= 0).any()):
                            increasing = False
                        prev_last = int(values[-1])
                    id_parts.append(values)
                elif name == "source" and values.size and values.max() >= nsources:
                    report.errors.append(
                        f"{where('source')}: value {int(values.max())} is not a source index (0..{nsources - 1})"
                    )
            bar.update(hi - lo)
    dup = first_duplicate(np.concatenate(id_parts)) if id_parts and not increasing else None
    next_id = int(state.meta.get("next_id", 0))
    if dup is not None:
        report.errors.append(f"{where('ids')}: duplicate id {dup}")
    elif max_id >= next_id:
        report.errors.append(
            f"{where('zarr.json')}: next_id {state.meta.get('next_id')} is not above the largest id {max_id}"
        )
    return report
