"""The messy CRM export of ``scale.py`` (cached in ``benchmarks/.data/``) and the bare loop.

The file is written row by row from one seed, so a smaller file is the first rows of a
larger one. About 1.5 % of the numbers repeat an earlier one (several exports merged).
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

import phonenumbers

DATA = Path(__file__).resolve().parent / ".data"
FORMAT_VERSION = 1  # bump when generate() changes, so cached files are remade

# (region, share, patterns): # is any digit, @ is 2-9; US numbers get a real area code.
US_AREAS = ["212", "305", "312", "415", "512", "617", "646", "702", "713", "206", "404", "303"]
COUNTRIES = [
    ("US", 0.70, ["(AAA) @##-####", "AAA.@##.####", "+1 AAA @##-####", "1-AAA-@##-####",
                  "AAA @## ####", "AAA@######", " AAA-@##-#### "]),
    ("GB", 0.10, ["079## ######", "+44 7### ######", "0044 79## ######", "(020) 7946 ####"]),
    ("FR", 0.05, ["06 ## ## ## ##", "+33 6 ## ## ## ##", "06.##.##.##.##"]),
    ("DE", 0.04, ["01521 #######", "+49 151 ########"]),
    ("CA", 0.04, ["(416) @##-####", "+1 604 @##-####"]),
    ("ES", 0.03, ["6## ## ## ##", "+34 6## ### ###"]),
    ("MX", 0.02, ["+52 55 #### ####", "55 #### ####"]),
    ("AU", 0.02, ["04## ### ###", "+61 4## ### ###"]),
]  # fmt: skip
# How the country column spells each region, the first spelling most often.
SPELLINGS = {
    "US": ["US", "USA", "United States", "us", ""],
    "GB": ["GB", "UK", "United Kingdom"],
    "FR": ["FR", "France"],
    "DE": ["DE", "Germany"],
    "CA": ["CA", "Canada"],
    "ES": ["ES", "Spain"],
    "MX": ["MX", "Mexico"],
    "AU": ["AU", "Australia"],
}
REGION_OF_CELL = {cell: region for region, cells in SPELLINGS.items() for cell in cells}
JUNK = ["n/a", "unknown", "12345", "call me", "0000000000", "+1 (555) 01", "tel"]


def _fill(pattern: str, rng: random.Random) -> str:
    pattern = pattern.replace("AAA", rng.choice(US_AREAS))
    digits = {"#": "0123456789", "@": "23456789"}
    return "".join(rng.choice(digits[char]) if char in digits else char for char in pattern)


def _country_cell(region: str, rng: random.Random) -> str:
    spellings = SPELLINGS[region]
    return spellings[0] if rng.random() < 0.8 else rng.choice(spellings)


def generate(path: Path, rows: int, seed: int) -> None:
    """Write the messy export to ``path`` (through a temp name, so a cut run leaves none)."""
    rng = random.Random(seed)
    regions = [region for region, _, _ in COUNTRIES]
    weights = [share for _, share, _ in COUNTRIES]
    patterns = {region: formats for region, _, formats in COUNTRIES}
    seen: list[tuple[str, str]] = []
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "first_name", "phone", "country", "plan", "consent"])
        for index in range(rows):
            roll = rng.random()
            if seen and roll < 0.015:  # the same person in two merged exports
                raw, region = rng.choice(seen)
            elif roll < 0.025:
                raw, region = rng.choice(JUNK), "US"
            elif roll < 0.035:
                raw, region = "", "US"
            else:
                region = rng.choices(regions, weights)[0]
                raw = _fill(rng.choice(patterns[region]), rng)
                if len(seen) < 50_000:
                    seen.append((raw, region))
                elif rng.random() < 0.05:
                    seen[rng.randrange(len(seen))] = (raw, region)
            consent = "yes" if rng.random() < 0.97 else rng.choice(["no", ""])
            writer.writerow(
                [f"C{index:07d}", f"name{index % 977}", raw, _country_cell(region, rng),
                 rng.choice(["basic", "gold", "plus"]), consent]
            )  # fmt: skip
    partial.replace(path)


def data_file(rows: int, seed: int) -> Path:
    """The cached export of ``rows`` rows, generated on first use."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"crm-v{FORMAT_VERSION}-seed{seed}-{rows}.csv"
    if not path.exists():
        started = time.monotonic()
        generate(path, rows, seed)
        size = path.stat().st_size / 1e6
        print(f"generated {path} ({size:.0f} MB) in {time.monotonic() - started:.1f} s")
    return path


def bare_loop(data: Path) -> float:
    """Rows/s of a single-process phonenumbers loop over the file (reading it as it goes)."""
    rows = 0
    started = time.perf_counter()
    with data.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            rows += 1
            region = REGION_OF_CELL.get(row["country"].strip(), "US")
            try:
                number = phonenumbers.parse(row["phone"], region)
            except phonenumbers.NumberParseException:
                continue
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return rows / (time.perf_counter() - started)
