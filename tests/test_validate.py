"""hashsearch._validate: the input checks every entry point shares.

One exception type per kind of mistake: TypeError for a wrong kind or dtype,
ValueError for a wrong shape, width or value.
"""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch._validate import (
    MAX_NBITS,
    as_codes,
    as_ids,
    as_lookup_ids,
    check_int,
    check_k,
    check_nbits,
    check_radius,
    first_duplicate,
)


class TestCheckInt:
    @pytest.mark.parametrize("value", [1, 7, np.int32(3), np.uint64(9)])
    def test_accepts_integers_and_returns_python_int(self, value):
        out = check_int(value, "n")
        assert out == int(value) and type(out) is int

    @pytest.mark.parametrize("value", [1.0, True, np.bool_(True), "3", None, [1]])
    def test_refuses_what_is_not_an_integer(self, value):
        with pytest.raises(TypeError, match=r"^n must be an int, got "):
            check_int(value, "n")

    def test_minimum_is_inclusive_and_named(self):
        assert check_int(0, "seed", minimum=0) == 0
        with pytest.raises(ValueError, match=r"^threads must be >= 1, got 0$"):
            check_int(0, "threads")
        with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1$"):
            check_int(-1, "seed", minimum=0)

    def test_no_bound(self):
        assert check_int(-(2**70), "offset", minimum=None) == -(2**70)


class TestCheckNbits:
    @pytest.mark.parametrize("nbits", [8, 32, 64, 1024, MAX_NBITS])
    def test_multiples_of_8_up_to_the_maximum(self, nbits):
        assert check_nbits(nbits) == nbits

    @pytest.mark.parametrize("nbits", [0, -8, 7, 12, 65])
    def test_not_a_positive_multiple_of_8(self, nbits):
        with pytest.raises(ValueError, match="positive multiple of 8"):
            check_nbits(nbits)

    def test_above_the_maximum(self):
        with pytest.raises(ValueError, match=f"at most {MAX_NBITS}"):
            check_nbits(MAX_NBITS + 8)

    @pytest.mark.parametrize("nbits", [64.0, "64", True])
    def test_type(self, nbits):
        with pytest.raises(TypeError):
            check_nbits(nbits)


class TestAsCodes:
    def test_contiguous_uint8_passes_through_without_a_copy(self):
        codes = np.zeros((5, 8), dtype=np.uint8)
        assert as_codes(codes, 64) is codes

    def test_non_contiguous_is_copied_to_c_order(self):
        wide = np.arange(5 * 16, dtype=np.uint8).reshape(5, 16)
        view = wide[:, ::2]
        out = as_codes(view, 64)
        assert out.flags.c_contiguous and np.array_equal(out, view)

    def test_one_code_becomes_a_row(self):
        assert as_codes(np.ones(4, dtype=np.uint8), 32).shape == (1, 4)
        with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
            as_codes(np.ones(4, dtype=np.uint8), 32, allow_1d=False)

    def test_real_valued_input_points_to_pack(self):
        with pytest.raises(TypeError, match=r"dtype float32 \(use hashsearch.pack"):
            as_codes(np.zeros((2, 4), dtype=np.float32), 32)
        with pytest.raises(TypeError, match="dtype <U1$"):
            as_codes(np.array([["a"]]), 8)

    def test_width_names_bytes_and_bits(self):
        with pytest.raises(ValueError, match=r"have 4 bytes per code \(32 bits\), expected 8 bytes for nbits=64"):
            as_codes(np.zeros((3, 4), dtype=np.uint8), 64, name="queries")

    def test_three_dimensions(self):
        with pytest.raises(ValueError, match=r"must have shape \(n, 1\), got shape \(1, 1, 1\)"):
            as_codes(np.zeros((1, 1, 1), dtype=np.uint8), 8)


class TestKAndRadius:
    def test_k(self):
        assert check_k(np.int64(10)) == 10
        with pytest.raises(ValueError, match=r"^k must be >= 1, got 0"):
            check_k(0)
        with pytest.raises(TypeError):
            check_k(2.0)

    def test_radius_is_inclusive_and_clipped_to_nbits(self):
        assert check_radius(0, 64) == 0
        assert check_radius(1000, 64) == 64
        with pytest.raises(ValueError, match=r"radius must be >= 0, got -1"):
            check_radius(-1, 64)
        with pytest.raises(TypeError):
            check_radius(1.5, 64)


class TestIds:
    def test_as_ids(self):
        out = as_ids([5, 3, 9], 3)
        assert out.dtype == np.int64 and out.tolist() == [5, 3, 9]
        assert as_ids([], 0).shape == (0,)

    @pytest.mark.parametrize(
        ("ids", "n", "error", "match"),
        [
            ([1.0, 2.0], 2, TypeError, "must be integers"),
            ([[1, 2]], 2, ValueError, "must be 1-D"),
            ([1, 2], 3, ValueError, "has 2 entries for 3 codes"),
            ([1, -2], 2, ValueError, "non-negative"),
            ([4, 1, 4], 3, ValueError, "duplicates, e.g. 4"),
            (np.array([2**63], dtype=np.uint64), 1, ValueError, "fit in int64"),
        ],
    )
    def test_as_ids_refuses(self, ids, n, error, match):
        with pytest.raises(error, match=match):
            as_ids(ids, n)

    def test_first_duplicate_is_the_smallest_repeated_value(self):
        assert first_duplicate(np.array([9, 2, 9, 2, 5])) == 2
        assert first_duplicate(np.array([3, 1, 2])) is None
        assert first_duplicate(np.array([7])) is None

    def test_lookup_ids_any_shape_and_out_of_range_values_are_not_found(self):
        ids, valid = as_lookup_ids([[1, 2], [3, 2**70]])
        assert ids.tolist()[:3] == [1, 2, 3] and valid.tolist() == [True, True, True, False]
        ids, valid = as_lookup_ids(np.array([1, 2**64 - 1], dtype=np.uint64))
        assert valid.tolist() == [True, False] and ids[0] == 1
        with pytest.raises(TypeError, match="must be integers"):
            as_lookup_ids([1.5])
        with pytest.raises(TypeError, match="dtype float64"):
            as_lookup_ids(np.array([1.0]))
