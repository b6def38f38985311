"""Regenerate the sample CRM export and do-not-call list (deterministic: seeded).

    .venv/bin/python sample_data/generate.py

spring_contacts.csv is shaped like a real CRM export: UTF-8 with a BOM and CRLF line ends
(as Excel saves it), mixed countries and phone formats (+, 00, 011, national, dots, digits
only), Excel damage (4.47400123456E+11, a trailing .0), vanity numbers, extensions,
duplicates, and a few rows that cannot be called. The consent column records each
customer's consent to automated calls as CRMs spell it (yes, Y, TRUE, x, opt-in, a date);
five US customers have none (empty, no, withdrawn). Every number meant to be valid is
checked with phonenumbers.is_valid_number while generating. US and Canadian numbers use
the fictional 555-01XX lines, Australian ones the 0491 570 xxx drama range.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat

SEED = 2026
HERE = Path(__file__).resolve().parent
HEADER = [
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "country",
    "city",
    "plan",
    "renewal_date",
    "consent",
]
PLANS = ["basic", "plus", "premium", "family"]

# region → (share of people, cities, national-number generator, first names, last names)
NAMES = {
    "US": (["James", "Maria", "Robert", "Linda", "Michael", "Jennifer", "David", "Ashley",
            "Chris", "Jessica", "Tyler", "Brianna", "Kevin", "Zoë", "Anthony", "Dana"],
           ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
            "Martinez", "Lopez", "O'Brien", "Nguyen", "Kim", "Patel", "Walker", "Young"]),
    "CA": (["Liam", "Olivia", "Noah", "Emma", "Étienne", "Chloé", "Owen", "Avery"],
           ["Tremblay", "Gagnon", "Roy", "Côté", "MacDonald", "Wilson", "Campbell", "Lee"]),
    "GB": (["Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Sophie"],
           ["Taylor", "Davies", "Evans", "Thomas", "Roberts", "Hughes", "Wright", "Clarke"]),
    "FR": (["Louis", "Léa", "Gabriel", "Manon", "Hugo", "Inès", "Jules", "Camille"],
           ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit", "Durand", "Lefèvre"]),
    "DE": (["Lukas", "Mia", "Leon", "Hannah", "Felix", "Lena", "Jonas", "Marie"],
           ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"]),
    "ES": (["Hugo", "Lucía", "Martín", "Sofía", "Pablo", "Martina", "Álvaro", "Paula"],
           ["García", "Fernández", "González", "Rodríguez", "López", "Sánchez", "Pérez", "Ruiz"]),
    "IT": (["Leonardo", "Giulia", "Francesco", "Aurora", "Alessandro", "Chiara", "Matteo"],
           ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo"]),
    "NL": (["Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Finn", "Sanne"],
           ["de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit"]),
    "AU": (["Jack", "Charlotte", "William", "Mia", "Thomas", "Grace", "Lachlan", "Ruby"],
           ["Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Anderson", "White"]),
    "BR": (["João", "Maria", "Pedro", "Ana", "Lucas", "Beatriz", "Gabriel", "Larissa"],
           ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Almeida", "Lima"]),
    "MX": (["José", "Guadalupe", "Juan", "Fernanda", "Diego", "Valeria", "Carlos", "Ximena"],
           ["Hernández", "García", "Martínez", "López", "González", "Ramírez", "Flores"]),
    "IN": (["Aarav", "Ananya", "Vihaan", "Diya", "Arjun", "Isha", "Rohan", "Priya"],
           ["Sharma", "Verma", "Iyer", "Reddy", "Nair", "Gupta", "Mehta", "Kapoor"]),
}  # fmt: skip
CITIES = {
    "US": [("San Francisco", "415"), ("New York", "212"), ("Chicago", "312"),
           ("Boston", "617"), ("Seattle", "206"), ("Miami", "305"), ("Austin", "512"),
           ("Denver", "303")],
    "CA": [("Toronto", "416"), ("Vancouver", "604"), ("Montréal", "514"), ("Calgary", "403")],
    "GB": [("London", ""), ("Manchester", ""), ("Leeds", ""), ("Bristol", "")],
    "FR": [("Paris", ""), ("Lyon", ""), ("Marseille", "")],
    "DE": [("Berlin", ""), ("München", ""), ("Hamburg", "")],
    "ES": [("Madrid", ""), ("Barcelona", ""), ("Sevilla", "")],
    "IT": [("Roma", ""), ("Milano", ""), ("Torino", "")],
    "NL": [("Amsterdam", ""), ("Rotterdam", ""), ("Utrecht", "")],
    "AU": [("Sydney", ""), ("Melbourne", ""), ("Brisbane", "")],
    "BR": [("São Paulo", ""), ("Rio de Janeiro", "")],
    "MX": [("Ciudad de México", ""), ("Guadalajara", "")],
    "IN": [("Mumbai", ""), ("Bengaluru", ""), ("Delhi", "")],
}  # fmt: skip
SHARES = {"US": 96, "CA": 22, "GB": 28, "FR": 18, "DE": 18, "ES": 14, "IT": 14, "NL": 14,
          "AU": 14, "BR": 14, "MX": 14, "IN": 14}  # fmt: skip
# National significant numbers: a fixed (valid) prefix and how many random digits follow.
MOBILE_PREFIX = {
    "GB": ("74001", 5), "FR": ("6123", 5), "DE": ("15123", 6), "ES": ("6123", 5),
    "IT": ("3123", 6), "NL": ("6123", 5), "AU": ("491570", 3), "BR": ("1196", 7),
    "MX": ("5512", 6), "IN": ("98765", 5),
}  # fmt: skip
# Rows that can never be called, as CRMs really hold them.
BAD_PHONES = [
    ("", "US"),
    ("", "GB"),
    ("", ""),
    ("n/a", "US"),
    ("call me", "US"),
    ("12345", "US"),
    ("555-CALL", "US"),
    ("+1 415 555", ""),
    ("+1 415 000 0000", ""),  # E.164 syntax but no such number: the API would accept it
    ("000000000", "FR"),
    ("+99 123456789", ""),
    ("see notes", "DE"),
    ("4.47401E+11", "GB"),  # Excel's display precision: digits are lost for good
]
VANITY = ["1-800-FLOWERS", "1-888-SPRING-1"]
# Consent to automated calls (input.consent_column), as CRM users spell it.
CONSENT_YES = ["yes", "Yes", "Y", "TRUE", "x", "opt-in", "1", "2025-06-14"]
CONSENT_NO = ["", "no", "withdrawn", "N", ""]
# Customers (by position in the export) with no consent recorded: US ones that are not
# duplicated, on the do-not-call list or in a household, so each is one rejected row.
NO_CONSENT_PEOPLE = (10, 18, 34, 49, 73)


@dataclass
class Person:
    """One customer of the CRM (before formatting the phone for the export)."""

    customer_id: str
    first_name: str
    last_name: str
    country: str
    city: str
    e164: str
    plan: str
    renewal: date


def _e164(rng: random.Random, region: str, area: str, used: set[str]) -> str:
    """A valid, unused number of ``region``."""
    while True:
        if region in ("US", "CA"):
            national = f"{area}5550{rng.randrange(100, 200)}"
        else:
            prefix, free = MOBILE_PREFIX[region]
            national = prefix + "".join(str(rng.randrange(10)) for _ in range(free))
        number = phonenumbers.parse(national, region)
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        if phonenumbers.is_valid_number(number) and e164 not in used:
            used.add(e164)
            return e164


def _excel(e164: str, rng: random.Random) -> str:
    """What Excel does to a +number it took for a number: scientific notation or '.0'."""
    digits = e164[1:]
    if rng.random() < 0.5:
        mantissa = f"{digits[0]}.{digits[1:]}"  # full precision: recoverable
        return f"{mantissa}E+{len(digits) - 1}"
    return f"{digits}.0"


def _format_phone(person: Person, rng: random.Random) -> tuple[str, str]:
    """The phone as some CRM user typed it, and the country cell (sometimes left empty)."""
    number = phonenumbers.parse(person.e164)
    region = person.country
    style = rng.choices(
        ["e164", "intl", "national", "00", "011", "dots", "digits", "excel", "ext"],
        weights=[18, 18, 30, 8, 5, 6, 6, 5, 4],
    )[0]
    nanp = region in ("US", "CA")
    if style == "e164":
        return person.e164, region if rng.random() < 0.8 else ""
    if style == "intl":
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL), region
    if style == "00" and not nanp:
        spaced = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        return "00" + spaced[1:], region
    if style == "011" and not nanp:
        # A US-based rep dialling abroad; the country cell was left empty (default US).
        spaced = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        return "011 " + spaced[1:], ""
    if style == "excel" and region in ("US", "CA", "GB", "FR", "AU", "BR"):
        return _excel(person.e164, rng), region
    if style == "dots" and nanp:
        national = str(number.national_number)
        return f"{national[:3]}.{national[3:6]}.{national[6:]}", region
    if style == "digits" and nanp:
        return (
            (str(number.national_number), region)
            if rng.random() < 0.5
            else (
                person.e164[1:],
                region,
            )
        )
    if style == "ext" and nanp:
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        return f"{national} ext. {rng.randrange(10, 400)}", region
    return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL), region


def _email(first: str, last: str, index: int) -> str:
    ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}".lower())
    plain = "".join(ch for ch in ascii_name if ch.isascii() and ch not in " '")
    return f"{plain}{index % 7 or ''}@example.com"


def build_people(rng: random.Random) -> list[Person]:
    """The distinct customers, in a shuffled (CRM export) order."""
    used: set[str] = set()
    people: list[Person] = []
    for region, count in SHARES.items():
        firsts, lasts = NAMES[region]
        for _ in range(count):
            city, area = rng.choice(CITIES[region])
            people.append(
                Person(
                    customer_id="",
                    first_name=rng.choice(firsts),
                    last_name=rng.choice(lasts),
                    country=region,
                    city=city,
                    e164=_e164(rng, region, area, used),
                    plan=rng.choices(PLANS, weights=[4, 3, 2, 1])[0],
                    renewal=date(2026, 12, 1) + timedelta(days=rng.randrange(0, 120)),
                )
            )
    rng.shuffle(people)
    for index, person in enumerate(people):
        person.customer_id = f"C-{10001 + index}"
    return people


def build_rows(rng: random.Random, people: list[Person]) -> list[dict[str, str]]:
    """Export rows: everyone once, plus duplicates, vanity numbers and bad rows mixed in."""
    rows: list[dict[str, str]] = []
    for person in people:
        phone, country = _format_phone(person, rng)
        rows.append(_row(person, phone, country))
    # The same export twice for three customers (a sync glitch): identical rows.
    for index in (7, 60, 141):
        rows.insert(index + 40, dict(rows[index]))
    # Households: another customer record with the same number, formatted differently.
    for index in (12, 95, 180, 230, 260):
        twin = people[index]
        spouse = Person(
            customer_id=f"C-{20001 + index}",
            first_name=rng.choice(NAMES[twin.country][0]),
            last_name=twin.last_name,
            country=twin.country,
            city=twin.city,
            e164=twin.e164,
            plan="family",
            renewal=twin.renewal,
        )
        number = phonenumbers.parse(twin.e164)
        spaced = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        rows.insert(rng.randrange(len(rows)), _row(spouse, spaced, twin.country))
    for offset, phone in enumerate(VANITY):
        vanity = Person(f"C-{30001 + offset}", "Sam", "Vance", "US", "Portland", "", "plus",
                        date(2026, 12, 24))  # fmt: skip
        rows.insert(rng.randrange(len(rows)), _row(vanity, phone, "US"))
    for offset, (phone, country) in enumerate(BAD_PHONES):
        region = country or "US"
        person = Person(
            customer_id=f"C-{40001 + offset}",
            first_name=rng.choice(NAMES[region][0]),
            last_name=rng.choice(NAMES[region][1]),
            country=country,
            city="",
            e164="",
            plan=rng.choice(PLANS),
            renewal=date(2027, 1, 15),
        )
        rows.insert(rng.randrange(len(rows)), _row(person, phone, country))
    return rows


def _row(person: Person, phone: str, country: str) -> dict[str, str]:
    return {
        "customer_id": person.customer_id,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "email": _email(person.first_name, person.last_name, len(person.customer_id)),
        "phone": phone,
        "country": country,
        "city": person.city,
        "plan": person.plan,
        "renewal_date": person.renewal.isoformat(),
    }


def add_consent(rows: list[dict[str, str]], people: list[Person]) -> None:
    """Fill the consent column: every customer has one, but for NO_CONSENT_PEOPLE."""
    rng = random.Random(SEED + 1)  # its own stream: the other columns stay as they were
    refused = {
        people[index].customer_id: value
        for index, value in zip(NO_CONSENT_PEOPLE, CONSENT_NO, strict=True)
    }
    given: dict[str, str] = {}
    for row in rows:
        key = row["customer_id"]
        if key not in given:
            given[key] = refused.get(key, rng.choice(CONSENT_YES))
        row["consent"] = given[key]


def build_do_not_call(rng: random.Random, people: list[Person]) -> list[str]:
    """Six numbers of customers (written differently than in the export) and four others."""
    numbers = []
    for index in (3, 44, 101, 150, 199, 270):
        number = phonenumbers.parse(people[index].e164)
        numbers.append(phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL))
    numbers += ["+1 415-555-0199", "+44 7400 199999", "+33 6 12 39 99 99", "+61 491 570 159"]
    taken = {p.e164 for p in people}
    outsiders = [n for n in numbers[6:] if _to_e164(n) not in taken]
    return numbers[:6] + outsiders


def _to_e164(text: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(text), PhoneNumberFormat.E164)


def main(out_dir: Path = HERE) -> None:
    """Write spring_contacts.csv and do_not_call.csv (next to this script by default)."""
    rng = random.Random(SEED)
    people = build_people(rng)
    rows = build_rows(rng, people)
    add_consent(rows, people)
    # Excel's "CSV UTF-8": a BOM and CRLF line ends.
    with (out_dir / "spring_contacts.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    with (out_dir / "do_not_call.csv").open("w", encoding="utf-8", newline="") as handle:
        writer_dnc = csv.writer(handle, lineterminator="\n")
        writer_dnc.writerow(["phone", "added", "source"])
        for index, number in enumerate(build_do_not_call(rng, people)):
            added = date(2025, 3, 1) + timedelta(days=37 * index)
            writer_dnc.writerow([number, added.isoformat(), "customer request"])
    print(f"wrote {len(rows)} rows to spring_contacts.csv and the do-not-call list")


if __name__ == "__main__":
    main()
