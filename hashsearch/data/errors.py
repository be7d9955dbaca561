"""Exceptions raised by :mod:`hashsearch.data`.

They subclass :class:`hashsearch.errors.HashsearchError` (catch everything that went
wrong with a file or a store at once) and a built-in exception, so code that only
knows ``FileNotFoundError`` or ``ValueError`` keeps working, and the CLI turns them
into one-line messages.
"""

from __future__ import annotations

from hashsearch.errors import HashsearchError

__all__ = [
    "AlignmentError",
    "DataNotFoundError",
    "DatasetError",
    "IncompleteDatasetError",
    "MalformedDataError",
]


class DatasetError(HashsearchError):
    """Base class of the errors raised while reading, tiling or writing datasets."""


class DataNotFoundError(DatasetError, FileNotFoundError):
    """An input file or folder is missing; the message names the path and how to supply it."""


class MalformedDataError(DatasetError, ValueError):
    """An input file exists but its layout (variables, shapes, dtypes, values) is not the expected one."""


class AlignmentError(DatasetError, ValueError):
    """Rasters cannot be paired: different CRS, no overlap, a non-integer resolution ratio,
    grids that do not nest, or rotated geotransforms."""


class IncompleteDatasetError(DatasetError, OSError):
    """A dual-source dataset on disk was not finished (its build failed or is still running)."""
