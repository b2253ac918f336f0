"""The issuer an authenticator app shows: the application's own, else the deployment's."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from mfa_pipeline.bootstrap import rules_from
from mfa_pipeline.config import Settings, SettingsError, load_settings
from mfa_pipeline.domain.challenges import RequestContext
from mfa_pipeline.domain.rules import ChallengeRules
from tests.unit.service_kit import make_kit

RULES = ChallengeRules(totp_issuer="Acme", totp_issuers={"payroll": "Acme Payroll"})


@pytest.mark.parametrize(
    ("application", "issuer"),
    [("payroll", "Acme Payroll"), ("intranet", "Acme"), (None, "Acme")],
)
def test_the_otpauth_uri_names_the_issuer_of_the_enrolling_application(
    application: str | None, issuer: str
) -> None:
    kit = make_kit(rules=RULES)
    user_id = kit.add_user()

    enrollment = kit.enrollment.enroll_totp(
        user_id=user_id, context=RequestContext(application=application)
    )

    uri = urlsplit(enrollment.otpauth_uri)
    assert parse_qs(uri.query)["issuer"] == [issuer]
    assert unquote(uri.path) == f"/{issuer}:{user_id}"  # the label apps show, issuer first


def test_the_settings_give_the_deployments_issuer_and_one_per_application() -> None:
    settings = Settings(
        totp_issuer="Acme",
        totp_issuers="payroll:Acme Payroll, demo : Demo Firm",  # type: ignore[arg-type]
    )

    rules = rules_from(settings).challenges

    assert rules.totp_issuer == "Acme"
    assert dict(rules.totp_issuers) == {"payroll": "Acme Payroll", "demo": "Demo Firm"}


@pytest.mark.parametrize(
    "entry", ["Acme Payroll", "payroll:", ":Acme", "payroll:Acme:Payroll", "payroll:  "]
)
def test_an_issuer_entry_that_is_not_application_colon_issuer_is_refused(entry: str) -> None:
    with pytest.raises(SettingsError, match=r"MFA_TOTP_ISSUERS: .*application:Issuer"):
        load_settings(totp_issuers=entry)


def test_a_deployment_issuer_with_a_colon_is_refused() -> None:
    # The colon separates issuer and account in the otpauth label (Key Uri Format).
    with pytest.raises(SettingsError, match="MFA_TOTP_ISSUER: "):
        load_settings(totp_issuer="Acme:Payroll")
