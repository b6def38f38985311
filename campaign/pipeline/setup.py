"""Wiring for one run: the send gate built from today's inputs and the checkpoint."""

from __future__ import annotations

from campaign.config.model import CampaignConfig
from campaign.engine.gate import SendGate
from campaign.planning.frequency import Cap, caps_for
from campaign.planning.windows import WindowBook
from campaign.store.checkpoint import Store, StoredRow
from campaign.store.contacts import CallLedger
from campaign.store.optout import OptOutList


def build_gate(
    config: CampaignConfig,
    store: Store,
    opt_outs: OptOutList,
    windows: WindowBook,
    calls: CallLedger,
) -> SendGate:
    """The send gate of this run: today's suppression lists, the opt-out list, the windows,
    and the frequency caps counted in the shared calls-per-number ledger (``calls``)."""
    from campaign.planning.suppression import suppressed_numbers

    configured = list(config.compliance.max_calls_per_number)

    def row_caps(row: StoredRow) -> list[Cap]:
        return caps_for(row.us_state, configured)

    return SendGate(
        store=store,
        suppression=suppressed_numbers(config),
        opt_outs=opt_outs,
        window_for=windows.window_for,
        stop_before_close_s=config.stop_before_close_s,
        calls=calls,
        caps_for=row_caps,
        campaign=config.campaign,
    )
