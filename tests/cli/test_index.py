"""``hashsearch index create | add | info | search | verify | unlock`` through the real Typer app."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hashsearch import BinaryIndex, CodeStore
from hashsearch.cli import app
from hashsearch.synthetic import random_codes, tied_codes


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(app, [str(a) for a in args])
        if ok:
            assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result

    return invoke


def as_json(result) -> dict:
    return json.loads(result.stdout)


def test_create_add_info_search_verify(tmp_path, run):
    store = tmp_path / "db.zarr"
    codes = tied_codes(3000, 64, 40, seed=40)
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "ids.npy", np.arange(3000) * 2)
    np.save(tmp_path / "labels.npy", np.arange(3000) % 8)
    real = np.random.default_rng(0).standard_normal((100, 64))  # one value per bit: packed on the way
    np.save(tmp_path / "real.npy", real)
    info = as_json(
        run("index", "create", store, "--nbits", "64", "--shard-rows", "512", "--chunk-rows", "128",
            "--labels", "--source", "--model", "sidhcnn-mul", "--checkpoint", "abc123", "--sensor", "GF-1 MS", "--json")
    )
    assert info["nbits"] == 64 and info["nrows"] == 0 and info["encoder"]["sensor"] == "GF-1 MS"
    added = as_json(
        run("index", "add", store, tmp_path / "codes.npy", "--ids", tmp_path / "ids.npy",
            "--labels", tmp_path / "labels.npy", "--source-name", "ms", "--batch-rows", "1000", "--json")
    )
    assert added == {"store": str(store), "added": 3000, "ntotal": 3000}
    np.save(tmp_path / "l100.npy", np.zeros(100, int))
    run("index", "add", store, tmp_path / "real.npy", "--labels", tmp_path / "l100.npy", "--source-name", "pan")
    info = as_json(run("index", "info", store, "--json"))
    assert info["nrows"] == 3100 and info["shard_rows"] == 512 and info["source_names"] == ["pan", "ms"]
    text = run("index", "info", store).stdout
    assert "nrows: 3100" in text
    s = CodeStore.open(store)
    from hashsearch import pack

    np.testing.assert_array_equal(s.read_codes(3000, 3100), pack(real))
    assert list(s.read_source(2999, 3001, names=True)) == ["ms", "pan"]

    queries = tied_codes(40, 64, 40, seed=41)
    np.save(tmp_path / "q.npy", queries)
    want = BinaryIndex.from_store(s, backend="numpy").search(queries, 7)
    search_args = ("index", "search", store, tmp_path / "q.npy", "-k", "7", "-o", tmp_path / "r.zarr")
    report = as_json(run(*search_args, "--query-block", "16", "--json"))
    assert report["complete"] and report["blocks"] == 3 and report["comparisons"] == 40 * 3100
    from hashsearch.search.batch import load_results

    got = load_results(tmp_path / "r.zarr")
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    resumed = as_json(run(*search_args, "--query-block", "16", "--json"))
    assert resumed["skipped"] == 3 and resumed["computed"] == 0
    run("index", "search", store, tmp_path / "q.npy", "-k", "7", "-o", tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz") as npz:
        np.testing.assert_array_equal(npz["D"], want[0])
        np.testing.assert_array_equal(npz["I"], want[1])

    verify = as_json(run("index", "verify", store, "--json"))
    assert verify["ok"] and verify["nrows"] == 3100 and verify["errors"] == []


def test_add_from_another_store(tmp_path, run):
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    codes = random_codes(1000, 32, seed=42)
    with CodeStore.create(src, 32, shard_rows=256, chunk_rows=64, with_source=True) as s:
        s.append(codes, ids=np.arange(1000) + 5000, source=np.arange(1000) % 2)
    run("index", "create", dst, "--nbits", "32", "--shard-rows", "128", "--chunk-rows", "64", "--source")
    run("index", "add", dst, src)
    d = CodeStore.open(dst)
    np.testing.assert_array_equal(d.read_codes(), codes)
    np.testing.assert_array_equal(d.read_ids(), np.arange(1000) + 5000)
    np.testing.assert_array_equal(d.read_source(), np.arange(1000) % 2)
    run("index", "add", dst, src, "--new-ids", "--source-name", "pan")
    assert len(CodeStore.open(dst)) == 2000


def test_cli_errors_exit_1_with_one_line(tmp_path, run):
    store = tmp_path / "db.zarr"
    run("index", "create", store, "--nbits", "64", "--shard-rows", "256", "--chunk-rows", "64")
    np.save(tmp_path / "narrow.npy", random_codes(10, 32, seed=1))
    np.save(tmp_path / "codes.npy", random_codes(10, 64, seed=1))
    other = tmp_path / "other.zarr"
    run("index", "create", other, "--nbits", "32")
    cases = [
        (("index", "create", store, "--nbits", "64"), "already exists"),
        (("index", "create", tmp_path / "x.zarr", "--nbits", "12"), "multiple of 8"),
        (("index", "add", store, tmp_path / "narrow.npy"), "fits neither"),
        (("index", "add", store, tmp_path / "missing.npy"), "not found"),
        (("index", "add", store, other), "cannot go into"),
        (("index", "add", store, tmp_path / "codes.npy", "--labels", tmp_path / "codes.npy"), "shape"),
        (("index", "info", tmp_path / "nope.zarr"), "no code store"),
        (("index", "search", store, tmp_path / "codes.npy", "-o", tmp_path / "r.txt"), ".zarr"),
        (("index", "search", store, tmp_path / "narrow.npy", "-o", tmp_path / "r.zarr"), "fits neither"),
        (("index", "search", store, tmp_path / "codes.npy", "-o", tmp_path / "r.zarr", "--memory-limit", "10"),
         "too small"),
        (("index", "search", store, tmp_path / "codes.npy", "-o", tmp_path / "s.zarr", "--memory-limit", "lots"),
         "cannot parse memory size"),
    ]
    for args, message in cases:
        result = run(*args, ok=False)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, result.stderr)
    assert len(CodeStore.open(store)) == 0  # nothing half-added


def test_verify_reports_damage(tmp_path, run):
    store = tmp_path / "db.zarr"
    with CodeStore.create(store, 64, shard_rows=256, chunk_rows=64) as s:
        s.append(random_codes(1000, 64, seed=43))
    shard = store / "codes" / "c" / "2" / "0"
    raw = bytearray(shard.read_bytes())
    raw[10] ^= 0xFF
    shard.write_bytes(raw)
    result = run("index", "verify", store, ok=False)
    assert result.exit_code == 1
    assert str(shard) in result.stdout and str(shard) in result.stderr
    report = json.loads(run("index", "verify", store, "--json", ok=False).stdout)
    assert not report["ok"] and str(shard) in report["errors"][0]


def test_locked_store_and_unlock(tmp_path, run):
    store = tmp_path / "db.zarr"
    np.save(tmp_path / "codes.npy", random_codes(10, 64, seed=44))
    with CodeStore.create(store, 64):
        result = run("index", "add", store, tmp_path / "codes.npy", ok=False)
        assert result.exit_code == 1 and "locked for writing by pid" in result.stderr
        assert "error: " in run("index", "unlock", store, ok=False).stderr  # a live writer is not unlocked
    removed = as_json(run("index", "unlock", store, "--json"))
    assert removed["removed"] is None


def test_search_memory_limit_default_and_meaning(tmp_path, run):
    # One default (shown in the help) and one meaning: the limit of one query block's search,
    # so the smallest limit CodeStore.search accepts for those queries runs the CLI search too.
    import re

    assert "512 MiB" in run("index", "search", "--help").stdout
    store = tmp_path / "db.zarr"
    codes = random_codes(2000, 64, seed=45)
    with CodeStore.create(store, 64, shard_rows=256, chunk_rows=64) as s:
        s.append(codes)
    np.save(tmp_path / "q.npy", codes[:50])
    with pytest.raises(ValueError, match="too small") as info:
        CodeStore.open(store).search(codes[:50], 5, memory_limit=1)
    need = int(re.search(r"at least (\d+) bytes", str(info.value)).group(1))
    base = ("index", "search", store, tmp_path / "q.npy", "-k", "5", "--query-block", "50")
    report = as_json(run(*base, "-o", tmp_path / "a.zarr", "--memory-limit", str(need), "--json"))
    assert report["complete"] and report["blocks"] == 1
    refused = run(*base, "-o", tmp_path / "b.zarr", "--memory-limit", str(need - 1), ok=False)
    assert refused.exit_code == 1 and f"at least {need} bytes" in refused.stderr
