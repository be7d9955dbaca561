"""Out-of-core, distributed and batch search over code stores.

- :mod:`.outofcore`: the one out-of-core search path: the memory limit (its
  default, parser and meaning), backend resolution, the block plan, the
  streaming search, the merge and the id mapping.
- :mod:`.plan`: the arithmetic of block plans, and read-ahead.
- :mod:`.distributed`: the same exact search on a Dask cluster.
- :mod:`.batch`: millions of queries, resumable, results written to Zarr.

``outofcore`` and ``plan`` sit below the store (which searches through them);
``distributed`` and ``batch`` above it (they open stores). Submodules are
imported on use (this package's ``__init__`` imports nothing), so the store can
use the engine without pulling in Dask.
"""

from __future__ import annotations
