"""Webhook POSTs with httpx: one attempt per call; retries belong to the Celery task."""

from __future__ import annotations

import httpx

from mfa_pipeline.ports import WebhookError, WebhookSender

_CLIENT_ERRORS_WORTH_A_RETRY = frozenset({408, 425, 429})


class HttpxWebhookSender(WebhookSender):
    def __init__(self, *, timeout: float = 5.0) -> None:
        # No redirects: a 3xx to elsewhere must not carry the signed body there.
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise WebhookError("the receiver did not answer in time", code="timeout") from None
        except httpx.HTTPError:
            raise WebhookError("the receiver could not be reached", code="connection") from None
        status = response.status_code
        if 200 <= status < 300:  # noqa: PLR2004
            return
        retryable = status >= 500 or status in _CLIENT_ERRORS_WORTH_A_RETRY  # noqa: PLR2004
        raise WebhookError(f"the receiver answered {status}", code=str(status), retryable=retryable)
