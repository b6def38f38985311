"""The Python API: every command of the CLI is first one of these calls.

    report = campaign.run("pipelines/spring.yaml", until="20:00")
    report.exit_code, report.outcome, report.summary["by_state"], report.error

``run`` and ``run_async`` return a ``RunReport`` for every run that ends in an expected way,
failures included (``error`` set, ``exit_code`` as the CLI's); they raise only for bugs and
for arguments that make no sense (``ValueError``/``TypeError``, before anything is done).
``validate`` and ``status`` have no partial result to give: they return their typed result
or raise the ``CampaignError`` that says what is wrong (its ``exit_code`` is the CLI's).

Nothing here installs a signal handler or configures logging: the host owns both. Records
go to the ``campaign`` logger; stop a run early with ``until``, ``max_duration`` or, in
``run_async``, a ``stop`` event.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from campaign.errors import CampaignError

if TYPE_CHECKING:
    import asyncio

    from campaign.config.model import CampaignConfig
    from campaign.pipeline.metrics import RunMeter
    from campaign.pipeline.progress import ProgressDisplay
    from campaign.pipeline.report import RunReport
    from campaign.pipeline.runner import RunOptions
    from campaign.pipeline.status import CampaignStatus
    from campaign.pipeline.validate import ValidationSummary
    from campaign.store.moving import MoveReport

    # A campaign file's path, or a config already loaded (``campaign.config.model``).
    CampaignFile: TypeAlias = str | os.PathLike[str] | CampaignConfig


def run(
    path_or_config: CampaignFile,
    *,
    api_key: str | None = None,
    until: datetime | str | None = None,
    max_duration: float | timedelta | str | None = None,
    dry_run: bool = False,
    progress: ProgressDisplay | None = None,
    allow_low_balance: bool = False,
    metrics_file: str | os.PathLike[str] | None = None,
) -> RunReport:
    """Run a campaign once (resuming from its checkpoint) and report how it ended.

    ``metrics_file`` (a ``.prom`` file in an existing folder) gets the run's figures in the
    Prometheus text format, whatever the exit code.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(
            run_async(
                path_or_config,
                api_key=api_key,
                until=until,
                max_duration=max_duration,
                dry_run=dry_run,
                progress=progress,
                allow_low_balance=allow_low_balance,
                metrics_file=metrics_file,
            )
        )
    raise RuntimeError(
        "campaign.run() cannot be called from a running event loop (a notebook, an async "
        "task): use `await campaign.run_async(...)`"
    )


async def run_async(
    path_or_config: CampaignFile,
    *,
    api_key: str | None = None,
    until: datetime | str | None = None,
    max_duration: float | timedelta | str | None = None,
    dry_run: bool = False,
    progress: ProgressDisplay | None = None,
    allow_low_balance: bool = False,
    stop: asyncio.Event | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
) -> RunReport:
    """``run`` on the running event loop, which it shares; set ``stop`` to end it early."""
    import time

    from campaign.pipeline.bounds import duration_seconds, until_timestamp
    from campaign.pipeline.runner import RunOptions

    options = RunOptions(
        until=until_timestamp(until, now=time.time()),
        max_duration_s=duration_seconds(max_duration),
        dry_run=dry_run,
        allow_low_balance=allow_low_balance,
        command="campaign.run()",
        stop=stop,
        progress=progress,
    )
    return await run_with_options(
        path_or_config, options, api_key=api_key, metrics_file=metrics_file
    )


async def run_with_options(
    path_or_config: CampaignFile,
    options: RunOptions,
    *,
    api_key: str | None = None,
    metrics_file: str | os.PathLike[str] | RunMeter | None = None,
) -> RunReport:
    """``run_async`` with the options already built (the CLI's way in, with its meter)."""
    from campaign.clock import SystemClock
    from campaign.pipeline.report import failed_report, report_run

    meter: RunMeter | None = None
    if metrics_file is not None:
        from campaign.pipeline.metrics import RunMeter, check_metrics_path

        try:
            meter = (
                metrics_file
                if isinstance(metrics_file, RunMeter)
                else RunMeter(check_metrics_path(metrics_file, option="metrics_file"))
            )
        except CampaignError as exc:  # nothing was done: no file to write either
            return failed_report(exc)
    try:
        config = load(path_or_config, api_key=api_key)
    except CampaignError as exc:
        if meter is not None:
            source = path_or_config if isinstance(path_or_config, str | os.PathLike) else ""
            meter.write_refused(exc.exit_code, campaign=None, mode=None, source=os.fspath(source))
        return failed_report(exc)
    if meter is None:
        return await report_run(config, options, clock=SystemClock())
    return await meter.measure(
        lambda on_tally: report_run(config, options, clock=SystemClock(), on_tally=on_tally),
        campaign=config.campaign,
        mode=config.mode,
        dry_run=options.dry_run,
    )


def validate(path_or_config: CampaignFile, *, now: datetime | None = None) -> ValidationSummary:
    """What the campaign would do, from the file and its input alone (no API call)."""
    from campaign.pipeline.validate import validate_campaign
    from campaign.store.place import StatePlace

    config = load(path_or_config)
    opt_outs = StatePlace.of(config).opt_outs()
    try:
        opted_out = opt_outs.numbers()
    finally:
        opt_outs.close()
    return validate_campaign(config, opted_out=opted_out, now=now)


def status(path_or_config: CampaignFile, *, api_key: str | None = None) -> CampaignStatus:
    """The campaign's progress from its checkpoint alone (no API call).

    ``api_key`` (else the environment) only finds the campaigns sharing this key's limits.
    """
    from campaign.pipeline.status import campaign_status

    return campaign_status(load(path_or_config, api_key=api_key))


def load(path_or_config: CampaignFile, *, api_key: str | None = None) -> CampaignConfig:
    """The campaign file read and checked (a given config is used as it is), with the key.

    ``api_key`` wins over the environment (``AITELIER_API_KEY`` or ``api.key_env``).
    """
    from campaign.config.model import CampaignConfig, load_campaign

    if api_key is not None and not api_key.strip():
        raise ValueError("api_key is empty: pass the key, or None to read the environment")
    if isinstance(path_or_config, CampaignConfig):
        if api_key is None:
            return path_or_config
        config = path_or_config.model_copy()
        config._api_key = api_key  # the one place the key is set from outside the loader
        return config
    if not isinstance(path_or_config, str | os.PathLike):
        raise TypeError(
            "expected the path of a campaign file or a CampaignConfig, "
            f"not {type(path_or_config).__name__}"
        )
    env = dict(os.environ)
    if api_key is not None:
        env["AITELIER_API_KEY"] = api_key  # the variable that wins over api.key_env
    return load_campaign(Path(path_or_config), env=env)


def copy_state(
    path: str | os.PathLike[str],
    *,
    to: str | None = None,
    campaign: str | None = None,
    replace: bool = False,
) -> MoveReport:
    """``campaign state copy``: a campaign's SQLite checkpoint (``path``: its campaign file,
    or the checkpoint itself) into the PostgreSQL database ``to`` (else
    ``CAMPAIGN_STATE_URL``, else the file's ``state_url``); the SQLite one then refuses to
    run. Raises the ``CampaignError`` that says why not (a run in progress: exit 75)."""
    from campaign.store.moving import move_campaign

    return move_campaign(Path(path), to=to, campaign=campaign, replace=replace)
