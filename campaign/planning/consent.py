"""Consent to automated calls with an artificial voice: which rows need it, how it is known.

Every call of this tool is an automated call with an artificial voice. In the US the TCPA
(47 U.S.C. 227(b)) asks for the called party's prior express consent to such calls to a
mobile number, and prior express *written* consent for telemarketing; the FCC ruled in
February 2024 (FCC 24-17) that AI-generated voices are "artificial". A campaign says how
consent is known for numbers of the regions that need it (``compliance.consent_regions``
adds to the US): per row in ``input.consent_column``, or ``compliance.consent: attested``
for the whole list. With neither, a run that would call such a number refuses to start.
"""

from __future__ import annotations

import logging
import re
from datetime import date

from campaign.config.model import CampaignConfig
from campaign.config.values import shown
from campaign.errors import ConfigError

log = logging.getLogger("campaign.planning.consent")

NO_CONSENT = "no recorded consent"
# Cell values that record consent, compared without case and surrounding spaces. A date
# (2026-03-01, also with a time) counts too: the day consent was given, if not after today.
CONSENT_SPELLINGS = (
    "yes", "y", "true", "t", "1", "x", "✓", "✔", "consent", "consented", "opt-in",
    "opt in", "optin", "opted-in", "opted in", "granted", "given", "agreed", "signed",
)  # fmt: skip
# Cell values that plainly say "no": the row is rejected with the plain reason. Anything
# else that is not a consent spelling is not consent either, and its reason quotes it.
REFUSAL_SPELLINGS = (
    "", "no", "n", "false", "f", "0", "-", "none", "null", "n/a", "na", "unknown", "pending",
    "opt-out", "opt out", "optout", "opted-out", "opted out", "withdrawn", "revoked",
    "declined", "refused", "denied", "off",
)  # fmt: skip
# US law reaches the territories, whose numbers phonenumbers gives regions of their own.
US_TERRITORIES = frozenset({"PR", "GU", "VI", "AS", "MP", "UM"})
_TRUTHY = frozenset(CONSENT_SPELLINGS)
_FALSY = frozenset(REFUSAL_SPELLINGS)
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ t][0-9:.+\-z]*)?$")
_LAW = (
    "every call of this tool is an automated call with an artificial (AI) voice, and US law "
    "(the TCPA; the FCC's February 2024 ruling that AI voices are artificial) requires the "
    "called party's prior express consent for such calls to mobile numbers, and prior "
    "express written consent for telemarketing"
)


def consent_regions(config: CampaignConfig) -> frozenset[str]:
    """The number regions whose rows need consent: the US includes its territories."""
    regions = set(config.compliance.regions_needing_consent)
    if "US" in regions:
        regions |= US_TERRITORIES
    return frozenset(regions)


def consent_problem(cell: str, column: str, today: date) -> str | None:
    """Why a consent cell does not record consent (None when it does)."""
    value = cell.strip().lower()
    if value in _TRUTHY:
        return None
    if value in _FALSY:
        return NO_CONSENT
    match = _DATE_RE.match(value)
    if match:
        try:
            given = date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return f"{NO_CONSENT}: {shown(cell.strip())} in column '{column}' is not a date"
        if given > today:
            return f"{NO_CONSENT}: dated {given.isoformat()} in column '{column}', after today"
        return None
    return (
        f"{NO_CONSENT}: {shown(cell.strip())} in column '{column}' is not a consent value "
        "(yes, true, 1, x, opt-in, a date such as 2026-03-01, …)"
    )


def consent_basis(config: CampaignConfig) -> str:
    """How this campaign knows consent, in one line for the log, summary.json and report."""
    regions = ", ".join(
        "US (and its territories)" if region == "US" else region
        for region in config.compliance.regions_needing_consent
    )
    if config.input.consent_column:
        return (
            f"recorded per row in column '{config.input.consent_column}' (input.consent_column) "
            f"for numbers in {regions}; rows without it are rejected"
        )
    if config.compliance.consent == "attested":
        return (
            f"attested (compliance.consent: attested): the operator states that every person "
            f"on this list with a number in {regions} gave prior express consent; rows are "
            "not checked"
        )
    return f"none given: numbers in {regions} are not called"


def log_consent_basis(config: CampaignConfig) -> None:
    """Log how consent is known; an attestation is a WARNING (every run says it)."""
    if config.input.consent_column:
        log.info("consent: %s", consent_basis(config))
    elif config.compliance.consent == "attested":
        log.warning("consent: %s", consent_basis(config))


def check_consent_keys(config: CampaignConfig) -> None:
    """ConfigError when the campaign file gives both bases at once."""
    if config.input.consent_column and config.compliance.consent == "attested":
        raise ConfigError(
            f"input.consent_column '{config.input.consent_column}' and "
            "compliance.consent: attested are both set; keep one: the column checks each "
            "row, attested states that every row consented without checking",
            path=str(config.source_path),
            key="compliance.consent",
        )


def missing_basis_error(config: CampaignConfig, rows: int, regions: dict[str, int]) -> ConfigError:
    """The refusal of a campaign that would call numbers needing consent with no basis."""
    where = ", ".join(f"{count:,} in {region}" for region, count in sorted(regions.items()))
    return ConfigError(
        f"{rows:,} row(s) have numbers that need the called person's consent ({where}), and "
        "the campaign file does not say how consent is known: "
        f"{_LAW}. Add input.consent_column naming the column of the export that records "
        "each person's consent (rows without it are rejected), or, if every person on the "
        "list consented and you can prove it, compliance: {consent: attested} (printed in "
        "every run's log and report)",
        path=str(config.source_path),
        key="input.consent_column / compliance.consent",
    )
