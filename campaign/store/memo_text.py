"""How the phone memo (store/ingest.py) keeps a normalised number's fields: one JSON array.

A module of its own, importing nothing of the store: the normaliser's worker processes
encode what they send back with it (they have the CPU to spare; the process that plans
and writes the checkpoint has none), and the checkpoint decodes it.
"""

from __future__ import annotations

import json
from typing import Any


def encode_fields(fields: Any) -> str:
    """The memo's text for a number's fields (a tuple of JSON-ready values)."""
    return json.dumps(fields)


def decode_fields(text: str) -> Any:
    """The fields ``encode_fields`` wrote, as JSON gives them back (lists for tuples)."""
    return json.loads(text)
