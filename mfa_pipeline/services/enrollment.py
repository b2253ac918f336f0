"""Users and factor enrollment: TOTP and SMS, activation, listing and removal."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.challenges import FactorType, RequestContext
from mfa_pipeline.domain.codes import normalize_code
from mfa_pipeline.domain.errors import (
    FactorExistsError,
    FactorStateError,
    InvalidRequestError,
    NotFoundError,
)
from mfa_pipeline.domain.factors import (
    Factor,
    FactorStatus,
    Role,
    User,
    new_factor_id,
    pending_sms_beyond_limit,
)
from mfa_pipeline.domain.totp import generate_secret, provisioning_uri
from mfa_pipeline.services import audit
from mfa_pipeline.services.verification import CodeVerifier, phone_context, totp_context

if TYPE_CHECKING:
    from mfa_pipeline.domain.phones import PhoneNumber
    from mfa_pipeline.domain.rules import ChallengeRules
    from mfa_pipeline.ports import (
        ChallengeStore,
        Clock,
        FactorRepository,
        IdempotencyMark,
        PhoneNumbers,
        QrRenderer,
        SecretBox,
    )
    from mfa_pipeline.services.audit import Auditor
    from mfa_pipeline.services.challenges import ChallengeService
    from mfa_pipeline.services.policies import PolicyService
    from mfa_pipeline.services.trusted_sessions import TrustedSessionService

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class UserView:
    user: User
    factors: list[Factor]

    @property
    def mfa_enabled(self) -> bool:
        return any(f.is_active for f in self.factors)


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    factor: Factor
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class SmsEnrollment:
    factor: Factor
    phone: PhoneNumber
    challenge_id: str


class EnrollmentService:
    def __init__(
        self,
        *,
        factors: FactorRepository,
        store: ChallengeStore,
        challenges: ChallengeService,
        secrets_box: SecretBox,
        clock: Clock,
        rules: ChallengeRules,
        trusted_sessions: TrustedSessionService,
        policies: PolicyService,
        auditor: Auditor,
        phones: PhoneNumbers,
        qr: QrRenderer,
    ) -> None:
        self._factors = factors
        self._phones = phones
        self._qr = qr
        self._policies = policies
        self._auditor = auditor
        self._trusted_sessions = trusted_sessions
        self._challenges = challenges
        self._secrets = secrets_box
        self._clock = clock
        self._rules = rules
        self._store = store
        self._verifier = CodeVerifier(store=store, secrets=secrets_box)

    def put_user(
        self,
        *,
        user_id: str,
        firm_id: str | None,
        role: Role | None = None,
        context: RequestContext | None = None,
    ) -> UserView:
        """Create or update a user; a field left out (None) keeps its value.

        A login backend that does not know the firm must not move the user out of it (the
        firm's policy would stop applying), so `firm_id` is needed only to create. A change of
        firm or role changes who may administer whom: it is audited, strictly.
        """
        if firm_id is None and self._factors.get_user(user_id) is None:
            raise InvalidRequestError("A new user needs a firm_id.", field="firm_id")
        before, user = self._factors.put_user(
            user_id, firm_id=firm_id, role=role, now=self._clock.now()
        )
        if before is not None:
            for event, old, new in (
                (audit.USER_FIRM_CHANGED, before.firm_id, user.firm_id),
                (audit.USER_ROLE_CHANGED, before.role.value, user.role.value),
            ):
                if old != new:
                    self._auditor.record(
                        event,
                        user_id=user_id,
                        firm_id=user.firm_id,
                        context=context,
                        outcome="ok",
                        details={"previous": old, "current": new},
                    )
                    log.info(event, user_id=user_id, previous=old, current=new)
        return UserView(user, self._factors.list_factors(user_id))

    def get_user(self, *, user_id: str) -> UserView:
        user, factors = self._factors.get_user_with_factors(user_id)  # one read per preauth
        if user is None:
            raise NotFoundError("No such user.")
        return UserView(user, factors)

    def require_user(self, user_id: str) -> User:
        """The user, or `NotFoundError`."""
        user = self._factors.get_user(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        return user

    def _audit(self, event: str, factor: Factor, context: RequestContext | None) -> None:
        self._auditor.record(
            event,
            user_id=factor.user_id,
            context=context,
            outcome="ok",
            factor=factor.type.value,
            factor_id=factor.factor_id,
        )

    def enroll_totp(
        self,
        *,
        user_id: str,
        account_name: str | None = None,
        context: RequestContext | None = None,
    ) -> TotpEnrollment:
        """A pending authenticator; the secret is shown in this answer once and never again."""
        user = self.require_user(user_id)
        self._policies.ensure_allowed(user, FactorType.TOTP)
        existing = self._factors.list_factors(user_id)
        if any(f.type is FactorType.TOTP and f.is_active for f in existing):
            raise FactorExistsError(
                "This user already has an authenticator app; remove it before adding another."
            )
        for stale in existing:
            if stale.type is FactorType.TOTP:
                self._factors.delete_factor(user_id, stale.factor_id)
        secret = generate_secret()
        factor = Factor(
            factor_id=new_factor_id(),
            user_id=user_id,
            type=FactorType.TOTP,
            status=FactorStatus.PENDING,
            created_at=self._clock.now(),
        )
        factor = replace(
            factor, secret_ciphertext=self._secrets.encrypt(secret, context=totp_context(factor))
        )
        self._factors.add_factor(factor)
        issuer = self._rules.totp_issuer_for(context.application if context else None)
        uri = provisioning_uri(secret, account=account_name or user_id, issuer=issuer)
        log.info("factor_enrolled", user_id=user_id, factor_id=factor.factor_id, factor="totp")
        self._audit(audit.FACTOR_ENROLLED, factor, context)
        return TotpEnrollment(
            factor=factor, secret=secret, otpauth_uri=uri, qr_svg=self._qr.svg(uri)
        )

    def enroll_sms(
        self,
        *,
        user_id: str,
        phone: object,
        region: str | None,
        context: RequestContext | None = None,
        idempotency: IdempotencyMark | None = None,
    ) -> SmsEnrollment:
        """A pending SMS factor and the challenge whose code will confirm the number."""
        user = self.require_user(user_id)
        number = self._phones.parse(phone, region)
        self._policies.ensure_sms_number(user, number)
        base = Factor(
            factor_id=new_factor_id(),
            user_id=user_id,
            type=FactorType.SMS,
            status=FactorStatus.PENDING,
            created_at=self._clock.now(),
            phone_last2=number.last2,
            phone_region=number.region,
        )
        factor = replace(
            base, phone_ciphertext=self._secrets.encrypt(number.e164, context=phone_context(base))
        )
        context = context or RequestContext()
        # Limits first (a refusal stores nothing), then the factor is committed before its
        # challenge is queued: the worker must find it.
        self._challenges.limits.on_create(
            user_id, context.ip, self._clock.now(), what="new text-message numbers for this user"
        )
        self._challenges.sms_gate.admit_number(
            number.e164, user_id=user_id, application=context.application
        )
        self._factors.add_factor(factor)
        challenge = self._challenges.issue_for_enrollment(
            factor, context=context, idempotency=idempotency
        )
        self._factors.set_pending_challenge(user_id, factor.factor_id, challenge.challenge_id)
        log.info("factor_enrolled", user_id=user_id, factor_id=factor.factor_id, factor="sms")
        self._audit(audit.FACTOR_ENROLLED, factor, context)
        self._drop_old_pending_sms(user_id, factor.factor_id, context)
        return SmsEnrollment(factor=factor, phone=number, challenge_id=challenge.challenge_id)

    def sms_enrollment_of(self, *, user_id: str, challenge_id: str) -> SmsEnrollment:
        """The enrollment a confirmation challenge belongs to, as `enroll_sms` answered it.

        For a request cut short after it created the challenge: its unfinished steps are done.
        """
        challenge = self._store.get(challenge_id)
        factor = None
        if challenge is not None and challenge.user_id == user_id and challenge.factor_id:
            factor = self._factors.get_factor(user_id, challenge.factor_id)
        if factor is None or factor.phone_ciphertext is None:
            raise NotFoundError("The enrollment this request created is gone.")
        if factor.pending_challenge_id != challenge_id:  # the request stopped before this step
            self._factors.set_pending_challenge(user_id, factor.factor_id, challenge_id)
        self._challenges.resume(challenge_id)
        phone = self._secrets.decrypt(factor.phone_ciphertext, context=phone_context(factor))
        return SmsEnrollment(
            factor=factor,
            phone=self._phones.parse(phone),  # stored in E.164: no region to guess from
            challenge_id=challenge_id,
        )

    def _drop_old_pending_sms(self, user_id: str, newest: str, context: RequestContext) -> None:
        """Keep the newest few unconfirmed numbers; the dropped ones can no longer be activated.

        Trimmed after the new factor is stored, so concurrent enrollments converge on the same
        newest few rather than each seeing room for one more.
        """
        factors = self._factors.list_factors(user_id)
        for stale in pending_sms_beyond_limit(factors, newest=newest):
            if self._factors.delete_factor(user_id, stale.factor_id):
                log.info(
                    "factor_removed", user_id=user_id, factor_id=stale.factor_id, reason="replaced"
                )
                self._audit(audit.FACTOR_REMOVED, stale, context)

    def activate(
        self,
        *,
        user_id: str,
        factor_id: str,
        code: object,
        context: RequestContext | None = None,
    ) -> Factor:
        normalized = normalize_code(code)
        factor = self._factors.get_factor(user_id, factor_id)
        if factor is None:
            raise NotFoundError("No such factor.")
        if factor.status is not FactorStatus.PENDING:
            raise FactorStateError("This factor is already active.")
        self._policies.ensure_allowed_for(user_id, factor.type)
        now = self._clock.now()
        if factor.type is FactorType.TOTP:
            self._challenges.limits.on_verify(user_id, None, now)
            self._verifier.check_totp(None, factor, normalized, now=now)
        elif factor.type is FactorType.SMS:
            challenge = self._store.get(factor.pending_challenge_id or "")
            if challenge is None:
                raise NotFoundError("The confirmation code has expired; add the number again.")
            self._challenges.limits.on_verify(user_id, challenge.context.ip, now)
            self._verifier.check_sms(challenge, normalized, now=now)
        else:
            raise FactorStateError("This factor does not need activation.")
        if not self._factors.activate_factor(user_id, factor_id, now=now):
            raise FactorStateError("This factor is already active.")
        log.info("factor_activated", user_id=user_id, factor_id=factor_id, factor=factor.type.value)
        self._audit(audit.FACTOR_ACTIVATED, factor, context)
        activated = self._factors.get_factor(user_id, factor_id)
        if activated is None:  # pragma: no cover - removed concurrently
            raise NotFoundError("No such factor.")
        return activated

    def list_factors(self, *, user_id: str) -> list[Factor]:
        self.require_user(user_id)
        return self._factors.list_factors(user_id)

    def delete_factor(
        self, *, user_id: str, factor_id: str, context: RequestContext | None = None
    ) -> None:
        factor = self._factors.get_factor(user_id, factor_id)
        if factor is None or not self._factors.delete_factor(user_id, factor_id):
            raise NotFoundError("No such factor.")
        log.info("factor_removed", user_id=user_id, factor_id=factor_id)
        self._audit(audit.FACTOR_REMOVED, factor, context)
        # A removed factor may be a lost or stolen device: "keep me logged in" ends too.
        self._trusted_sessions.revoke_all(user_id=user_id, reason="factor_removed")
