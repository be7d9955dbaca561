"""``hashsearch info`` and ``hashsearch demo engine`` from the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import hashsearch
from hashsearch.cli import app

runner = CliRunner()


def test_info_reports_backends_and_simd():
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["version"] == hashsearch.__version__
    assert info["backends"] == hashsearch.available_backends()
    assert info["auto_backend"] == info["backends"][0]
    assert info["auto_backend"] != "cuda" and "never" in info["cuda_auto"]
    assert info["simd_level"] == hashsearch.simd_level()
    assert set(info["extras"]) == {"train", "data", "plot"}


def test_demo_runs_small_and_checks_itself():
    result = runner.invoke(app, ["demo", "engine", "--n", "3000", "--nq", "20", "--k", "4", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "found their source code: 100.0%" in result.stdout
    assert "identical distances: True" in result.stdout


def test_demo_json_and_errors():
    result = runner.invoke(app, ["demo", "engine", "--n", "500", "--nq", "5", "--no-faiss", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["found_source"] == 1.0
    bad = runner.invoke(app, ["demo", "engine", "--nbits", "12", "--no-faiss"])
    assert bad.exit_code == 1
    assert bad.stderr.strip().startswith("error: nbits must be a positive multiple of 8")
