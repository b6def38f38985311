"""Limits: exact sliding windows over a send ledger, shared fairly between campaigns.

- ``window``: the sliding-window rule (``Window``).
- ``ledger``: the ``SendLedger`` Protocol and ``MemoryLedger``.
- ``allowance``: ``SqliteLedger``, the allowance file shared by every campaign on a key,
  and ``shared_limiter`` to open a campaign's limiter on it.
- ``fairness``: ``FairShare``, whose turn a free call slot is (by priority).
- ``headers``: what the X-RateLimit-* headers add (another client's traffic).
- ``limiter``: ``SlidingWindowLimiter``, the one limiter, over any ledger.
- ``pacing``: ``CallPacer``, calls spread evenly over the window (aiolimiter) or not.
- ``status``: who is on an allowance file, for ``campaign status``.
"""

from campaign.limits.allowance import SqliteLedger, allowance_path, shared_limiter
from campaign.limits.fairness import FairShare
from campaign.limits.ledger import MemoryLedger, SendLedger, SendTimes
from campaign.limits.limiter import SlidingWindowLimiter
from campaign.limits.pacing import CallPacer, Pacing
from campaign.limits.window import Window

__all__ = [
    "CallPacer",
    "FairShare",
    "MemoryLedger",
    "Pacing",
    "SendLedger",
    "SendTimes",
    "SlidingWindowLimiter",
    "SqliteLedger",
    "Window",
    "allowance_path",
    "shared_limiter",
]
