"""The ``hashsearch`` command line.

One Typer application with a subcommand group per area; each area's module
registers its commands with ``register(app)`` and imports heavy dependencies
(torch, rasterio, dask) inside the commands, so ``hashsearch --help`` is fast
and works without the optional extras.
"""

from __future__ import annotations

import typer

from hashsearch.cli import dataset, demo, engine, index, query, train
from hashsearch.cli import eval as eval_cli
from hashsearch.cli._common import setup_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="hashsearch",
    help="Cross-source remote-sensing image retrieval with deep hashing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v for INFO, -vv for DEBUG logs."),
) -> None:
    setup_logging(verbose)


for _module in (engine, index, dataset, train, eval_cli, query, demo):
    _module.register(app)


def main() -> None:
    """Entry point of the ``hashsearch`` console script."""
    app()
