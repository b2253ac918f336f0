"""An administrator invites a user to set up MFA; the user sees the request at sign-in."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_out
from tests.browser.test_login_app import enroll_totp, expect_home, mfa, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from mfa_pipeline.client import MfaClient
    from tests.browser.conftest import Shots
    from tests.doubles.clock import FrozenClock

__all__ = ["mfa"]

pytestmark = pytest.mark.usefixtures("worker")

BANNER = "Your administrator asks you to set up multi-factor authentication"


def test_an_invited_user_is_asked_at_sign_in_and_later_holds_until_sign_out(
    page: Page, shots: Shots, mfa: MfaClient, clock: FrozenClock
) -> None:
    admin_totp = enroll_totp(mfa, clock, "admin")
    sign_in(page, "admin")
    page.get_by_label("Security code").fill(admin_totp.at(clock.now()))
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("link", name="Administration").first.click()
    page.get_by_role("checkbox", name=re.compile("Dana Demo")).check()
    page.get_by_role("button", name="Invite users").click()
    expect(page.get_by_role("status")).to_contain_text("Invited Dana Demo")
    shots.take("invited", doc="16-invite-users")
    assert mfa.preauth("demo").invited is True
    sign_out(page)

    sign_in(page, "demo")  # no factor: in at once, with the administrator's request
    expect_home(page)
    banner = page.get_by_role("region", name=BANNER)
    expect(banner).to_be_visible()
    expect(banner.get_by_role("link", name="Set up now")).to_be_visible()
    shots.take("invitation-banner", doc="17-invitation-banner")
    banner.get_by_role("button", name="Later").click()
    expect_home(page)
    expect(page.get_by_role("region", name=BANNER)).to_have_count(0)
    page.reload()
    expect(page.get_by_role("region", name=BANNER)).to_have_count(0)  # remembered
    sign_out(page)

    sign_in(page, "demo")  # a new sign-in asks again
    banner = page.get_by_role("region", name=BANNER)
    expect(banner).to_be_visible()
    banner.get_by_role("link", name="Set up now").click()
    expect(page).to_have_url(re.compile("/settings/"))
