"""Helpers shared by the CLI subcommands: error handling, JSON output, logging."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("hashsearch")

#: Exceptions turned into a one-line message and exit code 1 instead of a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, KeyError, RuntimeError)


def cli_errors(func: F) -> F:
    """Decorate a command so that user errors print ``error: <message>`` and exit with 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None
        except USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            typer.echo(f"error: {message}", err=True)
            logger.debug("command failed", exc_info=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print a command's result, as one JSON object or as ``key: value`` lines."""
    if as_json:
        typer.echo(json.dumps(result, default=_json_default, sort_keys=True))
        return
    for key, value in result.items():
        typer.echo(f"{key}: {value}")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def setup_logging(verbose: int) -> None:
    """Route the ``hashsearch`` logger to stderr at WARNING, INFO (-v) or DEBUG (-vv)."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
