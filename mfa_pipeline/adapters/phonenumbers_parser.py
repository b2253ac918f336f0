"""Phone numbers parsed and normalised with `phonenumbers` before anything is stored or sent."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from mfa_pipeline.domain.errors import InvalidPhoneError
from mfa_pipeline.domain.phones import PhoneNumber
from mfa_pipeline.domain.sms_spend import SmsDestination
from mfa_pipeline.ports import PhoneNumbers

# Types that can receive an SMS (fixed lines are refused: most cannot).
_SMS_CAPABLE = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


def parse_phone(text: object, region: str | None = None) -> PhoneNumber:
    """Parse `text` (with `+` and country code, or national with `region` such as "US")."""
    if not isinstance(text, str) or not text.strip() or len(text) > 64:  # noqa: PLR2004 - sanity bound
        raise InvalidPhoneError("Enter a phone number, e.g. +1 201 555 0123.")
    if region is not None and (len(region) != 2 or not region.isascii() or not region.isalpha()):  # noqa: PLR2004 - ISO 3166 alpha-2
        raise InvalidPhoneError("The region must be a two-letter country code such as US.")
    try:
        parsed = phonenumbers.parse(text, region.upper() if region else None)
    except NumberParseException as exc:
        hint = (
            "" if text.strip().startswith("+") or region else " Add the country code or a region."
        )
        raise InvalidPhoneError(f"That is not a phone number we can read.{hint}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneError("That phone number is not valid for its country.")
    if phonenumbers.number_type(parsed) not in _SMS_CAPABLE:
        raise InvalidPhoneError("That number cannot receive text messages; use a mobile number.")
    return PhoneNumber(
        e164=phonenumbers.format_number(parsed, PhoneNumberFormat.E164),
        international=phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL),
        national=phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL),
        region=phonenumbers.region_code_for_number(parsed),
    )


# Digits of the national number that name a block of numbers (in the US, area code and
# exchange: 10,000 numbers). Premium and pumped ranges are leased in such blocks.
PREFIX_DIGITS = 6


def sms_destination(e164: str) -> SmsDestination:
    """The number, its block and its country, for the SMS pumping limits.

    Non-geographic numbers (satellite +881, international networks +882/+883, ...) have no
    region (`phonenumbers` says "001" for all of them): each calling code is its own country
    here, so they never share one bucket.
    """
    parsed = phonenumbers.parse(e164, None)
    national = str(parsed.national_number)
    non_geographic = parsed.country_code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    region = phonenumbers.region_code_for_number(parsed)
    return SmsDestination(
        number=e164,
        prefix=f"+{parsed.country_code}{national[:PREFIX_DIGITS]}",
        country=f"+{parsed.country_code}" if non_geographic or not region else region,
        non_geographic=non_geographic,
    )


class PhonenumbersPhoneNumbers(PhoneNumbers):
    def parse(self, text: object, region: str | None = None) -> PhoneNumber:
        return parse_phone(text, region)

    def destination(self, e164: str) -> SmsDestination:
        return sms_destination(e164)
