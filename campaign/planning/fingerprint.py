"""When a night's plan can be skipped: a fingerprint of everything the plan depends on.

A run that finds the checkpoint synced under the same fingerprint neither reads nor plans
the input again: the rows the plan would give are already there. The fingerprint covers
the input file's bytes, the campaign file's settings that planning reads (every setting
but the few below that only the calls loop reads, so a key added to the campaign file
counts unless it is listed here), the bytes of every suppression list (every file of a
registry folder), the opt-out list, the phone metadata and normaliser, the packages whose
data the plan reads, the code of the planner and readers, and the UTC day (consent and
list entries can expire with the date). Anything else changed, and the input is planned
again; then only new (raw, region) pairs are normalised (``phone_memo``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from importlib import metadata
from pathlib import Path

from campaign.config.model import CampaignConfig
from campaign.phones.normalise import normaliser_version

# Settings that only say how and when to call, never what a row becomes.
_NOT_PLANNING = frozenset(
    {
        "source_path",
        "scenario_id",
        "mode",
        "retry",
        "limits",
        "batch",
        "api",
        "priority",
        "sandbox",
        "cost_estimate",
        "state_dir",
        "output_dir",
    }
)
_CODE = [Path(__file__).parent, Path(__file__).parent.parent / "inputs"]
# Packages whose data a plan reads (holidays, ZIP codes, time zones).
_DATA_PACKAGES = ("holidays", "zipcodes", "tzdata")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest_or_why(path: Path) -> str:
    """A file's digest; a folder's (a registry download, one file per area code) is that of
    its files' names and bytes. An unreadable one never matches: planning says why."""
    try:
        if not path.is_dir():
            return file_digest(path)
        digest = hashlib.sha256()
        for found in sorted(path.rglob("*")):
            if found.is_file():
                name = str(found.relative_to(path))
                digest.update(f"{name}\0{file_digest(found)}\0".encode())
        return digest.hexdigest()
    except OSError as exc:
        return f"unreadable: {exc}"


def plan_fingerprint(
    config: CampaignConfig,
    opted_out: Iterable[str],
    *,
    today: date,
    input_digest: str | None = None,
) -> str:
    """The fingerprint of tonight's plan (``input_digest`` when the caller has it)."""
    digest = hashlib.sha256()

    def part(name: str, value: str) -> None:
        digest.update(f"{name}\0{len(value)}\0{value}\0".encode())

    part("input", input_digest or _digest_or_why(config.input.path))
    fields = set(type(config).model_fields) - _NOT_PLANNING
    part("config", config.model_dump_json(include=fields))
    for listed in config.suppression:
        part("suppression", _digest_or_why(listed.path))
    numbers = hashlib.sha256()
    for number in sorted(opted_out):
        numbers.update(number.encode() + b"\n")
    part("opt-outs", numbers.hexdigest())
    part("phones", normaliser_version())
    for package in _DATA_PACKAGES:
        try:
            part(package, metadata.version(package))
        except metadata.PackageNotFoundError:
            part(package, "absent")
    part("code", _code_digest())
    part("day", today.isoformat())
    return digest.hexdigest()


_code: list[str] = []


def _code_digest() -> str:
    if not _code:
        digest = hashlib.sha256()
        for folder in _CODE:
            for module in sorted(folder.glob("*.py")):
                digest.update(module.name.encode() + b"\0" + module.read_bytes())
        _code.append(digest.hexdigest())
    return _code[0]
