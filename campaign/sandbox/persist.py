"""Saving and loading the sandbox's world to one JSON file, atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from campaign.sandbox.config import SandboxConfig
from campaign.sandbox.idempotency import IdempotencyMemory
from campaign.sandbox.world import World


def load_state(
    config: SandboxConfig, path: Path | None, now: float
) -> tuple[World, IdempotencyMemory]:
    """The saved world and idempotency memory, or fresh ones when there is no file."""
    if path is None or not path.exists():
        return World(config, now), IdempotencyMemory(config.idempotency_ttl_s)
    raw = json.loads(path.read_text(encoding="utf-8"))
    world = World.from_plain(config, raw.get("world", {}), now)
    memory = IdempotencyMemory.from_plain(config.idempotency_ttl_s, raw.get("idempotency", {}))
    return world, memory


def save_state(path: Path, world: World, memory: IdempotencyMemory) -> None:
    """Write the state to a temp file in the same directory, then rename over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"world": world.to_plain(), "idempotency": memory.to_plain()}
    payload = json.dumps(state, separators=(",", ":"))
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as temp:
            temp.write(payload)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
