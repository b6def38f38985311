"""Limits: exact sliding windows over a send ledger, shared fairly between campaigns.

- ``window``: the sliding-window rule (``Window``) and a private log (``SlidingWindowLog``).
- ``ledger``: the ``SendLedger`` Protocol and ``MemoryLedger``.
- ``allowance``: ``SqliteLedger``, the allowance file shared by every campaign on a key,
  and ``shared_limiter`` to open a campaign's limiter on it.
- ``fairness``: ``FairShare``, whose turn a free call slot is (by priority).
- ``headers``: what the X-RateLimit-* headers add (another client's traffic).
- ``limiter``: ``SlidingWindowLimiter``, the one limiter, over any ledger.
- ``status``: who is on an allowance file, for ``campaign status``.
"""

from campaign.limits.allowance import SqliteLedger, allowance_path, shared_limiter
from campaign.limits.fairness import FairShare
from campaign.limits.ledger import MemoryLedger, SendLedger, SendTimes
from campaign.limits.limiter import SlidingWindowLimiter
from campaign.limits.window import SlidingWindowLog, Window

__all__ = [
    "FairShare",
    "MemoryLedger",
    "SendLedger",
    "SendTimes",
    "SlidingWindowLimiter",
    "SlidingWindowLog",
    "SqliteLedger",
    "Window",
    "allowance_path",
    "shared_limiter",
]
