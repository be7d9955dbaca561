"""Checkpoint files: atomic writes, checked reads (format, version, foreign or damaged files), RNG states."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import pytest
import torch

from hashsearch.training import checkpoint as ckpt
from hashsearch.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)


def _state(**extra):
    return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "epoch": 3,
            "weights": torch.arange(6.0).reshape(2, 3), **extra}


def test_round_trip_adds_path_and_sha256(tmp_path):
    path = save_checkpoint(_state(), tmp_path / "run" / "last.pt")  # the folder is created
    assert path == tmp_path / "run" / "last.pt" and path.is_file()
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["weights"], torch.arange(6.0).reshape(2, 3))
    assert state["path"] == str(path) and state["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_checkpoint(tmp_path / "run")["sha256"] == state["sha256"]  # a folder means its last.pt
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["last.pt"]  # no temporary file left


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(_state(), tmp_path / "last.pt")
    before = path.read_bytes()

    def broken_save(obj, fh):
        fh.write(b"partial")
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_state(epoch=4), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_foreign_damaged_and_other_version_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)  # a folder without last.pt
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a hashsearch SIDHCNN checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a hashsearch SIDHCNN checkpoint"):
        load_checkpoint(tmp_path / "list.pt")
    save_checkpoint(_state(format_version=CHECKPOINT_VERSION + 1), tmp_path / "newer.pt")
    with pytest.raises(ValueError, match=f"checkpoint version {CHECKPOINT_VERSION + 1}"):
        load_checkpoint(tmp_path / "newer.pt")
    (tmp_path / "junk.pt").write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    good = save_checkpoint(_state(), tmp_path / "cut.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(ValueError, match=r"cut\.pt is not a readable"):
        load_checkpoint(tmp_path / "cut.pt")


def test_rng_states_survive_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.standard_normal()  # leave a cached Gaussian in NumPy's legacy state
    save_checkpoint(_state(rng=rng_state()), tmp_path / "last.pt")
    expected = (torch.rand(3), np.random.standard_normal(3), [random.random() for _ in range(3)])
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng(load_checkpoint(tmp_path)["rng"])  # read back with weights_only=True
    got = (torch.rand(3), np.random.standard_normal(3), [random.random() for _ in range(3)])
    assert torch.equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]
