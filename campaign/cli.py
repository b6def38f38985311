"""The ``campaign`` command: parses options, calls the library, maps errors to exit codes.

Nothing imports this module. Each command calls the Python API (``campaign.public``); what
the library leaves to its host is done here: logging is set up, SIGINT/SIGTERM stop a run,
and a terminal shows a progress bar. Every expected failure reaches the user as one
sentence on stderr (``Error: …``) and the exit code of the README's table; unexpected ones
are logged with a traceback and exit 1.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from campaign import public
from campaign.console.logs import error_line, redact
from campaign.errors import CampaignError
from campaign.sandbox.command import sandbox

if TYPE_CHECKING:
    import asyncio

    from campaign.pipeline.report import RunReport
    from campaign.pipeline.runner import RunOptions

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

log = logging.getLogger("campaign")


def exits_cleanly(func: F) -> F:
    """Turn project errors into ``Error: …`` and their exit code; never a traceback.

    With ``--log-format json`` the error is one JSON object instead, like the log's lines,
    and so is a bad option value found while the command runs (``--until 25:00``).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        log_format = kwargs.get("log_format", "plain")
        try:
            return func(*args, **kwargs)
        except CampaignError as exc:
            # The traceback goes to the log file, and to stderr only with -v.
            log.debug("stopped by %s", type(exc).__name__, exc_info=True)
            say_error(str(exc), log_format=log_format, exit_code=exc.exit_code)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            if log_format != "json":
                raise
            say_error(exc.format_message(), log_format=log_format, exit_code=exc.exit_code)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # unexpected: one line for the user, the traceback to the log
            log.exception("unexpected error")
            say_error(f"unexpected {type(exc).__name__}: {exc}", log_format=log_format, exit_code=1)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def exit_with(report: RunReport, log_format: str = "plain") -> NoReturn:
    """End the command as the run ended: ``Error: …`` if it failed, and its exit code."""
    if report.error is not None:
        log.debug("stopped by %s", type(report.error).__name__, exc_info=report.error)
        say_error(str(report.error), log_format=log_format, exit_code=report.exit_code)
    sys.exit(report.exit_code)


def say_error(message: str, *, log_format: str = "plain", **fields: object) -> None:
    """Print ``Error: <message>`` (or its JSON form) on stderr, redacted like the log (the
    key never shows)."""
    from campaign.config.model import DEFAULT_KEY_ENV

    # The key is registered with the log handlers once the campaign file names it; the
    # default variable covers an error raised before that.
    key = os.environ.get(DEFAULT_KEY_ENV, "")
    click.echo(error_line(redact(message, also=[key]), log_format=log_format, **fields), err=True)


@click.group()
@click.version_option(package_name="campaign")
def main() -> None:
    """Run outbound voice-AI call campaigns against the Aitelier API.

    A campaign file (YAML) names the CRM export to call and how; pipelines/spring.yaml is
    the sample, run against the built-in sandbox. Every command has --help.

    \b
    Example:
        campaign validate pipelines/spring.yaml
        campaign run pipelines/spring.yaml --until 20:00
    """


@main.command(short_help="Check a campaign file and its input (no API call).")
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

    from campaign.pipeline.validate import render_text

    summary = public.validate(campaign_file)
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else render_text(summary))


def _until_epoch(value: str | None, now: float) -> float | None:
    """``--until HH:MM`` as epoch seconds today (machine-local); past times are refused."""
    from campaign.pipeline.bounds import until_timestamp

    try:
        return until_timestamp(value, now=now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None


async def _stopped_by_signals(start: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Await ``start(stop)`` while SIGINT/SIGTERM set ``stop`` (the run then exits 3)."""
    import asyncio

    from campaign.console.signals import stop_on_signals

    stop = asyncio.Event()
    with stop_on_signals(stop):
        return await start(stop)


@main.command(short_help="Place the calls, collect outcomes, write the report.")
@click.argument("campaign_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--until",
    "until",
    metavar="HH:MM",
    help="Stop at this time today, in the local time of the machine running the command "
    "(its TZ setting, not the recipients' time), e.g. 20:00.",
)
@click.option("--max-duration", metavar="DURATION", help="Stop after this long, e.g. 2h, 90min.")
@click.option("--dry-run", is_flag=True, help="Send nothing state-changing; write the outputs.")
@click.option("--allow-low-balance", is_flag=True, help="Run even if the wallet looks too low.")
@click.option(
    "--log-format",
    type=click.Choice(["plain", "json"]),
    default="plain",
    show_default=True,
    help="How log lines (stderr and the log file) and a final error are written: plain "
    "text, or one JSON object per line with ts, level, logger, message and fields such as "
    "row_key, attempt, call_id, status, outcome.",
)
@click.option(
    "--metrics-file",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=lambda _ctx, _param, value: _metrics_path(value),
    help="Write the run's figures (times, exit code, rows by state, calls, requests, 429s, "
    "cost) here in the Prometheus text format, for node_exporter's textfile collector, "
    "e.g. /var/lib/node_exporter/textfile/spring.prom. The folder must exist.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug output on stderr.")
@exits_cleanly
def run(
    campaign_files: tuple[str, ...],
    until: str | None,
    max_duration: str | None,
    dry_run: bool,
    allow_low_balance: bool,
    log_format: str,
    metrics_file: Path | None,
    verbose: bool,
) -> None:
    """Place the campaign's calls, collect outcomes, write the report; resumable.

    Resumes from the checkpoint: a run that was stopped or killed continues where it
    ended. Exit 3 means it stopped early (--until, --max-duration, a signal) with work
    left: rerun it. Several files run together in this process, sharing the limits of
    their key fairly (by each file's priority); each keeps its own lock, checkpoint and
    report, and the exit code is the worst of theirs in this order: 2, 4, 1, 75, 3, 0.

    \b
    Example:
        campaign run pipelines/spring.yaml --until 20:00
        campaign run pipelines/spring.yaml pipelines/winback.yaml
    """
    import asyncio
    import dataclasses
    import time

    from campaign.console.logs import setup_logging
    from campaign.console.progress import RunProgress
    from campaign.pipeline.metrics import RunMeter
    from campaign.pipeline.runner import RunOptions

    if metrics_file is not None and len(campaign_files) > 1:
        raise click.BadParameter(
            "takes one campaign file: run each campaign with its own metrics file",
            param_hint="--metrics-file",
        )
    meter = None if metrics_file is None else RunMeter(metrics_file)  # the run starts now
    config = None
    try:
        now = time.time()
        options = RunOptions(
            until=_until_epoch(until, now),
            max_duration_s=_duration(max_duration),
            dry_run=dry_run,
            allow_low_balance=allow_low_balance,
            command=" ".join(["campaign", "run", *sys.argv[3:]]) if len(sys.argv) > 2 else "run",
        )
        if len(campaign_files) > 1:
            _run_several(campaign_files, options, log_format, verbose)
        config = public.load(campaign_files[0])
        key = config.require_api_key()
    except (CampaignError, click.ClickException) as exc:
        if meter is not None:  # refused before it ran: the exit code and times still go out
            meter.write_refused(
                exc.exit_code,
                campaign=None if config is None else config.campaign,
                mode=None if config is None else config.mode,
                source=campaign_files[0],
            )
        raise
    setup_logging(
        log_file=config.state_dir / f"{config.campaign}.log",
        log_format=log_format,  # type: ignore[arg-type]
        verbose=verbose,
        secrets=[key],
    )
    report = asyncio.run(
        _stopped_by_signals(
            lambda stop: public.run_with_options(
                config,
                dataclasses.replace(options, stop=stop, progress=RunProgress()),
                metrics_file=meter,
            )
        )
    )
    for line in report.lines:
        click.echo(line)
    exit_with(report, log_format)


def _run_several(
    campaign_files: tuple[str, ...], options: RunOptions, log_format: str, verbose: bool
) -> NoReturn:
    """``campaign run A.yaml B.yaml …``: every campaign's summary, then the worst exit code."""
    import asyncio
    import dataclasses

    from campaign.clock import SystemClock
    from campaign.config.model import CampaignConfig
    from campaign.console.logs import setup_logging
    from campaign.pipeline.several import run_campaigns_async, worst_exit_code

    entries: list[tuple[str, CampaignConfig | CampaignError]] = []
    for path in campaign_files:
        try:
            entries.append((path, public.load(path)))
        except CampaignError as exc:  # this campaign exits 2; the others still run
            entries.append((path, exc))
    configs = [entry for _, entry in entries if isinstance(entry, CampaignConfig)]
    setup_logging(
        log_file=configs[0].state_dir / "campaigns.log" if configs else None,
        log_format=log_format,  # type: ignore[arg-type]
        verbose=verbose,
        secrets=[key for key in (config.api_key() for config in configs) if key],
    )
    outcomes = asyncio.run(
        _stopped_by_signals(
            lambda stop: run_campaigns_async(
                entries, dataclasses.replace(options, stop=stop), clock=SystemClock()
            )
        )
    )
    for outcome in outcomes:
        click.echo(f"== {outcome.label}: exit {outcome.exit_code}")
        for line in outcome.report.lines:
            click.echo(line)
        if outcome.report.error is not None:
            say_error(
                str(outcome.report.error),
                log_format=log_format,
                exit_code=outcome.exit_code,
                campaign=outcome.label,
            )
    sys.exit(worst_exit_code([outcome.exit_code for outcome in outcomes]))


def _metrics_path(value: Path | None) -> Path | None:
    """``--metrics-file``, refused (exit 2) before anything runs if its folder is missing."""
    from campaign.pipeline.metrics import check_metrics_path

    if value is None:
        return None
    try:
        return check_metrics_path(value)
    except CampaignError as exc:
        message = str(exc).removeprefix("--metrics-file: ")
        raise click.BadParameter(message, param_hint="--metrics-file") from None


def _duration(text: str | None) -> float | None:
    from campaign.pipeline.bounds import duration_seconds

    try:
        return duration_seconds(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-duration") from None


@main.command(short_help="Show progress from the checkpoint alone (no API call).")
@click.argument("campaign_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@exits_cleanly
def status(campaign_file: str, as_json: bool) -> None:
    """Show progress from the checkpoint alone (no API call).

    \b
    Example:
        campaign status pipelines/spring.yaml --json
    """
    from campaign.pipeline.status import render_status

    click.echo(render_status(public.status(campaign_file), as_json=as_json))


@main.command(short_help="Rewrite results.csv, summary.json and report.html.")
@click.argument("campaign_file", type=click.Path(dir_okay=False))
@exits_cleanly
def report(campaign_file: str) -> None:
    """Rewrite results.csv, summary.json and report.html from the checkpoint.

    \b
    Example:
        campaign report pipelines/spring.yaml
    """
    from campaign.pipeline.outputs import rewrite_outputs

    paths = rewrite_outputs(public.load(campaign_file))
    click.echo(f"wrote {paths.results_csv}, {paths.summary_json}, {paths.report_html}")


# --- campaign state … -----------------------------------------------------------------


@main.group(short_help="Move a campaign's state (its checkpoint) to PostgreSQL.")
def state() -> None:
    """Commands on a campaign's state: its checkpoint, attempts, batches and opt-outs.

    \b
    Example:
        campaign state copy pipelines/spring.yaml --to postgresql://ops@db:5432/campaigns
    """


@state.command("copy", short_help="Copy a campaign's SQLite checkpoint into PostgreSQL.")
@click.argument("source", metavar="FILE", type=click.Path(dir_okay=False))
@click.option(
    "--to",
    "to",
    metavar="URL",
    help="The database, postgresql://user@host:5432/dbname (default: CAMPAIGN_STATE_URL, "
    "else the campaign file's state_url). Leave the password out of it: other users of "
    "the machine can read a command line; set PGPASSWORD or use ~/.pgpass.",
)
@click.option(
    "--campaign",
    "campaign_name",
    metavar="NAME",
    help="The campaign, when FILE is a checkpoint that does not name it.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Overwrite the campaign's checkpoint already in the database (refused if it holds "
    "calls the SQLite checkpoint does not know of).",
)
@exits_cleanly
def state_copy(source: str, to: str | None, campaign_name: str | None, replace: bool) -> None:
    """Copy a campaign's SQLite checkpoint into PostgreSQL, to run it there from now on.

    FILE is the campaign file (its checkpoint is found in its state_dir) or a checkpoint
    (.sqlite). Everything is copied in one transaction and checked: rows, attempts,
    batches, send times, runs, and the state dir's opt-outs and calls per number. The
    campaign's lock is held meanwhile (a run in progress: exit 75). The SQLite checkpoint
    is then marked as moved, and a run of it refuses: set state_url or CAMPAIGN_STATE_URL
    to run the campaign in the database.

    \b
    Example:
        PGPASSWORD=... campaign state copy pipelines/spring.yaml --to postgresql://ops@db/campaigns
    """
    from campaign.config.model import redact_url

    if to and redact_url(to) != to:
        click.echo(
            "Warning: --to holds a password, which other users of this machine can see in "
            "the process list; set PGPASSWORD or use ~/.pgpass instead",
            err=True,
        )
    done = public.copy_state(source, to=to, campaign=campaign_name, replace=replace)
    for line in done.lines():
        click.echo(line)


main.add_command(sandbox)
