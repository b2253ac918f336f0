"""Passkeys in a real browser: Chromium's DevTools virtual authenticator, through the demo app.

The authenticator is the browser's own (CTAP2, internal transport, resident keys, user
verification), so the page's JavaScript, the browser's WebAuthn code and the service meet as
they would on a laptop with a fingerprint reader. `http://localhost` is a secure context, so
the RP ID `localhost` works without TLS.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from mfa_pipeline.demo.passwords import DEMO_PASSWORDS
from tests.browser.conftest import DemoServer, Shots, sign_out
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import CDPSession, Page

    from tests.fixtures.pipeline import ApiServer

DEMO_PORT = free_port()
PHISHING_PORT = free_port()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Only the demo app's own origin may use passkeys; the other port plays a phishing site."""
    return {
        "sms_provider": "outbox",
        "push_provider": "outbox",
        "webauthn_rp_id": "localhost",
        "webauthn_origins": [f"http://localhost:{DEMO_PORT}"],
    }


@pytest.fixture
def demo(api_server: ApiServer) -> Iterator[DemoServer]:
    with DemoServer(api_server.url, port=DEMO_PORT, host="localhost") as server:
        yield server


@pytest.fixture
def phishing(api_server: ApiServer) -> Iterator[DemoServer]:
    with DemoServer(api_server.url, port=PHISHING_PORT, host="localhost") as server:
        yield server


def virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def sign_in_with_password(page: Page, base: str, username: str = "demo") -> None:
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORDS[username])
    page.get_by_role("button", name="Sign in").click()


def add_passkey(page: Page, base: str, shots: Shots | None = None) -> None:
    page.goto(f"{base}/settings/security")
    page.get_by_role("link", name="Add a passkey or security key").click()
    page.get_by_label("Password").fill(DEMO_PASSWORDS["demo"])
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Name for the new passkey").fill("Work laptop")
    if shots:
        shots.take("add-passkey", doc="13-add-passkey")
    page.get_by_role("button", name="Add a passkey or security key").click()
    expect(page.get_by_role("cell", name="Work laptop", exact=True)).to_be_visible()


def test_a_user_adds_a_passkey_and_signs_in_with_it(page: Page, demo: DemoServer) -> None:
    shots = Shots(page, "passkey_register_and_sign_in")
    cdp, authenticator = virtual_authenticator(page)
    sign_in_with_password(page, demo.url)
    add_passkey(page, demo.url, shots)
    expect(page.locator("#mfa-state")).to_contain_text("on")
    shots.take("security-settings-with-passkey", doc="14-passkey-listed")
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(stored["credentials"]) == 1
    assert stored["credentials"][0]["rpId"] == "localhost"

    sign_out(page)
    sign_in_with_password(page, demo.url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    shots.take("use-a-passkey", doc="15-use-a-passkey")
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("^Welcome"))
    counted = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert counted["credentials"][0]["signCount"] >= 1


def test_a_page_on_another_origin_cannot_use_the_passkey(
    page: Page, demo: DemoServer, phishing: DemoServer
) -> None:
    shots = Shots(page, "passkey_other_origin_refused")
    virtual_authenticator(page)
    sign_in_with_password(page, demo.url)
    add_passkey(page, demo.url)
    sign_out(page)

    # Another origin relaying to the same service: the browser signs for it, the service
    # sees the origin in the signed client data and refuses.
    sign_in_with_password(page, phishing.url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    page.get_by_role("button", name="Use a passkey").click()
    status = page.locator("#passkey-status")  # a polite live region
    expect(status).to_contain_text("a site we do not know")
    shots.take("other-origin-refused")
    assert page.url.startswith(f"{phishing.url}/login/passkey")
