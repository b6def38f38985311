"""The ``campaign`` command: parses options, calls the library, maps errors to exit codes.

Nothing imports this module. Every expected failure reaches the user as one sentence on
stderr (``Error: …``) and the exit code of design.md; unexpected ones are logged with a
traceback and exit 1.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from campaign.errors import CampaignError

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("campaign")


def exits_cleanly(func: F) -> F:
    """Turn project errors into ``Error: …`` and their exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CampaignError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # unexpected: one line for the user, the traceback to the log
            log.exception("unexpected error")
            click.echo(f"Error: unexpected {type(exc).__name__}: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="campaign")
def main() -> None:
    """Run outbound voice-AI call campaigns against the Aitelier API.

    \b
    Example:
        campaign validate pipelines/spring.yaml
        campaign run pipelines/spring.yaml --until 20:00
    """
