"""The pre-flight of every run: what will be called now and later, how long, at what cost.

Cost is ``cost_estimate`` × calls, else the average cost per call of this month's usage
(last month's when this one is empty); an estimate above the wallet balance stops the
run (exit 2) unless ``--allow-low-balance``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from campaign.config.limit import Limit
from campaign.engine.api import BillingApi
from campaign.errors import LowBalanceError
from campaign.planning.schedule import WindowFor
from campaign.store.checkpoint import Store
from campaign.store.queue import probe_row

log = logging.getLogger("campaign.engine.preflight")


@dataclass(frozen=True)
class Preflight:
    """The numbers shown before any call is placed."""

    rows_now: int
    rows_later: int
    calls_to_place: int
    projected_s: float
    cost_per_call: Decimal | None
    cost_source: str
    estimated_cost: Decimal | None
    balance: Decimal | None
    currency: str | None

    def describe(self) -> str:
        """One paragraph for the log and the console."""
        parts = [
            f"{self.rows_now} row(s) can be called now, {self.rows_later} wait for a calling "
            f"window or a retry time; ~{_duration(self.projected_s)} at the configured limits"
        ]
        if self.estimated_cost is not None:
            parts.append(
                f"estimated cost {self.estimated_cost:.2f} {self.currency or ''} "
                f"({self.cost_source}) vs wallet balance {self.balance} {self.currency or ''}"
            )
        else:
            parts.append(f"no cost estimate ({self.cost_source}); balance {self.balance}")
        return "; ".join(parts)


def rows_now_and_later(store: Store, window_for: WindowFor, now: float) -> tuple[int, int]:
    """Rows that can be called at ``now`` (pending or a retry due, in an open calling
    window), and rows that wait for a window or a retry time: counted by SQL per window
    group, each group's window asked once."""
    rows_now = rows_later = 0
    for key, due, later in store.group_counts(now):
        if due and window_for(probe_row(key)).is_open(now):
            rows_now += due
        else:
            rows_later += due
        rows_later += later
    return rows_now, rows_later


def rows_to_do(store: Store) -> int:
    """Current rows still to call or to follow (pending, retry_scheduled, in_flight)."""
    return sum(
        n
        for progress, _, vanished, n in store.row_counts()
        if not vanished and progress in ("pending", "retry_scheduled", "in_flight")
    )


def calls_per_second(limits: list[Limit]) -> float:
    """The sustained call rate the tightest limit allows."""
    return min((lim.count / lim.window for lim in limits), default=1.0)


def projected_seconds(calls: int, limits: list[Limit]) -> float:
    """How long placing ``calls`` takes at the limits (calling hours not counted)."""
    return calls / max(calls_per_second(limits), 1e-9)


async def run_preflight(
    client: BillingApi,
    *,
    rows_now: int,
    rows_later: int,
    call_limits: list[Limit],
    cost_estimate: Decimal | None,
    allow_low_balance: bool,
    now: float,
) -> Preflight:
    """Fetch wallet (and usage when needed), estimate, and refuse a run the wallet cannot pay."""
    calls = rows_now + rows_later
    wallet = await client.get_wallet()
    balance: Decimal = wallet.balance
    currency: str = wallet.currency
    per_call = cost_estimate
    source = "cost_estimate of the campaign file"
    if per_call is None and calls:
        per_call, source = await _usage_average(client, now)
    estimate = None if per_call is None else (per_call * calls).quantize(Decimal("0.01"))
    result = Preflight(
        rows_now=rows_now,
        rows_later=rows_later,
        calls_to_place=calls,
        projected_s=projected_seconds(rows_now, call_limits),
        cost_per_call=per_call,
        cost_source=source,
        estimated_cost=estimate,
        balance=balance,
        currency=currency,
    )
    log.info("pre-flight: %s", result.describe())
    if estimate is not None and estimate > balance:
        short = estimate - balance
        message = (
            f"the estimated cost of {calls} call(s), {estimate:.2f} {currency}, exceeds the "
            f"wallet balance of {balance} {currency} by {short:.2f} {currency}; top up the "
            "wallet or rerun with --allow-low-balance"
        )
        if not allow_low_balance:
            raise LowBalanceError(message)
        log.warning("%s (continuing: --allow-low-balance)", message)
    return result


async def _usage_average(client: BillingApi, now: float) -> tuple[Decimal | None, str]:
    this_month = datetime.fromtimestamp(now, tz=UTC).replace(day=1)
    last_month = this_month - timedelta(days=1)
    for moment in (this_month, last_month):
        period = moment.strftime("%Y-%m")
        usage = await client.get_usage(period)
        if usage.calls > 0:
            average = (Decimal(usage.amount) / usage.calls).quantize(Decimal("0.0001"))
            return average, f"average cost per call in {period}"
    return None, "no usage yet to estimate from"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
