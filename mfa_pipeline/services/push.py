"""Push approval: registering the phone, delivering pushes (workers), taking signed answers.

The phone proves itself with an Ed25519 key it generated: the service stores the public half
when the login backend registers the device, and an answer counts only when its signature over
the contract's canonical string checks with that key. The signature, device, time window and
challenge state are checked before one atomic store step changes anything, so a forged,
replayed, late or cross-user answer changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mfa_pipeline.domain.challenges import ChallengeStatus, DeliveryStatus, FactorType
from mfa_pipeline.domain.errors import (
    ChallengeCompletedError,
    ChallengeExpiredError,
    InvalidRequestError,
    InvalidSignatureError,
    NotFoundError,
    UnavailableError,
)
from mfa_pipeline.domain.events import ChallengeFinished
from mfa_pipeline.domain.factors import Factor, FactorStatus, new_factor_id
from mfa_pipeline.domain.push import (
    NOT_ME_BLOCK_SECONDS,
    Decision,
    PushAnswer,
    number_choices,
    timestamp_fresh,
)
from mfa_pipeline.ports import (
    PushPermanentError,
    PushTransientError,
    PushUnregisteredError,
    Transition,
)
from mfa_pipeline.services import audit
from mfa_pipeline.services.delivery import announce_failed_delivery
from mfa_pipeline.services.webhooks import announce_finished

if TYPE_CHECKING:
    from mfa_pipeline.domain.challenges import Challenge, RequestContext
    from mfa_pipeline.ports import (
        ChallengeStore,
        Clock,
        EventPublisher,
        FactorRepository,
        Metrics,
        PushGuard,
        PushSender,
        SecretBox,
    )
    from mfa_pipeline.services.audit import Auditor
    from mfa_pipeline.services.failure_budget import FailureBudgetService
    from mfa_pipeline.services.policies import PolicyService

log = structlog.get_logger(__name__)

PLATFORMS = frozenset({"android", "ios"})
MAX_PUSH_TOKEN_CHARS = 4096
FRAUD_REPORTED = "fraud_reported"


def push_token_context(factor: Factor) -> str:
    """What the push token's ciphertext is bound to (AES-GCM associated data)."""
    return f"push:{factor.user_id}:{factor.factor_id}"


def public_key_context(factor: Factor) -> str:
    """What the device's sealed public key is bound to: a key moved to another row fails."""
    return f"pushkey:{factor.user_id}:{factor.factor_id}"


def parse_public_key(value: object) -> Ed25519PublicKey:
    """Base64 (standard or URL-safe, padded or not) of a raw 32-byte Ed25519 key."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError("public_key must be base64 of 32 bytes.", field="public_key")
    raw = _b64(value.strip())
    if raw is None or len(raw) != 32:  # noqa: PLR2004 - Ed25519 public keys are 32 bytes
        raise InvalidRequestError(
            "public_key must be base64 of a raw 32-byte Ed25519 key.", field="public_key"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def _b64(value: str) -> bytes | None:
    text = value.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode_signature(value: object) -> bytes:
    """The answer's signature; anything that is not base64 of 64 bytes is a bad signature."""
    raw = _b64(value) if isinstance(value, str) else None
    if raw is None or len(raw) != 64:  # noqa: PLR2004 - Ed25519 signatures are 64 bytes
        raise InvalidSignatureError("The signature is not valid.")
    return raw


def answer_from_wire(
    *,
    challenge_id: str,
    device_id: str,
    decision: str,
    timestamp: int,
    signature: str,
    number: str | None = None,
    reason: str | None = None,
) -> PushAnswer:
    """An answer as `POST /v1/push/responses` carries it, its signature decoded."""
    return PushAnswer(
        challenge_id=challenge_id,
        device_id=device_id,
        decision=Decision(decision),
        number=number,
        reason=reason,
        timestamp=timestamp,
        signature=decode_signature(signature),
    )


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    factor: Factor
    created: bool  # False: a known device (same key) refreshed its token


class PushDevices:
    """Registering, refreshing and listing a user's phones."""

    def __init__(
        self,
        *,
        factors: FactorRepository,
        secrets: SecretBox,
        clock: Clock,
        policies: PolicyService,
        auditor: Auditor,
    ) -> None:
        self._factors = factors
        self._secrets = secrets
        self._clock = clock
        self._policies = policies
        self._auditor = auditor

    def register(
        self,
        *,
        user_id: str,
        device_name: str | None,
        platform: str,
        push_token: str,
        public_key: str,
        context: RequestContext | None = None,
    ) -> DeviceRegistration:
        """Add the device, or refresh it when the user already has one with this key."""
        if platform not in PLATFORMS:
            raise InvalidRequestError("platform must be android or ios.", field="platform")
        if not push_token or len(push_token) > MAX_PUSH_TOKEN_CHARS:
            raise InvalidRequestError("push_token is missing or too long.", field="push_token")
        key = parse_public_key(public_key)
        canonical_key = base64.b64encode(key.public_bytes_raw()).decode()
        user, factors = self._factors.get_user_with_factors(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        self._policies.ensure_allowed(user, FactorType.PUSH)
        for known in factors:
            if (
                known.type is FactorType.PUSH
                and device_public_key(self._secrets, known) == canonical_key
            ):
                token = self._secrets.encrypt(push_token, context=push_token_context(known))
                self._factors.refresh_push_device(
                    user_id,
                    known.factor_id,
                    push_token_ciphertext=token,
                    label=device_name,
                    platform=platform,
                )
                log.info("push_device_refreshed", user_id=user_id, factor_id=known.factor_id)
                refreshed = replace(known, status=FactorStatus.ACTIVE, label=device_name)
                return DeviceRegistration(refreshed, created=False)
        now = self._clock.now()
        base = Factor(
            factor_id=new_factor_id(),
            user_id=user_id,
            type=FactorType.PUSH,
            status=FactorStatus.ACTIVE,
            created_at=now,
            activated_at=now,
            label=device_name,
            platform=platform,
        )
        factor = replace(
            base,
            push_token_ciphertext=self._secrets.encrypt(
                push_token, context=push_token_context(base)
            ),
            public_key=self._secrets.encrypt(canonical_key, context=public_key_context(base)),
        )
        self._factors.add_factor(factor)
        log.info("factor_enrolled", user_id=user_id, factor_id=factor.factor_id, factor="push")
        self._auditor.record(
            audit.FACTOR_ENROLLED,
            user_id=user_id,
            context=context,
            outcome="ok",
            factor="push",
            factor_id=factor.factor_id,
            details={"platform": platform},
        )
        return DeviceRegistration(factor, created=True)


def device_public_key(secrets: SecretBox, device: Factor) -> str | None:
    """The device's public key (base64), or None when its seal does not open."""
    if not device.public_key:
        return None
    try:
        return secrets.decrypt(device.public_key, context=public_key_context(device))
    except ValueError:
        return None


class PushOutcome(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    RETRY = "retry"
    FAILED = "failed"


class PushDeliveryService:
    """Sends a push challenge to every active device of its user (the `push` queue's worker).

    Claimed before sending and recorded before the task returns, like SMS: a redelivered task
    finds the push `sent` and does nothing, or `sending` (the worker died mid-send) and
    leaves it, since the phones may already show it.
    """

    def __init__(
        self,
        *,
        store: ChallengeStore,
        factors: FactorRepository,
        sender: PushSender,
        secrets: SecretBox,
        publisher: EventPublisher,
        clock: Clock,
        guard: PushGuard,
        auditor: Auditor,
        metrics: Metrics,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._factors = factors
        self._sender = sender
        self._secrets = secrets
        self._publisher = publisher
        self._clock = clock
        self._guard = guard
        self._auditor = auditor

    def deliver(self, *, challenge_id: str, final_attempt: bool = False) -> PushOutcome:  # noqa: PLR0911 - one return per outcome reads best
        bound = log.bind(challenge_id=challenge_id, factor="push")
        challenge = self._store.get(challenge_id)
        if challenge is None or challenge.factor is not FactorType.PUSH:
            bound.info("push_skipped", outcome="not_found")
            return PushOutcome.SKIPPED
        bound = bound.bind(user_id=challenge.user_id)
        now = self._clock.now()
        remaining = challenge.expires_at - now
        if remaining <= 0:
            bound.info("push_skipped", outcome="expired")
            return PushOutcome.SKIPPED
        claim = self._store.claim_delivery(
            challenge_id, 0, "", now=now, ttl_seconds=max(1, math.floor(remaining))
        )
        if claim.transition in (Transition.DUPLICATE, Transition.INTERRUPTED, Transition.IN_FLIGHT):
            bound.info("push_skipped", outcome=claim.transition.value)
            return PushOutcome.DUPLICATE
        if claim.transition is not Transition.DONE:
            bound.info("push_skipped", outcome=claim.transition.value)
            return PushOutcome.SKIPPED
        sent: list[str] = []
        transient: str | None = "store_unavailable"
        try:
            devices = self._active_devices(challenge.user_id)
        except UnavailableError:
            # Claimed but not sent: hand it back as `retrying` below, or the next run would
            # find it `sending`, skip it as a duplicate, and the push would never leave.
            pass
        else:
            sent, transient = self._send_to_devices(challenge, devices, remaining, bound)
        if sent:
            try:
                self._store.record_delivery(
                    challenge_id,
                    0,
                    status=DeliveryStatus.SENT.value,
                    now=self._clock.now(),
                    provider_id=sent[0],
                )
            except UnavailableError:
                # The push is on the phone and can be answered; only the `sent` mark is missing.
                bound.warning("push_sent_unrecorded", devices=len(sent))
            latency = self._clock.now() - challenge.created_at
            self._metrics.delivery_latency(channel="push", seconds=latency)
            bound.info(
                "push_sent", outcome="sent", devices=len(sent), delivery_latency_seconds=latency
            )
            return PushOutcome.SENT
        if transient is not None and not final_attempt:
            self._store.record_delivery(
                challenge_id,
                0,
                status=DeliveryStatus.RETRYING.value,
                now=self._clock.now(),
                error_code=transient,
            )
            bound.warning("push_retrying", provider_error_code=transient)
            return PushOutcome.RETRY
        return self._fail(challenge, transient or "no_device")

    def _active_devices(self, user_id: str) -> list[Factor]:
        return [
            f
            for f in self._factors.list_factors(user_id)
            if f.type is FactorType.PUSH and f.is_active and f.push_token_ciphertext
        ]

    def _send_to_devices(
        self,
        challenge: Challenge,
        devices: list[Factor],
        remaining: float,
        bound: structlog.stdlib.BoundLogger,
    ) -> tuple[list[str], str | None]:
        """Every active device gets the push; returns the receipts and a transient error."""
        data = push_data(challenge)
        sent: list[str] = []
        transient: str | None = None
        for device in devices:
            token = self._secrets.decrypt(
                device.push_token_ciphertext or "", context=push_token_context(device)
            )
            try:
                receipt = self._sender.send(
                    token=token, data=data, ttl_seconds=max(1, math.floor(remaining))
                )
            except PushUnregisteredError:
                self._factors.deactivate_factor(device.user_id, device.factor_id)
                bound.warning("push_device_deactivated", factor_id=device.factor_id)
            except PushTransientError as exc:
                transient = exc.code or "transient"
                self._metrics.provider_error(channel="push", provider_error_code=transient)
            except PushPermanentError as exc:
                self._metrics.provider_error(channel="push", provider_error_code=exc.code or "")
                bound.warning("push_rejected", factor_id=device.factor_id, error_code=exc.code)
            else:
                sent.append(receipt.provider_id)
        return sent, transient

    def _fail(self, challenge: Challenge, error_code: str) -> PushOutcome:
        """No device could be reached: the login page offers another factor."""
        result = self._store.record_delivery(
            challenge.challenge_id,
            0,
            status=DeliveryStatus.FAILED.value,
            now=self._clock.now(),
            error_code=error_code,
            fail_challenge=True,
        )
        log.warning(
            "push_failed",
            challenge_id=challenge.challenge_id,
            user_id=challenge.user_id,
            factor="push",
            outcome="failed",
            provider_error_code=error_code,
        )
        self._guard.release(challenge.user_id, challenge.challenge_id)
        if result.transition is Transition.DONE and result.status is ChallengeStatus.FAILED:
            announce_failed_delivery(
                challenge,
                details={"error_code": error_code},
                metrics=self._metrics,
                auditor=self._auditor,
                publisher=self._publisher,
            )
        return PushOutcome.FAILED


def push_data(challenge: Challenge) -> dict[str, str]:
    """The FCM data message (contract): strings only, as FCM's data payload requires."""
    return {
        "challenge_id": challenge.challenge_id,
        "number_choices": ",".join(number_choices(challenge.number_match or "")),
        "application": challenge.context.application or "",
        "ip": challenge.context.ip or "",
        "user_agent": challenge.context.user_agent or "",
        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(challenge.expires_at)),
    }


class PushAnswers:
    """`POST /v1/push/responses`: the phone's signed approve or deny."""

    def __init__(
        self,
        *,
        store: ChallengeStore,
        factors: FactorRepository,
        secrets: SecretBox,
        publisher: EventPublisher,
        clock: Clock,
        failure_budget: FailureBudgetService,
        guard: PushGuard,
        auditor: Auditor,
        metrics: Metrics,
    ) -> None:
        self._metrics = metrics
        self._budget = failure_budget
        self._store = store
        self._factors = factors
        self._secrets = secrets
        self._publisher = publisher
        self._clock = clock
        self._guard = guard
        self._auditor = auditor

    def answer(self, answer: PushAnswer) -> ChallengeStatus:
        now = self._clock.now()
        challenge = self._store.get(answer.challenge_id)
        if challenge is None or challenge.factor is not FactorType.PUSH:
            # Indistinguishable from a bad signature: a caller without a device learns nothing.
            raise InvalidSignatureError("The signature is not valid.")
        # The device must be an active push device of the challenge's own user: another user's
        # phone, or one deactivated after FCM forgot its token, cannot answer. The user row
        # comes with it in the same statement: it says whether a lock is in force to lift.
        user, factors = self._factors.get_user_with_factors(challenge.user_id)
        device = next((f for f in factors if f.factor_id == answer.device_id), None)
        public_key = None
        if device is not None and device.type is FactorType.PUSH and device.is_active:
            public_key = device_public_key(self._secrets, device)
        if public_key is None:
            log.warning(
                "push_answer_refused", challenge_id=answer.challenge_id, reason="unknown_device"
            )
            raise InvalidSignatureError("The signature is not valid.")
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
            key.verify(answer.signature, answer.signed_bytes())
        except (InvalidSignature, ValueError, binascii.Error):
            log.warning(
                "push_answer_refused", challenge_id=answer.challenge_id, reason="bad_signature"
            )
            raise InvalidSignatureError("The signature is not valid.") from None
        if not timestamp_fresh(answer.timestamp, now):
            log.warning("push_answer_refused", challenge_id=answer.challenge_id, reason="stale")
            raise InvalidSignatureError(
                "The answer's timestamp is too far from the server's clock.", reason="timestamp"
            )
        result = self._store.answer_push(
            answer.challenge_id,
            approve=answer.decision is Decision.APPROVE,
            number=answer.number,
            fraud=answer.fraud_reported,
            now=now,
        )
        if result.transition is Transition.EXPIRED:
            raise ChallengeExpiredError("This push has expired.")
        if result.transition is not Transition.DONE or result.status is None:
            raise ChallengeCompletedError(
                "This challenge is already completed.",
                status=result.status.value if result.status else None,
            )
        if answer.fraud_reported:
            # Only once the answer is accepted: a replayed or late "not me" (409, 410) must not
            # let whoever holds an old signed deny silence the user's pushes. Audited whenever
            # it blocks.
            self._guard.block(challenge.user_id, seconds=NOT_ME_BLOCK_SECONDS, now=now)
            self._fraud_reported(challenge, answer)
        locked = user is not None and user.code_factors_locked(now)
        self._after(challenge, answer, result.status, locked=locked)
        return result.status

    def _fraud_reported(self, challenge: Challenge, answer: PushAnswer) -> None:
        log.warning(
            "push_fraud_reported",
            challenge_id=challenge.challenge_id,
            user_id=challenge.user_id,
            outcome="push_blocked",
        )
        self._auditor.record(
            FRAUD_REPORTED,
            user_id=challenge.user_id,
            context=challenge.context,
            outcome="push_blocked",
            factor="push",
            factor_id=answer.device_id,
            challenge_id=challenge.challenge_id,
            details={"blocked_seconds": NOT_ME_BLOCK_SECONDS},
        )

    def _after(
        self, challenge: Challenge, answer: PushAnswer, status: ChallengeStatus, *, locked: bool
    ) -> None:
        wrong_number = answer.decision is Decision.APPROVE and status is ChallengeStatus.DENIED
        outcome = "wrong_number" if wrong_number else status.value
        log.info(
            "push_answered",
            challenge_id=challenge.challenge_id,
            user_id=challenge.user_id,
            factor="push",
            outcome=outcome,
        )
        self._guard.release(challenge.user_id, challenge.challenge_id)
        application = challenge.context.application
        if status is ChallengeStatus.APPROVED:
            self._metrics.challenge_verified(factor="push", application=application)
            # Approved on the user's own phone: the code factors' failure budget is restored,
            # and a lock lifted. Only a lock the user row showed is lifted: the conditional
            # UPDATE on every approval was a write transaction for nothing. (A lock set after
            # that read stands, as if it came after the approval.)
            self._budget.record_success(
                user_id=challenge.user_id, strong=locked, context=challenge.context
            )
        else:
            self._metrics.challenge_failed(factor="push", application=application, reason=outcome)
        self._auditor.record(
            audit.CHALLENGE_VERIFIED
            if status is ChallengeStatus.APPROVED
            else audit.CHALLENGE_FAILED,
            user_id=challenge.user_id,
            context=challenge.context,
            outcome=outcome,
            factor="push",
            factor_id=answer.device_id,
            challenge_id=challenge.challenge_id,
            best_effort=not answer.fraud_reported,
        )
        announce_finished(
            self._publisher,
            ChallengeFinished(
                challenge.challenge_id,
                challenge.user_id,
                factor=FactorType.PUSH,
                status=status,
                application=challenge.context.application,
            ),
        )
