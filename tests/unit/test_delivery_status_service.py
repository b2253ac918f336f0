"""The delivery-report service on in-memory twins: who may report, and what a report may say."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.webhook_verifiers import NullWebhookVerifier, TwilioWebhookVerifier
from mfa_pipeline.domain.challenges import (
    Challenge,
    ChallengePurpose,
    ChallengeStatus,
    Delivery,
    DeliveryStatus,
    FactorType,
    new_challenge_id,
)
from mfa_pipeline.domain.errors import ForbiddenError
from mfa_pipeline.ports import NullMetrics, WebhookVerifier
from mfa_pipeline.services.delivery_status import (
    DeliveryStatusService,
    ReportOutcome,
    status_callback_url,
)
from tests.doubles.clock import FrozenClock
from tests.doubles.memory_store import InMemoryChallengeStore

if TYPE_CHECKING:
    from collections.abc import Mapping

BASE = "https://mfa.example.test/v1/providers/twilio/status"
T0 = 1_700_000_000.0


class TrustingVerifier(WebhookVerifier):
    """Takes any non-empty signature: these tests are about what follows the check."""

    def verify(self, *, url: str, params: Mapping[str, str], signature: str) -> bool:  # noqa: ARG002
        return bool(signature)


def sent(store: InMemoryChallengeStore) -> str:
    challenge_id = new_challenge_id(0)
    store.create(
        Challenge(
            challenge_id=challenge_id,
            user_id="alice",
            factor=FactorType.SMS,
            factor_id="f1",
            status=ChallengeStatus.PENDING,
            purpose=ChallengePurpose.LOGIN,
            created_at=T0,
            expires_at=T0 + 600,
            attempts=0,
            max_attempts=5,
            delivery=Delivery(DeliveryStatus.QUEUED),
        )
    )
    store.claim_delivery(challenge_id, 0, "h", now=T0, ttl_seconds=600)
    store.record_delivery(challenge_id, 0, status="sent", now=T0, provider_id="SM1")
    return challenge_id


def service(
    store: InMemoryChallengeStore,
    *,
    verifier: WebhookVerifier | None = None,
    base: str | None = BASE,
) -> DeliveryStatusService:
    return DeliveryStatusService(
        store=store,
        verifier=verifier or TrustingVerifier(),
        clock=FrozenClock(T0 + 5),
        callback_base=base,
        metrics=NullMetrics(),
    )


def form(status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": "SM1", "MessageStatus": status, **extra}


def query(challenge_id: str, seq: int = 0) -> str:
    return status_callback_url(BASE, challenge_id, seq).split("?", 1)[1]


def delivery(store: InMemoryChallengeStore, challenge_id: str) -> Delivery:
    challenge = store.get(challenge_id)
    assert challenge is not None
    return challenge.delivery


def test_the_callback_url_names_the_challenge_and_the_send() -> None:
    assert status_callback_url(BASE, "00aBC", 2) == f"{BASE}?challenge_id=00aBC&seq=2"


def test_without_a_public_url_every_report_is_forbidden() -> None:
    store = InMemoryChallengeStore()
    cid = sent(store)
    with pytest.raises(ForbiddenError):
        service(store, base=None).twilio_status(
            query=query(cid), form=form("delivered"), signature="sig"
        )
    assert delivery(store, cid).status is DeliveryStatus.SENT


def test_without_a_twilio_auth_token_every_report_is_forbidden() -> None:
    store = InMemoryChallengeStore()
    cid = sent(store)
    with pytest.raises(ForbiddenError):
        service(store, verifier=NullWebhookVerifier()).twilio_status(
            query=query(cid), form=form("delivered"), signature="sig"
        )


def test_an_empty_auth_token_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="forgeable"):
        TwilioWebhookVerifier("")


def test_a_delivered_report_is_applied() -> None:
    store = InMemoryChallengeStore()
    cid = sent(store)
    outcome = service(store).twilio_status(query=query(cid), form=form("delivered"), signature="s")
    assert outcome is ReportOutcome.APPLIED
    assert delivery(store, cid).status is DeliveryStatus.DELIVERED


def test_the_legacy_sms_status_field_is_read_when_message_status_is_absent() -> None:
    store = InMemoryChallengeStore()
    cid = sent(store)
    legacy = {"SmsSid": "SM1", "SmsStatus": "undelivered", "ErrorCode": "30006"}
    service(store).twilio_status(query=query(cid), form=legacy, signature="s")
    assert (delivery(store, cid).status, delivery(store, cid).error_code) == (
        DeliveryStatus.UNDELIVERED,
        "30006",
    )


@pytest.mark.parametrize("status", ["queued", "accepted", "sending", "read", "bogus", ""])
def test_statuses_that_say_nothing_about_delivery_are_ignored(status: str) -> None:
    store = InMemoryChallengeStore()
    cid = sent(store)
    outcome = service(store).twilio_status(query=query(cid), form=form(status), signature="s")
    assert outcome is ReportOutcome.IGNORED
    assert delivery(store, cid).status is DeliveryStatus.SENT


@pytest.mark.parametrize("code", ["abc", "30003; DROP", "1" * 9, "３０００３"])
def test_an_error_code_that_is_not_a_short_number_is_not_stored(code: str) -> None:
    store = InMemoryChallengeStore()
    cid = sent(store)
    service(store).twilio_status(
        query=query(cid), form=form("undelivered", ErrorCode=code), signature="s"
    )
    assert delivery(store, cid).status is DeliveryStatus.UNDELIVERED
    assert delivery(store, cid).error_code is None


@pytest.mark.parametrize("bad_query", ["", "challenge_id=x", "seq=0", "challenge_id=x&seq=-1"])
def test_a_report_without_a_usable_challenge_and_sequence_is_ignored(bad_query: str) -> None:
    store = InMemoryChallengeStore()
    outcome = service(store).twilio_status(query=bad_query, form=form("delivered"), signature="s")
    assert outcome is ReportOutcome.IGNORED
