"""TwilioSmsSender with the real `twilio` client over HTTP, against the local fake Twilio.

What is checked is the adapter's judgement: which answers are worth a retry, which are final,
and that no error or log line carries the number, the code or the credentials.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
import requests

from mfa_pipeline.adapters.twilio_sms import TwilioSmsSender, read_environment_once
from mfa_pipeline.ports import SmsError, SmsPermanentError, SmsTransientError
from tests.fixtures.twilio import TWILIO_SID, TWILIO_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.fakes.fake_twilio import FakeTwilio

PHONE = "+15005550006"
PHONE_DIGITS = "5005550006"
SENDER = "+15017122661"
CODE = "493817"
BODY = f"Your verification code is {CODE}. It expires in 10 minutes. Never share it."
CALLBACK = "http://127.0.0.1:8000/v1/providers/twilio/status"


def sender_for(url: str, *, token: str = TWILIO_TOKEN, timeout: float = 5.0) -> TwilioSmsSender:
    return TwilioSmsSender(TWILIO_SID, token, SENDER, api_base_url=url, timeout=timeout)


def send_failing(sender: TwilioSmsSender) -> SmsError:
    with pytest.raises(SmsError) as caught:
        sender.send(to=PHONE, body=BODY, status_callback=CALLBACK)
    return caught.value


def assert_carries_no_secret(error: BaseException) -> None:
    """Nothing a log line or error tracker would show holds the number, code or token."""
    shown = "\n".join(
        [
            str(error),
            repr(error),
            repr(error.args),
            "".join(traceback.format_exception(error)),
        ]
    )
    for secret in (PHONE_DIGITS, CODE, TWILIO_TOKEN):
        assert secret not in shown
    # Twilio's own exception (its message may quote the number) does not travel along.
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.fixture
def sender(fake_twilio: FakeTwilio) -> TwilioSmsSender:
    return sender_for(fake_twilio.url)


@pytest.fixture
def raw_provider() -> Iterator[Callable[[int, str], str]]:
    """A server answering every request with one fixed status and body (a gateway in the way)."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, body: str) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or "0"))
                raw = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: the port was free a moment ago and is closed now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- success ---------------------------------------------------------------------------------


def test_a_sent_message_returns_twilios_sid_and_status(
    sender: TwilioSmsSender, fake_twilio: FakeTwilio
) -> None:
    receipt = sender.send(to=PHONE, body=BODY)

    assert re.fullmatch(r"SM[0-9a-f]{32}", receipt.provider_id)
    assert receipt.status == "queued"
    [message] = fake_twilio.messages
    assert (message["sid"], message["To"], message["From"], message["Body"]) == (
        receipt.provider_id,
        PHONE,
        SENDER,
        BODY,
    )


def test_the_status_callback_is_forwarded_to_twilio(
    sender: TwilioSmsSender, fake_twilio: FakeTwilio
) -> None:
    sender.send(to=PHONE, body=BODY, status_callback=CALLBACK)

    assert fake_twilio.messages[0]["StatusCallback"] == CALLBACK


def test_without_a_status_callback_none_is_sent(
    sender: TwilioSmsSender, fake_twilio: FakeTwilio
) -> None:
    sender.send(to=PHONE, body=BODY)

    assert "StatusCallback" not in fake_twilio.messages[0]


def test_one_sender_sends_from_several_threads(
    sender: TwilioSmsSender, fake_twilio: FakeTwilio
) -> None:
    phones = [f"+1500555{n:04d}" for n in range(16)]
    threads = [
        threading.Thread(target=sender.send, kwargs={"to": phone, "body": BODY}) for phone in phones
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(m["To"] for m in fake_twilio.wait_for_messages(16, timeout=5)) == phones


# --- failures worth a retry ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected_code"),
    [
        (500, None, "20500"),
        (503, None, "20503"),
        (502, None, "502"),
        (429, None, "20429"),
        (500, 30008, "30008"),
    ],
)
def test_a_server_error_or_rate_limit_is_transient_with_twilios_code(
    sender: TwilioSmsSender,
    fake_twilio: FakeTwilio,
    status: int,
    code: int | None,
    expected_code: str,
) -> None:
    fake_twilio.fail_next(1, status=status, code=code)

    error = send_failing(sender)

    assert isinstance(error, SmsTransientError)
    assert error.code == expected_code
    assert fake_twilio.messages == []


def test_the_next_send_after_a_transient_error_goes_through(
    sender: TwilioSmsSender, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(2, status=500)

    for _ in range(2):
        assert isinstance(send_failing(sender), SmsTransientError)
    sender.send(to=PHONE, body=BODY)

    assert (fake_twilio.requests_count, len(fake_twilio.messages)) == (3, 1)


def test_a_provider_slower_than_the_timeout_is_a_transient_timeout(
    fake_twilio: FakeTwilio,
) -> None:
    fake_twilio.delay = 5.0  # the fixture's stop() wakes the sleeping handler

    error = send_failing(sender_for(fake_twilio.url, timeout=0.2))

    assert isinstance(error, SmsTransientError)
    assert error.code == "timeout"
    assert_carries_no_secret(error)


def test_an_unreachable_provider_is_a_transient_connection_error() -> None:
    error = send_failing(sender_for(closed_port_url()))

    assert isinstance(error, SmsTransientError)
    assert error.code == "connection"
    assert_carries_no_secret(error)


def test_a_gateways_html_error_page_is_classified_by_its_status(
    raw_provider: Callable[[int, str], str],
) -> None:
    error = send_failing(sender_for(raw_provider(502, "<html>Bad Gateway</html>")))

    assert isinstance(error, SmsTransientError)
    assert error.code == "502"


def test_a_success_that_is_not_a_message_resource_is_transient(
    raw_provider: Callable[[int, str], str],
) -> None:
    error = send_failing(sender_for(raw_provider(200, "<html>captive portal</html>")))

    assert isinstance(error, SmsTransientError)
    assert error.code == "invalid_response"
    assert_carries_no_secret(error)


# --- final failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, 21211, f"The 'To' number {PHONE} is not a valid phone number."),
        (400, 21610, "Attempt to send to unsubscribed recipient"),
        (400, 21408, f"Permission to send an SMS has not been enabled for the region of {PHONE}"),
        (403, 20003, "Permission denied"),
    ],
)
def test_a_refused_message_is_permanent_with_twilios_code(
    sender: TwilioSmsSender, fake_twilio: FakeTwilio, status: int, code: int, message: str
) -> None:
    fake_twilio.fail_next(1, status=status, code=code, message=message)

    error = send_failing(sender)

    assert isinstance(error, SmsPermanentError)
    assert error.code == str(code)
    assert_carries_no_secret(error)


def test_wrong_credentials_are_permanent(fake_twilio: FakeTwilio) -> None:
    error = send_failing(sender_for(fake_twilio.url, token="wrong-" + TWILIO_TOKEN))

    assert isinstance(error, SmsPermanentError)
    assert error.code == "20003"
    assert "wrong-" not in str(error)
    assert fake_twilio.messages == []


def test_a_timeout_of_zero_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="timeout"):
        sender_for("http://127.0.0.1:9", timeout=0)


# --- nothing secret leaks --------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 429, 500])
def test_no_error_quotes_the_number_the_code_or_twilios_text(
    sender: TwilioSmsSender, fake_twilio: FakeTwilio, status: int
) -> None:
    fake_twilio.fail_next(1, status=status, message=f"Cannot send {BODY!r} to {PHONE}")

    assert_carries_no_secret(send_failing(sender))


def test_twilios_request_logging_never_shows_the_code_or_the_number(
    fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: everything below is let through
    sender = sender_for(fake_twilio.url)
    sender.send(to=PHONE, body=BODY, status_callback=CALLBACK)
    fake_twilio.fail_next(1, status=400, code=21211, message=f"Bad number {PHONE}")
    send_failing(sender)

    for secret in (PHONE_DIGITS, CODE, TWILIO_TOKEN):
        assert secret not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("twilio.http_client")]


# --- the environment: proxies and CA bundle, read once per client ----------------------------

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy")
PROXY_VARIABLES += ("ALL_PROXY", "no_proxy", "NO_PROXY")


@pytest.fixture
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_proxy_in_the_environment_carries_the_sends(
    fake_twilio: FakeTwilio,
    raw_provider: Callable[[int, str], str],
    no_proxy_variables: pytest.MonkeyPatch,
) -> None:
    no_proxy_variables.setenv("http_proxy", raw_provider(503, "<html>the proxy answers</html>"))

    error = send_failing(sender_for(fake_twilio.url))

    assert isinstance(error, SmsTransientError)
    assert error.code == "503"
    assert fake_twilio.messages == []


def test_no_proxy_naming_the_providers_host_sends_directly(
    fake_twilio: FakeTwilio,
    raw_provider: Callable[[int, str], str],
    no_proxy_variables: pytest.MonkeyPatch,
) -> None:
    no_proxy_variables.setenv("http_proxy", raw_provider(503, "<html>the proxy answers</html>"))
    no_proxy_variables.setenv("no_proxy", "127.0.0.1")

    sender_for(fake_twilio.url).send(to=PHONE, body=BODY)

    assert len(fake_twilio.messages) == 1


def test_the_environment_is_read_once_per_client_not_per_send(
    fake_twilio: FakeTwilio,
    raw_provider: Callable[[int, str], str],
    no_proxy_variables: pytest.MonkeyPatch,
) -> None:
    sender = sender_for(fake_twilio.url)
    sender.send(to=PHONE, body=BODY)
    no_proxy_variables.setenv("http_proxy", raw_provider(503, "<html>the proxy answers</html>"))

    sender.send(to=PHONE, body=BODY)

    assert len(fake_twilio.messages) == 2


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_in_the_environment_verifies_the_providers_certificate(
    variable: str, no_proxy_variables: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        no_proxy_variables.delenv(name, raising=False)
    no_proxy_variables.setenv(variable, "/etc/ssl/certs/ca-certificates.crt")
    session = requests.Session()

    read_environment_once(session, "https://api.twilio.com")

    assert session.verify == "/etc/ssl/certs/ca-certificates.crt"
    assert session.proxies == {}
    assert session.trust_env is False
