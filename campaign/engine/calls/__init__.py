"""Calls mode: one ``POST /calls`` per row (``loop``), sent by ``submit``, followed by
``collect``."""

from campaign.engine.calls.loop import CallsEngine

__all__ = ["CallsEngine"]
