"""SMS through Twilio's Messages API with the official client."""

from __future__ import annotations

import logging
import os

import requests
import structlog
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from mfa_pipeline.ports import SmsPermanentError, SmsReceipt, SmsSender, SmsTransientError

log = structlog.get_logger(__name__)

_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500


class TwilioSmsSender(SmsSender):
    """Classifies Twilio's answers: 429/5xx/timeouts are worth a retry, other 4xx are final."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_: str,
        *,
        api_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        # The client logs whole request bodies (the code) at DEBUG: never let that through.
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
        http_client = TwilioHttpClient(timeout=timeout)
        if http_client.session is not None and not any(
            name.lower().endswith("_proxy") for name in os.environ
        ):
            # requests re-reads proxy variables from the whole environment on every call
            # (~1 ms each); with none set there is nothing to find.
            http_client.session.trust_env = False
        self._client = Client(account_sid, auth_token, http_client=http_client)
        if api_base_url:
            self._client.api.base_url = api_base_url.rstrip("/")
        self._from = from_

    def send(self, *, to: str, body: str, status_callback: str | None = None) -> SmsReceipt:
        kwargs = {"to": to, "from_": self._from, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        try:
            message = self._client.messages.create(**kwargs)
        except TwilioRestException as exc:
            code = str(exc.code or exc.status)
            if exc.status == _TOO_MANY_REQUESTS or exc.status >= _SERVER_ERROR:
                raise SmsTransientError(f"Twilio answered {exc.status}", code=code) from None
            raise SmsPermanentError(f"Twilio refused the message ({code})", code=code) from None
        except requests.Timeout:
            raise SmsTransientError("Twilio did not answer in time", code="timeout") from None
        except (requests.RequestException, TwilioException):
            raise SmsTransientError("Twilio could not be reached", code="connection") from None
        return SmsReceipt(provider_id=str(message.sid), status=str(message.status or "queued"))
