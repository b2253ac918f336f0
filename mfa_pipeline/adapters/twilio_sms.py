"""SMS through Twilio's Messages API with the official client.

The adapter's one judgement is which failures are worth a retry: 429, 5xx, timeouts and
connection errors are; every other 4xx (invalid or unsubscribed number, region not enabled,
bad credentials) is final. Its errors carry Twilio's code and a message of its own, never
Twilio's text: that text can quote the phone number, and the request holds the code.
"""

from __future__ import annotations

import logging
import os
import threading

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from mfa_pipeline.ports import (
    SmsError,
    SmsPermanentError,
    SmsReceipt,
    SmsSender,
    SmsTransientError,
)

_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500


class TwilioSmsSender(SmsSender):
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_: str,
        *,
        api_base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive: without one a hung provider hangs a worker")
        # twilio's client logs every request and response on this logger (at INFO/DEBUG,
        # depending on the version: URL, headers, and in some versions the form body with the
        # code and the phone number). Nothing below WARNING is ever safe to let through.
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
        self._credentials = (account_sid, auth_token)
        self._api_base_url = api_base_url.rstrip("/") if api_base_url else None
        self._timeout = timeout
        self._from = from_
        # One client per thread: a threads-pool worker sends from many threads at once, and
        # the twilio client keeps one `requests.Session` (not documented as thread-safe, with a
        # connection pool of 10) and writes each request and response onto itself.
        self._local = threading.local()

    @property
    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
        return client

    def _new_client(self) -> Client:
        http_client = TwilioHttpClient(timeout=self._timeout)
        client = Client(*self._credentials, http_client=http_client)
        if self._api_base_url:
            client.api.base_url = self._api_base_url
        if http_client.session is not None:
            # The host every call goes to, with any TWILIO_EDGE / TWILIO_REGION applied.
            read_environment_once(http_client.session, client.get_hostname(client.api.base_url))
        return client

    def send(self, *, to: str, body: str, status_callback: str | None = None) -> SmsReceipt:
        """Create the message; raise `SmsTransientError` or `SmsPermanentError` on failure.

        The error is raised outside the `except` block, so it has neither `__cause__` nor
        `__context__`: Twilio's exception (whose text may quote the number) and requests'
        (which holds the prepared body with the code) never travel with it into logs or
        error trackers.
        """
        values: dict[str, str] = {"to": to, "from_": self._from, "body": body}
        if status_callback:
            values["status_callback"] = status_callback
        error: SmsError
        try:
            message = self._client.messages.create(**values)
        except (TwilioRestException, TwilioServiceException) as exc:
            error = _from_status(exc.status, exc.code)
        except requests.Timeout:
            error = SmsTransientError("Twilio did not answer in time", code="timeout")
        except (requests.RequestException, TwilioException):
            error = SmsTransientError("Twilio could not be reached", code="connection")
        except ValueError:
            error = _unreadable()
        else:
            if message.sid:
                return SmsReceipt(
                    provider_id=str(message.sid), status=str(message.status or "queued")
                )
            error = _unreadable()
        raise error


def read_environment_once(session: requests.Session, url: str) -> None:
    """Give `session` what requests would find in the environment for `url`, and stop it looking.

    With `trust_env` on, requests scans the whole environment for proxy and CA-bundle variables
    on every call (about 0.4 ms of a send's CPU); the client only ever calls one host, and the
    environment does not change under a running worker, so the scan's answer is taken once:
    the proxies for that host (after `NO_PROXY`) and `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE`,
    as requests' `merge_environment_settings` reads them. `.netrc`, the other thing `trust_env`
    reads, applies only to requests without credentials, and every Twilio call carries them.
    """
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


def _from_status(status: object, code: object) -> SmsError:
    """429 and 5xx are Twilio asking for a retry; any other 4xx will fail the same way again."""
    status = status if isinstance(status, int) else _SERVER_ERROR  # unreadable: assume theirs
    # Only a numeric code is kept: it is stored and logged, so no free text from the answer.
    safe_code = str(code) if isinstance(code, int) and code > 0 else str(status)
    if status == _TOO_MANY_REQUESTS or status >= _SERVER_ERROR:
        return SmsTransientError(f"Twilio answered HTTP {status} ({safe_code})", code=safe_code)
    return SmsPermanentError(
        f"Twilio refused the message: HTTP {status} ({safe_code})", code=safe_code
    )


def _unreadable() -> SmsError:
    """A 2xx that is not a message resource (a proxy or gateway in the way).

    The message may or may not exist; a second SMS beats none, so it is worth a retry.
    """
    return SmsTransientError("Twilio's answer could not be read", code="invalid_response")
