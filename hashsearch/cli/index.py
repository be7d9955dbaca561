"""``hashsearch index ...``: create, fill, inspect, search and check code stores.

Commands (each has ``--json`` for one JSON object on stdout; errors print one
``error: ...`` line on stderr and exit with status 1):

- ``create STORE --nbits 64`` — a new, empty store (``--labels``, ``--source``,
  encoder provenance, layout).
- ``add STORE SOURCE`` — append codes from a ``.npy`` file (packed uint8, or
  real-valued / ±1 / 0-1 codes with one column per bit, packed on the way) or
  from another store (ids, labels and source are copied).
- ``info STORE`` — metadata and sizes.
- ``search STORE QUERIES -k 10 -o OUT`` — exact k-NN of the queries (``.npy``
  or a store) in bounded memory; ``OUT.zarr`` is written block by block and a
  rerun resumes it, ``OUT.npz`` holds ``D`` and ``I``. ``--workers N`` or
  ``--scheduler ADDRESS`` runs it on Dask.
- ``verify STORE`` — read every shard, check checksums, ids and metadata
  (status 1 when a problem is found).
- ``unlock STORE`` — remove the lock record a dead writer left on object storage.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer

from hashsearch.cli._common import cli_errors, emit
from hashsearch.search.outofcore import DEFAULT_MEMORY_LIMIT, describe_bytes

__all__ = ["index_app", "register"]

index_app = typer.Typer(
    name="index",
    help="Create, fill, inspect, search and verify code stores (sharded Zarr v3).",
    no_args_is_help=True,
)

_JSON = typer.Option(False, "--json", help="Print one JSON object.")
_PROGRESS = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr (when it is a terminal).")


def register(app: typer.Typer) -> None:
    """Add the ``index`` command group to ``app``."""
    app.add_typer(index_app, name="index")


def _show_progress(progress: bool) -> bool:
    return progress and sys.stderr.isatty()


def _is_store(path: str) -> bool:
    p = Path(path)
    return "://" in path or (p.is_dir() and (p / "zarr.json").exists())


def _load_npy(path: str, what: str) -> Any:
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if p.suffix != ".npy":
        raise ValueError(f"{what} must be a .npy file or a code store, got {path}")
    try:
        return np.load(p, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot read as .npy ({exc})") from None


def _codes_from_array(arr: Any, nbits: int, source: str) -> Any:
    """Packed uint8 codes from a .npy array: packed already, or one column per bit."""
    import numpy as np

    from hashsearch.packing import pack

    if arr.ndim != 2:
        raise ValueError(f"{source}: expected a 2-D array of codes, got shape {arr.shape}")
    if arr.dtype == np.uint8 and arr.shape[1] == nbits // 8:
        return arr
    if arr.shape[1] == nbits:
        return pack(np.asarray(arr))
    raise ValueError(
        f"{source}: shape {arr.shape} dtype {arr.dtype} fits neither packed {nbits}-bit codes "
        f"(uint8, {nbits // 8} columns) nor one value per bit ({nbits} columns)"
    )


@index_app.command("create")
@cli_errors
def create(
    store: str = typer.Argument(..., help="Path or URL of the new store."),
    nbits: int = typer.Option(..., "--nbits", help="Bits per code (a multiple of 8)."),
    shard_rows: int = typer.Option(None, help="Rows per shard (default: about 16 MiB of codes)."),
    chunk_rows: int = typer.Option(None, help="Rows per inner chunk (default: about 1 MiB of codes)."),
    labels: bool = typer.Option(False, "--labels", help="Keep an integer label per code."),
    source: bool = typer.Option(False, "--source", help="Keep a source (sensor) per code."),
    source_names: str = typer.Option("pan,ms", help="Comma-separated source names (with --source)."),
    model: str = typer.Option(None, help="Encoder provenance: model name."),
    checkpoint: str = typer.Option(None, help="Encoder provenance: checkpoint hash."),
    sensor: str = typer.Option(None, help="Encoder provenance: sensor."),
    encoder_json: str = typer.Option(None, help="Encoder provenance as a JSON object (merged with the above)."),
    no_checksum: bool = typer.Option(False, "--no-checksum", help="Store no CRC32C per chunk."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
    as_json: bool = _JSON,
) -> None:
    """Create an empty code store."""
    from hashsearch.store import CodeStore, StoreConfig

    encoder: dict[str, Any] = {}
    if encoder_json:
        try:
            encoder.update(json.loads(encoder_json))
        except json.JSONDecodeError as exc:
            raise ValueError(f"--encoder-json is not valid JSON: {exc}") from None
    for key, value in (("model", model), ("checkpoint_sha256", checkpoint), ("sensor", sensor)):
        if value is not None:
            encoder[key] = value
    config = StoreConfig(
        checksum=not no_checksum, source_names=tuple(s.strip() for s in source_names.split(",") if s.strip())
    )
    with CodeStore.create(
        store,
        nbits,
        shard_rows=shard_rows,
        chunk_rows=chunk_rows,
        with_labels=labels,
        with_source=source,
        encoder=encoder or None,
        overwrite=overwrite,
        config=config,
    ) as s:
        info = s.info()
    emit(info, as_json)


@index_app.command("add")
@cli_errors
def add(
    store: str = typer.Argument(..., help="Store to append to."),
    source_path: str = typer.Argument(..., metavar="SOURCE", help="A .npy file of codes, or another store."),
    ids: str = typer.Option(None, help=".npy of int ids (default: consecutive after the largest)."),
    labels: str = typer.Option(None, help=".npy of int labels (stores with labels)."),
    source_name: str = typer.Option(None, "--source-name", help="Source of every added code, e.g. pan."),
    source_file: str = typer.Option(None, help=".npy of per-code source indices or names."),
    new_ids: bool = typer.Option(False, "--new-ids", help="From a store: give the codes new ids instead of theirs."),
    batch_rows: int = typer.Option(1 << 20, help="Rows appended per step."),
    progress: bool = _PROGRESS,
    as_json: bool = _JSON,
) -> None:
    """Append codes from a .npy file or from another store."""
    import numpy as np
    from tqdm.auto import tqdm

    from hashsearch._validate import check_int
    from hashsearch.errors import IncompatibleStoreError
    from hashsearch.store import CodeStore

    check_int(batch_rows, "--batch-rows")
    with CodeStore.open(store, "a") as dst:
        before = dst.ntotal
        if _is_store(source_path):
            if ids or labels or source_file:
                raise ValueError("--ids, --labels and --source-file apply to .npy input, not to a store")
            with CodeStore.open(source_path, "r") as src:
                if src.nbits != dst.nbits:
                    raise IncompatibleStoreError(
                        f"{src.location.describe('zarr.json')}: {src.nbits}-bit codes cannot go into the "
                        f"{dst.nbits}-bit store {dst.location.describe()}"
                    )
                fields = ["codes", "ids"]
                if dst.has_labels:
                    if not src.has_labels:
                        raise ValueError(f"{store} keeps labels but {source_path} has none")
                    fields.append("labels")
                if dst.has_source and source_name is None:
                    if not src.has_source:
                        raise ValueError(f"{store} keeps a source per code: pass --source-name")
                    fields.append("source")
                n = len(src)
                with tqdm(total=n, unit="codes", unit_scale=True, disable=not _show_progress(progress)) as bar:
                    for block in src.iter_blocks(max(src.config.sizes()[0], batch_rows), fields=fields):
                        src_names = None
                        if block.source is not None:
                            src_names = np.asarray(src.source_names, dtype=object)[block.source]
                        dst.append(
                            block.codes,
                            ids=None if new_ids else block.ids,
                            labels=block.labels,
                            source=source_name if source_name is not None else src_names,
                        )
                        bar.update(len(block))
        else:
            arr = _load_npy(source_path, "codes")
            n = arr.shape[0] if arr.ndim else 0
            id_arr = _load_npy(ids, "ids") if ids else None
            label_arr = _load_npy(labels, "labels") if labels else None
            src_arr = np.load(source_file, allow_pickle=False) if source_file else None
            for name, extra in (("ids", id_arr), ("labels", label_arr), ("source", src_arr)):
                if extra is not None and (extra.ndim != 1 or extra.shape[0] != n):
                    raise ValueError(f"--{name} has shape {extra.shape}, expected ({n},)")
            if id_arr is not None:
                # checked whole, so a clash or duplicate is found before anything is written
                from hashsearch._validate import as_ids

                as_ids(np.asarray(id_arr), n, "ids")
            with tqdm(total=n, unit="codes", unit_scale=True, disable=not _show_progress(progress)) as bar:
                for lo in range(0, n, batch_rows):
                    hi = min(n, lo + batch_rows)
                    codes = _codes_from_array(arr[lo:hi], dst.nbits, source_path)
                    row_source = src_arr[lo:hi] if src_arr is not None else None
                    dst.append(
                        codes,
                        ids=None if id_arr is None else np.asarray(id_arr[lo:hi]),
                        labels=None if label_arr is None else np.asarray(label_arr[lo:hi]),
                        source=source_name if source_name is not None else row_source,
                    )
                    bar.update(hi - lo)
        added = dst.ntotal - before
    emit({"store": store, "added": added, "ntotal": before + added}, as_json)


@index_app.command("info")
@cli_errors
def info(store: str = typer.Argument(..., help="Path or URL of the store."), as_json: bool = _JSON) -> None:
    """Show a store's metadata, layout and size."""
    from hashsearch.store import CodeStore

    with CodeStore.open(store, "r") as s:
        emit(s.info(), as_json)


@index_app.command("search")
@cli_errors
def search(
    store: str = typer.Argument(..., help="The database store."),
    queries: str = typer.Argument(..., help="Queries: a .npy of codes, or a store."),
    k: int = typer.Option(10, "-k", "--k", help="Neighbours per query."),
    output: str = typer.Option(..., "-o", "--output", help="Results: DIR.zarr (resumable) or FILE.npz."),
    memory_limit: str = typer.Option(
        None,
        help=f"Memory limit of one query block's search, e.g. 2GB (default {describe_bytes(DEFAULT_MEMORY_LIMIT)}).",
    ),
    query_block: int = typer.Option(None, help="Queries per block (default from the memory budget)."),
    backend: str = typer.Option("auto", help="Search backend."),
    threads: int = typer.Option(0, help="Kernel threads (0: the default)."),
    workers: int = typer.Option(0, help="Run on a LocalCluster of this many Dask workers."),
    scheduler: str = typer.Option(None, help="Run on the Dask cluster at this address."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing results."),
    progress: bool = _PROGRESS,
    as_json: bool = _JSON,
) -> None:
    """Exact k-NN of every query over a store, in bounded memory; results go to OUTPUT."""
    import numpy as np

    from hashsearch.search.batch import batch_search, load_results
    from hashsearch.store import CodeStore

    if workers and scheduler:
        raise ValueError("give --workers or --scheduler, not both")
    out = Path(output)
    if out.suffix not in (".zarr", ".npz"):
        raise ValueError(f"--output must end in .zarr (resumable Zarr group) or .npz, got {output}")
    if out.suffix == ".npz" and out.exists() and not overwrite:
        raise FileExistsError(f"{output} exists (pass --overwrite)")
    with CodeStore.open(store, "r") as db, contextlib.ExitStack() as stack:
        if _is_store(queries):
            query_set: Any = queries
        else:
            query_set = _codes_from_array(_load_npy(queries, "queries"), db.nbits, queries)
        client = None
        if workers or scheduler:
            from distributed import Client

            from hashsearch.search.distributed import local_cluster

            cluster_or_address = stack.enter_context(local_cluster(n_workers=workers)) if workers else scheduler
            client = stack.enter_context(Client(cluster_or_address))
        target = output
        if out.suffix == ".npz":  # results go to a temporary group, then into the .npz whole
            tmp_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="hashsearch-results-"))
            target = str(Path(tmp_dir) / "results.zarr")
        result = batch_search(
            db,
            query_set,
            k,
            target,
            query_block=query_block,
            memory_limit=memory_limit,
            backend=backend,
            num_threads=threads or None,
            client=client,
            overwrite=overwrite and out.suffix == ".zarr",
            progress=_show_progress(progress),
        )
        if out.suffix == ".npz":
            distances, ids = load_results(target)
            np.savez(output, D=distances, I=ids)
    report = result.to_dict()
    report["output"] = output
    emit(report, as_json)


@index_app.command("verify")
@cli_errors
def verify(
    store: str = typer.Argument(..., help="Path or URL of the store."),
    progress: bool = _PROGRESS,
    as_json: bool = _JSON,
) -> None:
    """Read every shard and check checksums, ids and metadata (exit status 1 on a problem)."""
    from hashsearch.store import CodeStore

    with CodeStore.open(store, "r") as s:
        report = s.verify(progress=_show_progress(progress))
    if as_json:
        emit(report.to_dict(), True)
    else:
        typer.echo(f"{report.path}: {report.nrows} rows in {report.shards} shards")
        for line in report.warnings:
            typer.echo(f"warning: {line}")
        for line in report.errors:
            typer.echo(f"problem: {line}")
    if not report.ok:
        typer.echo(f"error: {report.path} failed verification: {report.errors[0]}", err=True)
        raise typer.Exit(1)


@index_app.command("unlock")
@cli_errors
def unlock(store: str = typer.Argument(..., help="Path or URL of the store."), as_json: bool = _JSON) -> None:
    """Remove the write-lock record of a writer that is gone (object stores)."""
    from hashsearch.store import CodeStore

    holder = CodeStore.break_lock(store)
    emit({"store": store, "removed": holder.describe() if holder else None}, as_json)
