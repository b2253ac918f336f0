"""Rate limits as plain values: `count` events per `window_seconds`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    count: int
    window_seconds: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Read `"10/600"` (10 per 600 s)."""
        count_text, _, window_text = text.partition("/")
        count, window = int(count_text), int(window_text)
        if count < 1 or window < 1:
            raise ValueError(f"a rate limit needs a positive count and window, got {text!r}")
        return cls(count, window)
