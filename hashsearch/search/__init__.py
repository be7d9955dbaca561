"""Out-of-core, distributed and batch search over code stores.

- :mod:`.plan`: the memory limit, the block plan and read-ahead.
- :mod:`.distributed`: the same exact search on a Dask cluster.
- :mod:`.batch`: millions of queries, resumable, results written to Zarr.

Submodules are imported on use (this package's ``__init__`` imports nothing),
so the store can use the plan without pulling in Dask.
"""

from __future__ import annotations
