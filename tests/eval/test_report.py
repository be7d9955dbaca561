"""hashsearch.eval.report and ``hashsearch eval``: the pipeline on real Zarr datasets, the report folder."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hashsearch.eval.figures import rgb_bands, to_display
from hashsearch.eval.report import _strip_rows, evaluate, evaluate_and_report
from hashsearch.eval.results import EvalConfig, load_results

pytest.importorskip("matplotlib")
pytest.importorskip("torch")  # datasets are opened through the training adapters

FAST = EvalConfig(embedding="pca", progress=False, ks=(1, 10), strip_queries=2, strip_results=4)


def check_report_folder(folder: Path) -> None:
    """Every figure and link of report.html and report.md exists; embedded images are PNGs."""
    page = (folder / "report.html").read_text()
    # either quote style: an attribute written with double quotes must not escape the check
    sources = [m[1] for m in re.findall(r"""<img[^>]*\ssrc=(['"])(.+?)\1""", page)]
    assert sources, "report.html shows no figure"
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:40]
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for _, href in re.findall(r"""\shref=(['"])(.+?)\1""", page):
        assert (folder / href).is_file(), href
    md = (folder / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(sources)
    for rel in links:
        assert (folder / rel).is_file(), rel


def test_class_protocol_with_perfect_codes(class_dataset, oracle, tmp_path):
    runs, report = evaluate_and_report(oracle, class_dataset, tmp_path / "rep", config=FAST)
    (run,) = runs
    assert run.protocol == "class"  # the dataset's task
    assert run.dataset["ms"]["bands"] == ["blue", "green", "red", "nir"]
    assert run.dataset["train_size"] == 36 and run.dataset["test_size"] == 12
    for name in ("PAN->MS", "MS->PAN"):
        res = run.directions[name]
        assert res.map == 1.0 and res.map_tie_aware == pytest.approx(1.0)
        assert res.database_size == 36 and res.num_queries == 12
        assert res.feature_map == pytest.approx(1.0) and res.quantization_gap == pytest.approx(0.0)
    assert report == tmp_path / "rep" / "report.html"
    check_report_folder(tmp_path / "rep")
    assert {"embedding", "strips PAN->MS", "strips MS->PAN"} <= set(run.figures)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "MAP by code length" in md and "Quantization gap" in md
    assert not any("true colour" in n for n in run.notes)  # red/green/blue are named
    (back,) = load_results(tmp_path / "rep")
    assert back.directions["PAN->MS"].map == 1.0 and back.figures == run.figures


def test_instance_protocol_with_distractors(instance_dataset, oracle, tmp_path):
    runs, _ = evaluate_and_report(oracle, instance_dataset, tmp_path / "rep", config=FAST.replace(distractors=True))
    (run,) = runs
    assert run.protocol == "instance"
    head = run.headline()
    assert set(head) == {"recall@1_pan2ms", "recall@10_pan2ms", "mrr_pan2ms",
                         "recall@1_ms2pan", "recall@10_ms2pan", "mrr_ms2pan"}
    assert all(v == 1.0 for v in head.values())
    assert run.directions["PAN->MS"].database_size == 48  # 12 test pairs + 36 distractors
    check_report_folder(tmp_path / "rep")
    assert (tmp_path / "rep" / "figures" / "recall_pan2ms.png").is_file()
    assert "Instance matching" in (tmp_path / "rep" / "report.md").read_text()


def test_strips_mark_wrong_results(class_dataset, oracle):
    run, art = evaluate(oracle, class_dataset, config=FAST)
    setup = art.setups["PAN->MS"]
    rows = _strip_rows(run, art, setup, FAST.replace(strip_results=20), rgb=(2, 1, 0))
    assert len(rows) == 2
    for row in rows:
        # perfect codes: the training pairs of the query's class come first, then the wrong ones
        n_rel = int(np.sum(setup.db_keys == row["query_key"]))
        assert 0 < n_rel < 20
        assert row["correct"] == [True] * n_rel + [False] * (20 - n_rel)
        assert row["query"].ndim == 2 and row["results"][0].shape == (8, 8, 3)


def test_checkpoint_evaluation_and_cli(tiny_checkpoint, class_dataset, tmp_path):
    from hashsearch.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["eval", str(tiny_checkpoint), "--data", str(class_dataset), "--out", str(out), "--embedding", "pca",
            "--ks", "1,10", "--strips", "1", "--strip-results", "3", "--no-progress", "--threads", "1", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["report"] == str(out / "report.html")
    (row,) = doc["runs"]
    assert row["name"] == "SIDHCNN" and row["bits"] == 16 and row["protocol"] == "class"
    assert 0.0 < row["map_pan2ms"] <= 1.0 and 0.0 < row["map_ms2pan"] <= 1.0
    check_report_folder(out)
    (run,) = load_results(out)
    assert run.model["checkpoint_sha256"] and run.directions["PAN->MS"].feature_map is not None
    # merging two report folders into one
    merged = tmp_path / "merged"
    result = runner.invoke(app, ["eval", "--from-results", str(out), "--from-results", str(out),
                                 "--out", str(merged), "--json"])
    assert result.exit_code == 0, result.output
    assert len(load_results(merged)) == 2
    check_report_folder(merged)


def test_cli_errors(tmp_path, class_dataset):
    from hashsearch.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "nothing to evaluate" in result.output
    result = runner.invoke(app, ["eval", "cca", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "--data" in result.output
    result = runner.invoke(app, ["eval", "cca", "--data", str(class_dataset), "--ks", "a,b"])
    assert result.exit_code == 1 and "comma-separated integers" in result.output
    result = runner.invoke(app, ["eval", str(tmp_path / "missing"), "--data", str(class_dataset),
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "error:" in result.output
    result = runner.invoke(app, ["eval", "--from-results", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "no results.json" in result.output


@pytest.mark.slow
def test_cca_baseline_fitted_at_two_lengths(class_dataset, tmp_path):
    runs, _ = evaluate_and_report("cca", class_dataset, tmp_path / "rep", bits=[8, 16], config=FAST)
    assert [(r.name, r.bits) for r in runs] == [("CCA-ITQ", 8), ("CCA-ITQ", 16)]
    assert all(r.directions["PAN->MS"].feature_map is not None for r in runs)
    check_report_folder(tmp_path / "rep")


def test_rgb_bands_from_names():
    assert rgb_bands({"bands": ["blue", "green", "red", "nir"]}) == ((2, 1, 0), None)
    assert rgb_bands({"bands": ["B02", "B03", "B04", "B08"]}) == ((2, 1, 0), None)
    assert rgb_bands({"bands": ["coastal", "blue", "green", "yellow", "red", "red edge", "nir1", "nir2"]}) == \
        ((4, 2, 1), None)
    idx, note = rgb_bands({"bands": ["b1", "b2", "b3"]})
    assert idx is None and "no MS band named 'red'" in note
    assert rgb_bands({"bands": ["a", "b", "c"], "rgb": [0, 1, 2]}) == ((0, 1, 2), None)
    assert rgb_bands({"bands": ["a", "b"], "rgb": [0, 1, 5]})[0] is None
    assert rgb_bands(None)[0] is None


def test_to_display_stretches_each_band():
    img = np.stack([np.arange(64.0).reshape(8, 8) * s for s in (1, 10, 100)])
    rgb = to_display(img, (2, 1, 0))
    assert rgb.shape == (8, 8, 3) and rgb.min() == 0.0 and rgb.max() == 1.0
    # every band shows the same after its own stretch
    np.testing.assert_allclose(rgb[..., 0], rgb[..., 2])
    assert to_display(img[:1]).shape == (8, 8)


def test_colour_levels_keep_the_balance_between_bands():
    from hashsearch.eval.figures import colour_levels

    # band b of every image is 10 + b * 20 + its pixel ramp: dark levels differ, the ramps do not
    ramp = np.arange(64.0).reshape(8, 8)
    images = [np.stack([10 + b * 20 + ramp * k for b in range(3)]) for k in (1, 2)]
    offsets, gain = colour_levels(images, (0, 1, 2))
    np.testing.assert_allclose(offsets, np.percentile(np.stack(images), 2, axis=(0, 2, 3)))
    bright, dim = (to_display(im, (0, 1, 2), levels=(offsets, gain)) for im in images[::-1])
    # the offsets remove each band's dark level: the three channels show alike
    np.testing.assert_allclose(bright[..., 0], bright[..., 2])
    # one stretch for all images: the dimmer image stays dimmer
    assert dim.mean() < bright.mean() and bright.max() == 1.0


def test_write_report_over_code_lengths(tmp_path):
    from hashsearch.eval.protocols import EncodedSplits, evaluate_encoded
    from hashsearch.eval.report import write_report
    from hashsearch.eval.results import EvalRun

    rng = np.random.default_rng(0)
    runs = []
    for nbits in (8, 16, 32):
        labels = {"train": rng.integers(0, 3, 40), "test": rng.integers(0, 3, 10)}
        codes = {s: {src: rng.integers(0, 256, (labels[s].size, nbits // 8), dtype=np.uint8) for src in ("pan", "ms")}
                 for s in labels}
        results, _ = evaluate_encoded(EncodedSplits(nbits, codes, labels), "class", FAST)
        runs.append(EvalRun(name="random", method="random", bits=nbits, protocol="class", dataset={"name": "toy"},
                            model={}, config=FAST.to_dict(), directions=results))
    report = write_report(runs, tmp_path / "rep")
    check_report_folder(tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    # one row per method, a column per direction and length
    assert "| Method | PAN->MS l=8 | PAN->MS l=16 | PAN->MS l=32 | MS->PAN l=8 |" in md
    assert (tmp_path / "rep" / "figures" / "precision_radius2.png").is_file()
    assert report.name == "report.html" and "hashsearch evaluation: toy" in report.read_text()


def test_dsrsid_file_with_reader_options(tmp_path, oracle):
    pytest.importorskip("h5py")
    from hashsearch.data.fake import write_fake_dsrsid

    path = write_fake_dsrsid(tmp_path / "dsrsid.mat", per_class=5, n_classes=8, pan_size=32, ms_size=8)
    with pytest.raises(ValueError, match="too few"):  # the paper's 625 test pairs per class
        evaluate_and_report(oracle, path, tmp_path / "x", config=FAST)
    runs, _ = evaluate_and_report(oracle, path, tmp_path / "rep", config=FAST, reader_options={"test_per_class": 2})
    (run,) = runs
    assert run.protocol == "class" and run.dataset["test_size"] == 16 and run.dataset["train_size"] == 24
    assert run.dataset["classes"][0] == "aquafarm" and run.dataset["ms"]["bands"] == ["blue", "green", "red", "nir"]
    assert run.directions["MS->PAN"].map == 1.0
    check_report_folder(tmp_path / "rep")


def test_instance_strips_say_where_the_pair_is(instance_dataset, oracle):
    run, art = evaluate(oracle, instance_dataset, config=FAST.replace(distractors=True))
    rows = _strip_rows(run, art, art.setups["MS->PAN"], FAST, rgb=None)
    for row in rows:
        # perfect codes: the pair is alone at distance 0, first, and the only right result
        assert row["query_title"].endswith("pair at rank 1")
        assert row["correct"] == [True, False, False, False]
        assert row["titles"][0] == "d=0 pair"


def test_model_with_packed_codes_only_has_no_gap(class_dataset, tmp_path):
    from hashsearch.packing import pack

    class CodesOnly:
        name = "codes-only"
        bits = 16

        def encode(self, images, source):
            labels = np.array([int(images[i]["label"]) for i in range(len(images))])
            return pack(((labels[:, None] >> np.arange(16)) & 1).astype(np.uint8))

    runs, _ = evaluate_and_report(CodesOnly(), class_dataset, tmp_path / "rep", config=FAST.replace(figures=False))
    (run,) = runs
    assert run.directions["PAN->MS"].map == 1.0 and run.directions["PAN->MS"].feature_map is None
    assert any("no real-valued features" in n for n in run.notes)
    assert "Quantization gap" not in (tmp_path / "rep" / "report.md").read_text()
    with pytest.raises(TypeError, match="cannot evaluate"):
        evaluate_and_report(object(), class_dataset, tmp_path / "x", config=FAST)
