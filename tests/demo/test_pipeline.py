"""The product demo (``hashsearch demo``): tiny synthetic runs end to end, reuse, --fresh, missing data;
a slow test on the real data.

What is checked against independent facts: the archive stores hold the dataset's
training split (ids = sample indices, labels = the dataset's), the example results'
classes are those the store records for the returned ids, the report's images exist
and decode, and a re-run reuses every piece (same checkpoint bytes, same MAP).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hashsearch.cli import app

torch = pytest.importorskip("torch")

from hashsearch.demo.pipeline import DemoConfig, DemoDataMissing, run_demo  # noqa: E402

TINY = {"synthetic": True, "synthetic_samples": 48, "synthetic_pan_size": 32, "synthetic_ms_size": 8,
        "synthetic_classes": 4, "bits": 16, "epochs": 2, "batch_size": 16, "threads": 1, "baselines": (),
        "examples": 2, "k": 4, "embedding": "pca", "progress": False}
TINY_CLI = ["--synthetic", "--synthetic-samples", "48", "--synthetic-pan-size", "32", "--synthetic-ms-size", "8",
            "--synthetic-classes", "4", "--bits", "16", "--epochs", "2", "--batch-size", "16", "--threads", "1",
            "--baselines", "", "--examples", "2", "-k", "4", "--no-progress"]


@pytest.fixture(autouse=True)
def _restore_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def _check_archive(outcome):
    from hashsearch.data import open_dataset
    from hashsearch.store import CodeStore

    train = open_dataset(outcome.dataset, "train")
    for src in ("pan", "ms"):
        with CodeStore.open(outcome.stores[src]) as store:
            np.testing.assert_array_equal(store.read_ids(), train.indices)
            np.testing.assert_array_equal(store.read_labels(), train.labels)
            info = store.encoder_info
            assert info["source"] == src and info["dataset"]["ids"] == "sample_index"
            assert info["pixel_stats"] == train.stats
            assert store.verify().ok


def _check_examples(outcome):
    from hashsearch.data import open_dataset

    everything = open_dataset(outcome.dataset, "all")
    classes, labels = everything.classes, np.asarray(everything.labels)
    test_indices = set(open_dataset(outcome.dataset, "test").indices.tolist())
    for direction in ("PAN->MS", "MS->PAN"):
        rows = outcome.examples[direction]
        assert len(rows) == 2
        for row in rows:
            assert row["query_index"] in test_indices
            assert row["class"] == classes[labels[row["query_index"]]]
            assert len(row["results"]) == 4 and all(c in classes for c in row["results"])
            assert row["distances"] == sorted(row["distances"])
            same = sum(c == row["class"] for c in row["results"])
            assert row["precision"] == same / 4
        assert Path(outcome.strips[direction]).read_bytes()[:4] == b"\x89PNG"


def _check_report(path: Path):
    text = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert images, "the summary shows the example strips"
    for data in images:
        assert base64.b64decode(data)[:4] == b"\x89PNG"
    for link in re.findall(r"href='([^']+)'", text):
        full = path.parent / link
        assert full.is_file(), link
        assert "<img" in full.read_text()  # the evaluation report has its figures


def test_synthetic_demo_end_to_end_then_reused_then_fresh(tmp_path):
    config = DemoConfig(workdir=tmp_path / "w", **TINY)
    first = run_demo(config)
    (o,) = first.outcomes
    assert o.name == "synthetic" and not any(o.reused.values())
    assert o.sizes["train"] + o.sizes["test"] == 48
    assert set(o.maps) == {"SIDHCNN"}
    for direction in ("PAN->MS", "MS->PAN"):
        assert 0.0 < o.maps["SIDHCNN"][direction] <= 1.0
        assert o.chance[direction] == pytest.approx(0.25, abs=0.05)  # 4 balanced classes
    _check_archive(o)
    _check_examples(o)
    _check_report(Path(first.report))
    assert json.loads((tmp_path / "w" / "demo.json").read_text())["report"] == first.report

    ckpt = Path(o.checkpoint)
    before = (ckpt.read_bytes(), ckpt.stat().st_mtime_ns)
    stages = []
    second = run_demo(config, stage=stages.append)
    (o2,) = second.outcomes
    assert all(o2.reused[s] for s in ("dataset", "train", "archive", "evaluate"))
    assert (ckpt.read_bytes(), ckpt.stat().st_mtime_ns) == before
    assert o2.maps == o.maps
    assert any("train: reused" in line for line in stages)

    third = run_demo(DemoConfig(workdir=tmp_path / "w", fresh=True, **TINY))
    assert not any(third.outcomes[0].reused.values())
    assert third.outcomes[0].maps == o.maps  # seeded: the same run again


def test_cli_demo_prints_the_maps_and_the_report_path_last(tmp_path):
    runner = CliRunner()
    work = tmp_path / "w"
    result = runner.invoke(app, ["demo", "--workdir", str(work), *TINY_CLI])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert Path(lines[-1]) == work / "report.html" and Path(lines[-1]).is_file()
    assert "SYNTHETIC run" in result.stdout
    assert re.search(r"SIDHCNN\s+\d\.\d{4}\s+\d\.\d{4}", result.stdout)
    assert "PAN->MS examples (hashsearch.Retriever" in result.stdout
    assert "[synthetic] train ..." in result.stderr  # stage lines on stderr
    command = next(line for line in lines if "query it: " in line).split("query it: ")[1].split()
    assert command[:2] == ["hashsearch", "query"]
    shown = runner.invoke(app, [*command[1:], "-k", "2", "--json"])  # the printed command runs as it is
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["target"] == "ms"
    again = runner.invoke(app, ["demo", "--workdir", str(work), *TINY_CLI, "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert all(report["outcomes"][0]["reused"][s] for s in ("dataset", "train", "archive", "evaluate"))


def test_query_command_works_on_the_demo_archive(tmp_path):
    from hashsearch.data import open_dataset

    report = run_demo(DemoConfig(workdir=tmp_path / "w", **TINY))
    (o,) = report.outcomes
    test = open_dataset(o.dataset, "test")
    np.save(tmp_path / "q.npy", np.asarray(test[0]["pan"]))
    result = CliRunner().invoke(app, ["query", "--model", str(Path(o.checkpoint).parent), "--store", o.stores["pan"],
                                      "--store", o.stores["ms"], str(tmp_path / "q.npy"), "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert "standard deviations" not in result.stderr  # the store's pixel statistics normalise the query
    out = json.loads(result.stdout)
    hits = out["queries"][0]["results"]
    classes = open_dataset(o.dataset, "all").classes
    labels = np.asarray(open_dataset(o.dataset, "all").labels)
    assert out["target"] == "ms" and len(hits) == 3
    for hit in hits:
        assert hit["index"] == hit["id"] and hit["class"] == classes[labels[hit["index"]]]


def test_without_data_it_says_where_and_offers_synthetic(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    with pytest.raises(DemoDataMissing) as err:
        run_demo(DemoConfig(workdir=tmp_path / "w", data_root=empty))
    message = str(err.value)
    assert str(empty) in message and "eurosat-ms/" in message and "nc-landsat7/" in message
    assert "hashsearch demo --synthetic" in message
    assert not (tmp_path / "w").exists()  # nothing built, nothing switched to silently
    result = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path / "w"), "--data-root", str(empty)])
    assert result.exit_code == 2
    assert "--synthetic" in result.stderr and "HASHSEARCH_DATA" in result.stderr


def test_a_missing_dataset_is_skipped_with_the_reason_not_replaced(tmp_path):
    from hashsearch.demo.pipeline import _select_datasets

    (tmp_path / "eurosat-ms").mkdir()
    names, skipped, root = _select_datasets(DemoConfig(data_root=tmp_path))
    assert names == ["eurosat-ms"] and root == tmp_path
    assert skipped == {"nc-landsat7": f"no nc-landsat7/ folder under {tmp_path}"}
    names, skipped, _ = _select_datasets(DemoConfig(data_root=tmp_path, synthetic=True))
    assert names == ["synthetic"] and skipped == {}


def test_bad_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown demo dataset"):
        DemoConfig(datasets=("dsrsid",))
    with pytest.raises(ValueError, match="baselines"):
        DemoConfig(baselines=("pca",))
    with pytest.raises(ValueError, match="k must be >= 1"):
        DemoConfig(k=0)


@pytest.mark.slow
@pytest.mark.realdata
def test_real_eurosat_demo_beats_chance(tmp_path):
    from hashsearch._paths import data_root

    if not (data_root() / "eurosat-ms").is_dir():
        pytest.skip(f"no eurosat-ms under {data_root()} (set HASHSEARCH_DATA)")
    report = run_demo(DemoConfig(workdir=tmp_path / "w", datasets=("eurosat-ms",), epochs=30, threads=2,
                                 progress=False))
    (o,) = report.outcomes
    assert o.sizes == {"train": 375, "test": 94}
    for direction in ("PAN->MS", "MS->PAN"):
        assert o.maps["SIDHCNN"][direction] > 1.5 * o.chance[direction]
        assert set(o.maps) == {"SIDHCNN", "CCA-ITQ", "SCM"}
    _check_archive(o)
    _check_report(Path(report.report))
