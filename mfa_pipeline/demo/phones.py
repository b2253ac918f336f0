"""Phone entry for SMS setup: the country list, a guess from the browser, formatting as typed."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers


@dataclass(frozen=True)
class Country:
    region: str
    name: str

    @property
    def calling_code(self) -> int:
        return int(phonenumbers.country_code_for_region(self.region))

    @property
    def label(self) -> str:
        return f"{self.name} (+{self.calling_code})"


COUNTRIES = [
    Country(region, name)
    for region, name in (
        ("AU", "Australia"),
        ("AT", "Austria"),
        ("BE", "Belgium"),
        ("BR", "Brazil"),
        ("CA", "Canada"),
        ("DK", "Denmark"),
        ("FI", "Finland"),
        ("FR", "France"),
        ("DE", "Germany"),
        ("IN", "India"),
        ("IE", "Ireland"),
        ("IT", "Italy"),
        ("JP", "Japan"),
        ("MX", "Mexico"),
        ("NL", "Netherlands"),
        ("NZ", "New Zealand"),
        ("NO", "Norway"),
        ("PL", "Poland"),
        ("PT", "Portugal"),
        ("SG", "Singapore"),
        ("ZA", "South Africa"),
        ("ES", "Spain"),
        ("SE", "Sweden"),
        ("CH", "Switzerland"),
        ("GB", "United Kingdom"),
        ("US", "United States"),
    )
]
REGIONS = {c.region for c in COUNTRIES}
DEFAULT_REGION = "US"


def guess_region(accept_language: str | None) -> str:
    """The first listed country named in `Accept-Language` (`en-GB` → GB), else the US."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip()
        if "-" in tag:
            region = tag.rsplit("-", 1)[1].upper()
            if region in REGIONS:
                return region
    return DEFAULT_REGION


def region_of_prefix(typed: str) -> str | None:
    """The country an international number starts with (`+44 7...` → GB), when known."""
    digits = "".join(ch for ch in typed if ch.isdigit())
    if not typed.strip().startswith("+"):
        return None
    for length in (1, 2, 3):
        if len(digits) < length:
            break
        regions = phonenumbers.region_codes_for_country_code(int(digits[:length]))
        if regions:
            listed = [r for r in regions if r in REGIONS]
            return listed[0] if listed else regions[0]
    return None


def format_as_typed(typed: str, region: str) -> tuple[str, str]:
    """The number as the user would write it so far, and the country it belongs to."""
    region = region_of_prefix(typed) or (region if region in REGIONS else DEFAULT_REGION)
    formatter = phonenumbers.AsYouTypeFormatter(region)
    formatted = ""
    for ch in typed[:32]:
        if ch.isdigit() or (ch == "+" and not formatted):
            formatted = formatter.input_digit(ch)
    return formatted, region
