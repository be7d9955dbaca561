"""One real Dask LocalCluster per test session, shared by every module that needs it.

A session-scoped fixture defined in two test modules would start two clusters;
modules call :func:`shared_client` from their own fixture instead. The cluster
has two single-threaded worker processes (2 cores in CI), and is closed when
the session ends.
"""

from __future__ import annotations

import pytest

_client = None


def shared_client(request: pytest.FixtureRequest):
    """The session's ``distributed.Client`` (started on first use)."""
    global _client
    if _client is None:
        distributed = pytest.importorskip("distributed")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        )
        client = distributed.Client(cluster)

        def close() -> None:
            global _client
            client.close()
            cluster.close()
            _client = None

        request.session.config.add_cleanup(close)
        _client = client
    return _client
