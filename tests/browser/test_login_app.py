"""The demo login app in a real browser: every step a person takes, with a screenshot of each.

Enrollment the test is not about goes through the Python client (fast); what the test is about
goes through the pages, by label and role, as a person (or a screen reader) finds them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pyotp
import pytest
from playwright.sync_api import expect

from mfa_pipeline.adapters.outbox import OutboxReader
from mfa_pipeline.cli.device import SimulatedDevice
from mfa_pipeline.client import MfaClient
from mfa_pipeline.demo.passwords import DEMO_PASSWORDS
from tests.browser.conftest import sign_out
from tests.fixtures.pipeline import MANAGE_KEY, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

    from mfa_pipeline.config import Settings
    from tests.browser.conftest import Shots
    from tests.doubles.clock import FrozenClock
    from tests.fixtures.pipeline import ApiServer

pytestmark = pytest.mark.usefixtures("worker")

PHONE_E164 = "+12015550123"


@pytest.fixture
def mfa(api_server: ApiServer) -> Iterator[MfaClient]:
    with MfaClient(api_server.url, api_key=MANAGE_KEY) as client:
        yield client


def sign_in(page: Page, username: str, shots: Shots | None = None, doc: str | None = None) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORDS[username])
    if shots:
        shots.take("sign-in", doc=doc)
    page.get_by_role("button", name="Sign in").click()


def enroll_totp(mfa: MfaClient, clock: FrozenClock, username: str) -> pyotp.TOTP:
    enrollment = mfa.enroll_totp(username)
    totp = pyotp.TOTP(enrollment.secret)
    mfa.activate_factor(username, enrollment.factor_id, totp.at(clock.now()))
    clock.advance(30)  # the activation code's step is spent
    return totp


def expect_home(page: Page) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("^Welcome"))


def test_a_user_sets_up_an_authenticator_app_from_the_qr_page_and_can_remove_it(
    page: Page, shots: Shots, clock: FrozenClock
) -> None:
    sign_in(page, "demo", shots, doc="01-sign-in")
    expect_home(page)  # no MFA yet: the password is enough
    page.get_by_role("link", name="Security settings").first.click()
    expect(page.locator("#mfa-state")).to_contain_text("off")
    shots.take("security-settings")
    page.get_by_role("link", name="Set up multi-factor authentication").click()
    page.get_by_label("Password").fill(DEMO_PASSWORDS["demo"])
    shots.take("confirm-password")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Authenticator app").check()
    shots.take("choose-method", doc="02-choose-method")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    secret = page.locator("#secret-key").inner_text().replace(" ", "")  # the scan, by eye
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    shots.take("qr-code-and-secret", doc="03-authenticator-setup")
    page.get_by_label("Six-digit code").fill(
        "000000" if pyotp.TOTP(secret).at(clock.now()) != "000000" else "111111"
    )
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    shots.take("wrong-code")
    page.get_by_label("Six-digit code").fill(pyotp.TOTP(secret).at(clock.now()))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Done")).to_be_visible()
    shots.take("done")

    page.get_by_role("link", name="Done", exact=True).click()
    expect(page.locator("#mfa-state")).to_contain_text("on")
    shots.take("security-settings-with-app", doc="04-security-settings")
    page.get_by_role("button", name=re.compile("^Remove Authenticator app")).click()
    expect(page.get_by_role("status")).to_contain_text("removed")
    expect(page.locator("#mfa-state")).to_contain_text("off")
    shots.take("removed")


def test_a_user_signs_in_with_the_code_of_the_authenticator_app(
    page: Page, shots: Shots, mfa: MfaClient, clock: FrozenClock
) -> None:
    totp = enroll_totp(mfa, clock, "demo")
    sign_in(page, "demo", shots)
    code_field = page.get_by_label("Security code")
    expect(code_field).to_be_focused()
    expect(page.get_by_label("Keep me logged in for a week")).not_to_be_checked()
    expect(page.get_by_role("link", name="Use backup security code")).to_have_count(0)  # none yet
    shots.take("code-page", doc="05-security-code")
    code_field.fill(totp.at(clock.now()))
    page.get_by_role("button", name="Verify").click()
    expect_home(page)
    shots.take("signed-in", doc="06-signed-in")


@pytest.mark.parametrize("locale", ["en-GB"])
def test_sms_setup_formats_the_number_and_a_login_reads_the_code_from_the_outbox(
    page: Page, shots: Shots, settings: Settings
) -> None:
    outbox = OutboxReader(settings.outbox_path)
    sign_in(page, "demo")
    page.goto("/settings/mfa/setup")
    page.get_by_label("Password").fill(DEMO_PASSWORDS["demo"])
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Text message").check()
    page.get_by_role("button", name="Continue").click()

    country, phone = page.get_by_label("Country"), page.get_by_label("Mobile phone number")
    expect(country).to_have_value("GB")  # from the browser's language
    phone.press_sequentially("+12015550123", delay=20)
    expect(country).to_have_value("US")  # picked from the +1 typed
    expect(phone).to_have_value("+1 201-555-0123")  # formatted as typed
    shots.take("phone-number", doc="07-sms-setup")
    page.get_by_role("button", name="Continue").click()

    code = wait_until(lambda: outbox.latest_code(PHONE_E164))
    expect(page.get_by_text("+1 201-555-0123")).to_be_visible()
    page.get_by_label("Six-digit code").fill(code)
    shots.take("confirm-phone")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Done")).to_be_visible()
    sign_out(page)

    sign_in(page, "demo")
    expect(page.get_by_role("status")).to_contain_text("text message")
    login_code = wait_until(lambda: (c := outbox.latest_code(PHONE_E164)) != code and c)
    page.get_by_label("Security code").fill(login_code)
    shots.take("sms-code", doc="08-sms-code")
    page.get_by_role("button", name="Verify").click()
    expect_home(page)


def test_a_push_login_waits_on_the_page_until_the_phone_approves(
    page: Page, shots: Shots, api_server: ApiServer, mfa: MfaClient, settings: Settings
) -> None:
    phone = SimulatedDevice.generate("Dana's phone")
    registered = mfa.register_push_device("demo", **phone.registration())
    phone.user_id, phone.device_id = "demo", registered.device_id

    sign_in(page, "demo")
    expect(page.get_by_role("heading", name="Approve the sign-in on your phone")).to_be_focused()
    number = page.locator("#number-match").inner_text()
    assert re.fullmatch(r"\d\d", number)
    expect(page.get_by_role("status")).to_have_text("Waiting for your phone…")
    shots.take("push-waiting", doc="09-push-waiting")

    push = wait_until(lambda: phone.pushes(settings.outbox_path))[-1]
    assert number in push["number_choices"]  # the phone shows three numbers, one of them this
    wait_until(lambda: api_server.waiters() >= 1)  # the page is long-polling through the app
    mfa.push_response(**phone.answer(push["challenge_id"], "approve", number=number))

    expect_home(page)  # the page moved on by itself
    shots.take("signed-in-after-push")


def test_a_user_downloads_backup_codes_and_signs_in_with_one(
    page: Page, shots: Shots, mfa: MfaClient, clock: FrozenClock
) -> None:
    totp = enroll_totp(mfa, clock, "demo")
    sign_in(page, "demo")
    page.get_by_label("Security code").fill(totp.at(clock.now()))
    page.get_by_role("button", name="Verify").click()
    expect_home(page)
    page.get_by_role("link", name="Security settings").first.click()
    page.get_by_role("link", name="Download backup codes").click()
    page.get_by_label("Password").fill(DEMO_PASSWORDS["demo"])
    page.get_by_role("button", name="Continue").click()
    shown = page.locator("#backup-codes li").all_inner_texts()
    assert len(shown) == 10
    shots.take("backup-codes", doc="10-backup-codes")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download backup-codes.txt").click()
    download = downloading.value
    assert download.suggested_filename == "backup-codes.txt"
    saved = download.path().read_text()
    codes = [c for c in shown if c in saved]
    assert codes == shown
    sign_out(page)

    sign_in(page, "demo")
    page.get_by_role("link", name="Use backup security code").click()
    field = page.get_by_label("Emergency backup code")
    expect(field).to_be_focused()
    field.fill(codes[0].upper().replace("-", ""))  # any case, dash or not
    shots.take("backup-code-login", doc="11-backup-code")
    page.get_by_role("button", name="Sign in").click()
    expect_home(page)
    assert mfa.get_user("demo").backup_codes_remaining == 9


def test_keep_me_logged_in_skips_the_second_step_at_the_next_login(
    page: Page, shots: Shots, mfa: MfaClient, clock: FrozenClock
) -> None:
    totp = enroll_totp(mfa, clock, "demo")
    sign_in(page, "demo")
    page.get_by_label("Security code").fill(totp.at(clock.now()))
    page.get_by_label("Keep me logged in for a week").check()
    shots.take("keep-me-logged-in")
    page.get_by_role("button", name="Verify").click()
    expect_home(page)
    sign_out(page)

    sign_in(page, "demo")
    expect_home(page)  # no code asked
    shots.take("signed-in-without-code")

    page.get_by_role("link", name="Security settings").first.click()
    page.get_by_role("button", name="Ask for a code again everywhere").click()
    sign_out(page)
    sign_in(page, "demo")
    expect(page.get_by_label("Security code")).to_be_visible()


def test_an_administrator_requires_mfa_for_the_firm_and_resets_a_user(
    page: Page, shots: Shots, mfa: MfaClient, clock: FrozenClock
) -> None:
    enroll_totp(mfa, clock, "demo")
    admin_totp = enroll_totp(mfa, clock, "admin")
    sign_in(page, "admin")
    page.get_by_label("Security code").fill(admin_totp.at(clock.now()))
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("link", name="Administration").first.click()
    page.get_by_label("Require multi-factor authentication for everyone at the firm").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("now required")
    shots.take("policy-saved", doc="12-administration")

    page.get_by_role("link", name="Reset MFA of Dana Demo").click()
    shots.take("confirm-reset")
    page.get_by_role("button", name="Reset MFA of Dana Demo").click()
    expect(page.get_by_role("status")).to_contain_text("Reset Dana Demo: 1 method(s) removed")
    shots.take("reset-done")
    sign_out(page)

    sign_in(page, "demo")  # no factor left, and the firm requires one: set it up now
    expect(page.get_by_role("status")).to_contain_text("requires multi-factor authentication")
    expect(page.locator("#mfa-state")).to_contain_text("off")
    shots.take("user-must-enroll")
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Security settings")


def test_a_whole_login_works_with_the_keyboard_alone(
    page: Page, shots: Shots, mfa: MfaClient, clock: FrozenClock
) -> None:
    totp = enroll_totp(mfa, clock, "demo")
    page.goto("/login")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type("demo")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(DEMO_PASSWORDS["demo"])
    page.keyboard.press("Enter")

    expect(page.get_by_label("Security code")).to_be_focused()
    page.keyboard.type("999999" if totp.at(clock.now()) != "999999" else "888888")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("4 attempts left")
    expect(page.get_by_label("Security code")).to_be_focused()  # back on the field to retry
    shots.take("wrong-code-announced")
    page.keyboard.type(totp.at(clock.now()))
    page.keyboard.press("Tab")
    expect(page.get_by_label("Keep me logged in for a week")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Verify")).to_be_focused()
    page.keyboard.press("Enter")
    expect_home(page)
    shots.take("signed-in-by-keyboard")
