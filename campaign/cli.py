"""The ``campaign`` command: parses options, calls the library, maps errors to exit codes.

Nothing imports this module. Every expected failure reaches the user as one sentence on
stderr (``Error: …``) and the exit code of design.md; unexpected ones are logged with a
traceback and exit 1.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from campaign.console.logs import redact
from campaign.errors import CampaignError
from campaign.sandbox.command import sandbox

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("campaign")


def exits_cleanly(func: F) -> F:
    """Turn project errors into ``Error: …`` and their exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CampaignError as exc:
            # The traceback goes to the log file, and to stderr only with -v.
            log.debug("stopped by %s", type(exc).__name__, exc_info=True)
            say_error(str(exc))
            sys.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # unexpected: one line for the user, the traceback to the log
            log.exception("unexpected error")
            say_error(f"unexpected {type(exc).__name__}: {exc}")
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def say_error(message: str) -> None:
    """Print ``Error: <message>`` on stderr, redacted like the log (the key never shows)."""
    from campaign.config.model import DEFAULT_KEY_ENV

    # The key is registered with the log handlers once the campaign file names it; the
    # default variable covers an error raised before that.
    key = os.environ.get(DEFAULT_KEY_ENV, "")
    click.echo(f"Error: {redact(message, also=[key])}", err=True)


@click.group()
@click.version_option(package_name="campaign")
def main() -> None:
    """Run outbound voice-AI call campaigns against the Aitelier API.

    \b
    Example:
        campaign validate pipelines/spring.yaml
        campaign run pipelines/spring.yaml --until 20:00
    """


@main.command()
@click.argument("campaign_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@exits_cleanly
def validate(campaign_file: str, as_json: bool) -> None:
    """Check the campaign file and its input; print counts and a projection (no API call).

    \b
    Example:
        campaign validate pipelines/spring.yaml --json
    """
    import json
    from pathlib import Path

    from campaign.config.model import load_campaign
    from campaign.run.validate import render_text, validate_campaign
    from campaign.store.optout import OptOutList

    config = load_campaign(Path(campaign_file))
    summary = validate_campaign(config, opted_out=OptOutList(config.state_dir).numbers())
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else render_text(summary))


def _load(campaign_file: str) -> Any:
    from pathlib import Path

    from campaign.config.model import load_campaign

    return load_campaign(Path(campaign_file))


def _until_epoch(value: str | None, now: float) -> float | None:
    """``--until HH:MM`` as epoch seconds today (machine-local); past times are refused."""
    if value is None:
        return None
    from datetime import datetime

    try:
        hour, minute = (int(part) for part in value.split(":"))
        local_now = datetime.fromtimestamp(now).astimezone()
        moment = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HH:MM", param_hint="--until") from None
    if moment.timestamp() <= now:
        raise click.BadParameter(
            f"{value} has already passed today (local time {local_now:%H:%M}); the run stops "
            "at --until today, so give a later time or use --max-duration",
            param_hint="--until",
        )
    return moment.timestamp()


@main.command()
@click.argument("campaign_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--until", "until", metavar="HH:MM", help="Stop at this local time today.")
@click.option("--max-duration", metavar="DURATION", help="Stop after this long, e.g. 2h, 90min.")
@click.option("--dry-run", is_flag=True, help="Send nothing state-changing; write the outputs.")
@click.option("--allow-low-balance", is_flag=True, help="Run even if the wallet looks too low.")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain")
@click.option("-v", "--verbose", is_flag=True, help="Debug output on stderr.")
@exits_cleanly
def run(
    campaign_files: tuple[str, ...],
    until: str | None,
    max_duration: str | None,
    dry_run: bool,
    allow_low_balance: bool,
    log_format: str,
    verbose: bool,
) -> None:
    """Place the campaign's calls, collect outcomes, write the report; resumable.

    Several files run together in this process, sharing the limits of their key fairly
    (by each file's ``priority``); each keeps its own lock, checkpoint and report, and the
    exit code is the worst of theirs in this order: 2, 4, 1, 75, 3, 0.

    \b
    Example:
        campaign run pipelines/spring.yaml --until 20:00
        campaign run pipelines/spring.yaml pipelines/winback.yaml
    """
    import time

    from campaign.console.logs import setup_logging
    from campaign.run.runner import RunOptions, run_campaign

    now = time.time()
    options = RunOptions(
        until=_until_epoch(until, now),
        max_duration_s=None if max_duration is None else _duration(max_duration),
        dry_run=dry_run,
        allow_low_balance=allow_low_balance,
        command=" ".join(["campaign", "run", *sys.argv[3:]]) if len(sys.argv) > 2 else "run",
    )
    if len(campaign_files) > 1:
        _run_several(campaign_files, options, log_format, verbose)
    config = _load(campaign_files[0])
    key = config.require_api_key()
    setup_logging(
        log_file=config.state_dir / f"{config.campaign}.log",
        log_format=log_format,  # type: ignore[arg-type]
        verbose=verbose,
        secrets=[key],
    )
    try:
        report = run_campaign(config, options)
    except CampaignError as exc:
        for line in getattr(exc, "summary_lines", []):
            click.echo(line)
        raise
    for line in report.lines:
        click.echo(line)
    sys.exit(report.exit_code)


def _run_several(
    campaign_files: tuple[str, ...], options: Any, log_format: str, verbose: bool
) -> None:
    """``campaign run A.yaml B.yaml …``: every campaign's summary, then the worst exit code."""

    from campaign.config.model import CampaignConfig
    from campaign.console.logs import setup_logging
    from campaign.run.several import run_campaigns, worst_exit_code

    entries: list[tuple[str, CampaignConfig | CampaignError]] = []
    for path in campaign_files:
        try:
            entries.append((path, _load(path)))
        except CampaignError as exc:  # this campaign exits 2; the others still run
            entries.append((path, exc))
    configs = [entry for _, entry in entries if isinstance(entry, CampaignConfig)]
    setup_logging(
        log_file=configs[0].state_dir / "campaigns.log" if configs else None,
        log_format=log_format,  # type: ignore[arg-type]
        verbose=verbose,
        secrets=[key for key in (config.api_key() for config in configs) if key],
    )
    outcomes = run_campaigns(entries, options)
    for outcome in outcomes:
        click.echo(f"== {outcome.label}: exit {outcome.exit_code}")
        for line in outcome.lines:
            click.echo(line)
        if outcome.error:
            say_error(str(outcome.error))
    sys.exit(worst_exit_code([outcome.exit_code for outcome in outcomes]))


def _duration(text: str) -> float:
    from campaign.config.model import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-duration") from None
    if seconds <= 0:
        raise click.BadParameter("must be positive, e.g. 2h", param_hint="--max-duration")
    return seconds


@main.command()
@click.argument("campaign_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@exits_cleanly
def status(campaign_file: str, as_json: bool) -> None:
    """Show progress from the checkpoint alone (no API call).

    \b
    Example:
        campaign status pipelines/spring.yaml --json
    """
    from campaign.run.status import campaign_status, render_status

    click.echo(render_status(campaign_status(_load(campaign_file)), as_json=as_json))


@main.command()
@click.argument("campaign_file", type=click.Path(dir_okay=False))
@exits_cleanly
def report(campaign_file: str) -> None:
    """Rewrite results.csv, summary.json and report.html from the checkpoint.

    \b
    Example:
        campaign report pipelines/spring.yaml
    """
    from campaign.run.outputs import rewrite_outputs

    paths = rewrite_outputs(_load(campaign_file))
    click.echo(f"wrote {paths.results_csv}, {paths.summary_json}, {paths.report_html}")


main.add_command(sandbox)
