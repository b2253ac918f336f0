"""Checking provider callbacks: Twilio's `X-Twilio-Signature`, and a twin that refuses all.

Twilio signs each callback with HMAC-SHA1, keyed with the account's auth token, over the URL it
called (query string included) followed by every POST field name and value in name order. The
official client's `RequestValidator` computes it, compares in constant time, and also accepts
the URL with or without the default port, as Twilio may send either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twilio.request_validator import RequestValidator

from mfa_pipeline.ports import WebhookVerifier

if TYPE_CHECKING:
    from collections.abc import Mapping


class TwilioWebhookVerifier(WebhookVerifier):
    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("an empty auth token would make every signature forgeable")
        self._validator = RequestValidator(auth_token)

    def verify(self, *, url: str, params: Mapping[str, str], signature: str) -> bool:
        if not signature:
            return False
        return bool(self._validator.validate(url, dict(params), signature))


class NullWebhookVerifier(WebhookVerifier):
    """Refuses every callback: no provider secret is configured, so none can be authentic."""

    def verify(self, *, url: str, params: Mapping[str, str], signature: str) -> bool:  # noqa: ARG002
        return False
