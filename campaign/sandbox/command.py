"""``campaign sandbox serve``: run the API emulator as a process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import click

from campaign.sandbox.config import (
    SandboxConfig,
    SandboxConfigError,
    load_sandbox_config,
    parse_sandbox_limit,
)
from campaign.sandbox.faults import FaultSpecError, parse_faults
from campaign.sandbox.server import start_sandbox

LIMIT_NAMES = ("requests_per_minute", "requests_per_hour", "outbound_calls")


@click.group(short_help="Run a local emulator of the Aitelier API.")
def sandbox() -> None:
    """Local emulator of the Aitelier API, for trying things out and tests.

    It answers as docs/api/openapi.yaml describes the API (the contract both sides are
    built to), on a loopback port by default: no network, no real key, no phone rings.
    A campaign file with api.base_url: sandbox starts one inside the run instead; this
    command serves one for other tools and for tests.

    \b
    Example:
        campaign sandbox serve --port 8787 --config sample_data/sandbox.yaml
    """


def build_config(
    config_path: Path | None,
    faults: str | None,
    limits: tuple[str, ...],
    time_scale: float | None,
    ledger: bool,
    state_file: Path | None,
    seed: int | None,
    wallet_balance: str | None = None,
) -> SandboxConfig:
    """The config file (or defaults) with the command-line options applied on top."""
    config = load_sandbox_config(config_path) if config_path else SandboxConfig()
    if faults:
        config.faults = [*config.faults, *parse_faults(faults)]
    for item in limits:
        name, equals, value = item.partition("=")
        if not equals or name.strip() not in LIMIT_NAMES:
            raise click.BadParameter(f"{item!r}: expected KEY=N/dur, KEY in {LIMIT_NAMES}")
        parse_sandbox_limit(value)
        setattr(config, name.strip(), value.strip())
    if time_scale is not None:
        config.time_scale = time_scale
    config.ledger = config.ledger or ledger
    if state_file is not None:
        config.state_file = state_file
    if seed is not None:
        config.fault_seed = seed
    if wallet_balance is not None:
        config.wallet_balance = wallet_balance
    config.validate()
    return config


@sandbox.command(short_help="Serve the emulator until interrupted.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8787, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML or JSON sandbox config (keys, scenarios, limits, faults, ...).",
)
@click.option("--faults", default=None, metavar="SPEC", help="e.g. 'ambiguous@0.2'.")
@click.option(
    "--limits", multiple=True, metavar="KEY=N/dur", help="e.g. outbound_calls=5/min (repeatable)."
)
@click.option("--time-scale", type=float, default=None, help="0.01 = calls run 100x faster.")
@click.option("--ledger", is_flag=True, help="Serve GET /_sandbox/ledger and admin routes.")
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the world (calls, keys, windows) in this JSON file across restarts.",
)
@click.option("--seed", type=int, default=None, help="Seed of the fault dice.")
@click.option(
    "--wallet-balance", default=None, metavar="AMOUNT", help="Starting balance, e.g. 1000.00."
)
def serve(
    host: str,
    port: int,
    config_path: Path | None,
    faults: str | None,
    limits: tuple[str, ...],
    time_scale: float | None,
    ledger: bool,
    state_file: Path | None,
    seed: int | None,
    wallet_balance: str | None,
) -> None:
    """Serve the emulator until interrupted (Ctrl-C); prints "listening on URL" first.

    It accepts the keys of its config file (--config); without any, avp_test_sandbox.

    \b
    Example:
        campaign sandbox serve --port 0 --ledger --faults 'ambiguous@0.2' \\
            --limits outbound_calls=5/min --time-scale 0.01
    """
    try:
        config = build_config(
            config_path, faults, limits, time_scale, ledger, state_file, seed, wallet_balance
        )
    except (SandboxConfigError, FaultSpecError) as exc:
        raise click.BadParameter(str(exc)) from None
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        asyncio.run(_serve(config, host, port))
    except OSError as exc:  # e.g. the port is taken
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def _serve(config: SandboxConfig, host: str, port: int) -> None:
    running = await start_sandbox(config, host=host, port=port, access_log=True)
    click.echo(f"listening on {running.root_url}")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await running.close()
