"""A phone number as the service keeps it: E.164 for sending, the other forms for people."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    e164: str
    international: str
    national: str
    region: str | None

    @property
    def last2(self) -> str:
        return self.e164[-2:]
