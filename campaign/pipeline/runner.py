"""One run of a campaign: lock → checkpoint → plan → pre-flight → loop → outputs.

Each stage is a function of its dependencies; this module only wires them and decides
the exit code (the README's table). Outputs are written at the end of every run that got
as far as the checkpoint, including runs that stop with exit 1 or 3.

This is library code: it installs no signal handler and configures no logging. A caller
stops a run by setting ``RunOptions.stop`` (the CLI sets it on SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from campaign.clock import Clock, utc
from campaign.config.model import CampaignConfig
from campaign.console.progress import StageProgress
from campaign.console.words import elapsed_in_words
from campaign.engine.calls import CallsEngine
from campaign.engine.frame import EngineResult, EngineSettings
from campaign.engine.gate import SendGate
from campaign.engine.preflight import Preflight, rows_now_and_later, rows_to_do, run_preflight
from campaign.errors import (
    ApiError,
    AuthError,
    CampaignError,
    InsufficientFundsError,
    StateError,
)
from campaign.limits.limiter import SlidingWindowLimiter
from campaign.phones.normalise import normaliser_version
from campaign.pipeline.outputs import RunTally, summary_lines, write_run_outputs
from campaign.pipeline.progress import showing
from campaign.pipeline.setup import build_gate
from campaign.planning.fingerprint import file_digest, plan_fingerprint
from campaign.planning.plan import PlanCounts
from campaign.planning.rejects import RejectShare, check_share, counted_share, reject_warning
from campaign.planning.schedule import next_due
from campaign.planning.staging import NewMemo, checkpoint_rows
from campaign.planning.windows import WindowBook
from campaign.reporting.results import progress_counts
from campaign.store.checkpoint import Store
from campaign.store.optout import OptOutList
from campaign.store.place import StatePlace

if TYPE_CHECKING:
    from campaign.pipeline.progress import ProgressDisplay

log = logging.getLogger("campaign.pipeline.runner")

SEND_LOG_KEEP_S = 3600.0 + 60.0
# checkpoint meta: the fingerprint the rows were last synced under, and that plan's counts
_PLAN_FINGERPRINT = "plan_fingerprint"
_PLAN_SUMMARY = "plan_summary"
REQUEST_LOG_FLUSH = 25


@dataclass(frozen=True)
class RunOptions:
    """How to run: the switches of ``campaign run`` and of ``campaign.run()``."""

    until: float | None = None
    max_duration_s: float | None = None
    dry_run: bool = False
    allow_low_balance: bool = False
    fetch_sessions: bool = True
    command: str = "campaign run"
    # Set it to stop the run as --until would (exit 3). Several campaigns in one process
    # (``campaign run A.yaml B.yaml``) share one.
    stop: asyncio.Event | None = field(default=None, compare=False)
    # What shows the progress (the CLI's terminal bar); None: progress lines in the log.
    progress: ProgressDisplay | None = field(default=None, compare=False)


class SendLog:
    """The client's on_send hook: call sends are written at once, requests in small batches."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.requests = 0
        self.calls = 0
        self._pending: list[tuple[str, float]] = []

    def __call__(self, kind: str, sent_at: float) -> None:
        self.requests += 1
        self._pending.append((kind, sent_at))
        # A POST /calls is about to leave: its send time must survive a kill -9, or a
        # restart could overshoot the outbound limit the server already counts it in.
        if kind == "call":
            self.calls += 1
            self.flush()
        elif len(self._pending) >= REQUEST_LOG_FLUSH:
            self.flush()

    def flush(self) -> None:
        """Write buffered send times."""
        pending, self._pending = self._pending, []
        self.store.log_sends(pending)


async def run_campaign_async(
    config: CampaignConfig, options: RunOptions, *, clock: Clock
) -> RunTally:
    """Run the campaign once. A failure once the checkpoint is open is the tally's ``error``
    (the outputs are written first); before that (a held lock, a damaged checkpoint) it
    raises CampaignError, and nothing was written."""
    place = StatePlace.of(config)
    lock = place.lock()
    if not options.dry_run:
        lock.acquire()  # before the checkpoint is opened: a refused run touches nothing
    try:
        log.info("%s: state in %s", config.campaign, place.describe())
        store = place.snapshot() if options.dry_run else place.open_store()
        try:
            store.claim_identity(config.campaign)
            return await _run_with_store(config, options, store, clock, place)
        finally:
            store.close()
    finally:
        lock.release()


async def _run_with_store(
    config: CampaignConfig, options: RunOptions, store: Store, clock: Clock, place: StatePlace
) -> RunTally:
    started = clock.now()
    run_id = store.start_run(started, options.command)
    opt_outs = place.opt_outs()
    _ingest(config, options, store, opt_outs, clock, started)
    if config.calling_hours == "unrestricted":
        log.warning(
            "calling_hours: unrestricted — recipients' local calling hours are NOT enforced"
        )
    windows = WindowBook(config.calling_hours)
    calls = place.call_ledger()
    gate = build_gate(config, store, opt_outs, windows, calls)
    send_log = SendLog(store)
    tally = RunTally(exit_code=0)
    error: CampaignError | None = None
    stop = options.stop or asyncio.Event()
    try:
        bounds = _Bounds(options, started, clock)
        async with _api(config, place, store, clock, send_log, stop, bounds.stop_at) as (
            client,
            call_times,
            allowance,
        ):
            with _stage("pre-flight", clock):
                tally.preflight = await _preflight(config, options, store, client, windows, clock)
            if not options.dry_run:
                with _stage(f"placing and following calls ({config.mode} mode)", clock):
                    tally.engine = await _run_engine(
                        config, options, store, client, clock, windows, opt_outs,
                        call_times, stop, allowance, gate, started,
                    )  # fmt: skip
                error = tally.engine.error
    except CampaignError as exc:
        error = exc
    finally:
        error = _keep_first(error, send_log.flush)
    # Bookkeeping writes can fail (a full disk): the outputs are still written from what
    # the checkpoint can read, and the first error is the one the run ends with.
    if not options.dry_run:
        error = _keep_first(error, store.prune_send_log, clock.now() - SEND_LOG_KEEP_S)
    tally.requests = send_log.requests
    total_requests = int(store.get_meta("requests_spent") or 0) + send_log.requests
    error = _keep_first(error, store.set_meta, "requests_spent", str(total_requests))
    engine = tally.engine or EngineResult()
    if tally.engine is None:  # dry run, or stopped before the loop: still say what is next
        engine.next_due, engine.next_due_reason = next_due(
            store, windows.window_for, clock.wall(), margin_s=gate.margin_s
        )
    with _stage("writing the outputs", clock):
        tally.outputs = write_run_outputs(
            config, store, windows, clock, started=started, dry_run=options.dry_run, engine=engine
        )
    tally.counts = progress_counts(store)
    tally.exit_code = _exit_code(error, engine)
    tally.lines = summary_lines(config, tally, engine, now=clock.now())
    error = _keep_first(error, store.end_run, run_id, clock.now(), tally.exit_code, tally.counts)
    if error is not None:
        tally.exit_code = _exit_code(error, engine)
    if error is None and engine.insufficient_funds:
        error = InsufficientFundsError(
            "calls failed with insufficient_funds: top up the wallet, then rerun — the "
            "affected rows keep a fresh attempt"
        )
    tally.error = None if error is None else _final_error(error)
    opt_outs.close()
    calls.close()
    return tally


def _ingest(
    config: CampaignConfig,
    options: RunOptions,
    store: Store,
    opt_outs: OptOutList,
    clock: Clock,
    started: float,
) -> None:
    """Bring the checkpoint's rows up to tonight's input: read, plan and sync it, unless the
    checkpoint was synced under the same plan fingerprint (planning/fingerprint.py)."""
    numbers = opt_outs.numbers()
    try:
        input_digest: str | None = file_digest(config.input.path)
    except OSError:
        input_digest = None  # planning says what is wrong with the file
    # The opt-outs this campaign recorded itself need no new plan: each ended its row's
    # calls (a stop outcome), and any other row with that number is its duplicate. Only
    # another campaign's opt-outs change what tonight's plan says (the send gate reads the
    # whole list before every call either way).
    fingerprint = plan_fingerprint(
        config,
        opt_outs.numbers(besides=config.campaign),
        today=utc(clock.wall()).date(),
        input_digest=input_digest,
    )
    summary = store.get_meta(_PLAN_SUMMARY)
    if summary is not None and store.get_meta(_PLAN_FINGERPRINT) == fingerprint:
        found = json.loads(summary)
        share = RejectShare(found["rejected"], found["rows"], tuple(map(tuple, found["reasons"])))
        log.info(
            "input %s: %d rows, unchanged since the last run (and so are the lists, opt-outs "
            "and settings the plan reads): not read again",
            config.input.path,
            share.rows,
        )
        warning = reject_warning(config, share)
        if warning is not None:
            log.warning("input %s: %s", config.input.path, warning)
        return
    store.use_phone_memo(normaliser_version())
    # A big list takes minutes to read and sync: each stage says when it starts and how
    # long it took, and shows its progress (a status line on a terminal, log lines off one).
    # The plan streams into a temporary table of the checkpoint, then into its rows, all in
    # one transaction: memory stays flat, and a refused plan (exit 2) writes nothing.
    counts = PlanCounts()
    memo = store if store.phone_memo_size() else NewMemo(store)
    with store.transaction():
        with _stage(f"reading and planning {config.input.path}", clock):
            with _reading(options.progress, clock) as on_rows:
                stream = checkpoint_rows(config, numbers, counts, on_rows=on_rows, memo=memo)
                store.stage_planned(stream)
                store.keep_phones()
            # WARNING past 20 % rejected; exit 2 past the max
            share = check_share(config, counted_share(counts))
        with _stage("syncing the checkpoint", clock):
            if store.get_meta("input_fingerprint") not in (None, input_digest):
                log.info(
                    "the input file changed since the last run; merging it into the checkpoint"
                )
            meta = {
                _PLAN_FINGERPRINT: fingerprint,
                _PLAN_SUMMARY: json.dumps(
                    {"rows": share.rows, "rejected": share.rejected, "reasons": share.reasons}
                ),
            }
            if input_digest is not None:
                meta["input_fingerprint"] = input_digest
            is_tty = getattr(options.progress, "is_tty", False)
            syncing = StageProgress("syncing the checkpoint", is_tty=is_tty, clock=clock)
            try:
                sync = store.sync_staged(started, meta=meta, on_rows=syncing)
            finally:
                syncing.done()
    log.info(
        "input %s: %d rows (%d new, %d known, %d vanished since the last run)",
        config.input.path,
        counts.rows_read,
        sync.new,
        sync.known,
        sync.vanished,
    )


@contextlib.contextmanager
def _stage(name: str, clock: Clock) -> Iterator[None]:
    """Log a stage of the run as it starts, and how long it took when it ends."""
    log.info("%s …", name)
    began = clock.now()
    ended = False
    try:
        yield
        ended = True
    finally:
        took = elapsed_in_words(clock.now() - began)
        if ended:
            log.info("%s took %s", name, took)
        else:
            log.info("%s stopped after %s", name, took)


@runtime_checkable
class _ShowsReading(Protocol):
    """A display that can also show the input being read (``RunProgress`` does)."""

    def rows_read(self, count: int) -> None: ...

    def reading_done(self) -> None: ...


@contextlib.contextmanager
def _reading(display: object, clock: Clock) -> Iterator[Callable[[int], None] | None]:
    """The planner's ``on_rows`` callback: the display's if it shows reading, else log lines."""
    if not isinstance(display, _ShowsReading):
        lines = StageProgress("reading and planning the input", is_tty=False, clock=clock)
        try:
            yield lines
        finally:
            lines.done()
        return
    try:
        yield display.rows_read
    finally:
        display.reading_done()


@dataclass(frozen=True)
class _Bounds:
    """When the run must stop, on ``clock.now()``: --max-duration, and --until read on the
    wall clock each time it is asked (a clock correction moves it)."""

    options: RunOptions
    started: float
    clock: Clock

    def stop_at(self) -> float | None:
        bounds = []
        if self.options.max_duration_s is not None:
            bounds.append(self.started + self.options.max_duration_s)
        if self.options.until is not None:
            bounds.append(self.clock.now() + (self.options.until - self.clock.wall()))
        return min(bounds) if bounds else None


def _keep_first(
    error: CampaignError | None, write: Callable[..., object], *args: object
) -> CampaignError | None:
    """Do one bookkeeping write; a StateError (disk full) becomes the run's error unless
    it already has one, instead of skipping the outputs."""
    try:
        write(*args)
    except StateError as exc:
        log.error("%s", exc)
        return error or exc
    return error


@contextlib.asynccontextmanager
async def _api(
    config: CampaignConfig,
    place: StatePlace,
    store: Store,
    clock: Clock,
    send_log: SendLog,
    stop: asyncio.Event,
    stop_at: Callable[[], float | None],
) -> AsyncIterator[tuple[Any, list[float], SlidingWindowLimiter]]:
    """The API client (and the in-process sandbox for ``base_url: sandbox``), sending
    through the campaign's limiter on the shared allowance."""
    from campaign.api.client import AitelierClient
    from campaign.limits.allowance import shared_limiter

    now = clock.now()
    window = max(lim.window for lim in [*config.limits.calls, *config.limits.requests])
    request_times, call_times = store.send_times(now - window - 1.0)
    # The limits belong to the key and project, not to one campaign: every run on the same
    # state dir (or state database), base URL and key shares one allowance, divided by
    # priority (issue 8).
    limits = shared_limiter(
        place.allowance(config.api.base_url, config.require_api_key()),
        config.campaign,
        config.limits.requests,
        config.limits.calls,
        priority=config.priority,
        clock=clock,
    )
    keep_alive = asyncio.create_task(limits.keep_alive())
    sandbox = None
    try:
        # A crashed run's sends still count at the server (the shared file may be gone).
        limits.seed(request_times, call_times)
        base_url = config.api.base_url
        if config.is_sandbox:
            from campaign.pipeline.sandbox_host import start_for_campaign

            sandbox = await start_for_campaign(config)
            base_url = sandbox.base_url
        async with AitelierClient(
            base_url,
            config.require_api_key(),
            limits=limits,
            clock=clock,
            on_send=send_log,
            stop=stop,  # a signal abandons a wait for Retry-After
            stop_at=stop_at,  # a Retry-After past the run's end stops it early (exit 3)
        ) as client:
            yield client, call_times, limits
    finally:
        keep_alive.cancel()
        limits.close()
        if sandbox is not None:
            await sandbox.close()


async def _preflight(
    config: CampaignConfig,
    options: RunOptions,
    store: Store,
    client: Any,
    windows: WindowBook,
    clock: Clock,
) -> Preflight:
    now = clock.wall()  # calling windows and retry times are calendar decisions
    rows_now, rows_later = rows_now_and_later(store, windows.window_for, now)
    return await run_preflight(
        client,
        rows_now=rows_now,
        rows_later=rows_later,
        call_limits=list(config.limits.calls),
        cost_estimate=config.cost_estimate,
        allow_low_balance=options.allow_low_balance,
        now=now,
    )


async def _run_engine(
    config: CampaignConfig,
    options: RunOptions,
    store: Store,
    client: Any,
    clock: Clock,
    windows: WindowBook,
    opt_outs: OptOutList,
    call_times: list[float],
    stop: asyncio.Event,
    allowance: SlidingWindowLimiter,
    gate: SendGate,
    started: float,
) -> EngineResult:
    from campaign.engine.frame import EngineDeps
    from campaign.limits.pacing import CallPacer

    settings = EngineSettings.from_config(
        config,
        # --until is watched on the wall clock by the engine itself
        deadline=(None if options.max_duration_s is None else started + options.max_duration_s),
        until=options.until,
        fetch_sessions=options.fetch_sessions,
    )
    todo = rows_to_do(store)
    with showing(options.progress, campaign=config.campaign, total=todo) as progress:
        deps = EngineDeps(
            store=store,
            client=client,
            clock=clock,
            settings=settings,
            window_for=windows.window_for,
            opt_outs=opt_outs,
            stop=stop,
            gate=gate,
            progress=progress,
        )
        if config.mode == "batches":
            from campaign.engine.batches.loop import BatchesEngine, BatchSettings

            batches = BatchesEngine(
                deps, batch=BatchSettings.from_config(config), allowance=allowance
            )
            return await batches.run()
        pacer = CallPacer(
            config.limits.calls, clock, pacing=config.limits.pacing, margin_s=allowance.margin_s
        )
        engine = CallsEngine(
            deps, call_times=call_times, call_turn=allowance.call_ready, pacer=pacer
        )
        return await engine.run()


def _exit_code(error: CampaignError | None, engine: EngineResult) -> int:
    if error is not None:
        return error.exit_code
    if engine.insufficient_funds:
        return 1
    if engine.stopped_early and engine.work_left_now:
        return 3
    return 0


def _final_error(error: CampaignError) -> CampaignError:
    if isinstance(error, AuthError):
        return error
    if isinstance(error, ApiError) and error.transient and error.exit_code == 1:
        return type(error)(
            f"the API did not answer ({error}); rerun later — unconfirmed calls are re-sent "
            "with the same idempotency keys",
            http_status=error.http_status,
            code=error.code,
            request_id=error.request_id,
        )
    return error
