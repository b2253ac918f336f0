"""Issuing, reading, verifying and resending challenges."""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from mfa_pipeline.domain.backup_codes import NoBackupCodesError, normalize_backup_code
from mfa_pipeline.domain.challenges import (
    Challenge,
    ChallengePurpose,
    ChallengeStatus,
    Delivery,
    DeliveryStatus,
    FactorType,
    RequestContext,
    RequestedFactor,
    new_challenge_id,
    shard_of,
)
from mfa_pipeline.domain.codes import normalize_code
from mfa_pipeline.domain.errors import (
    FactorNotEnrolledError,
    InvalidRequestError,
    MfaError,
    NotFoundError,
    RateLimitedError,
    TooManyAttemptsError,
    TooManyResendsError,
    UnavailableError,
    WrongCodeError,
)
from mfa_pipeline.domain.events import (
    ChallengeFinished,
    ChallengeIssued,
    PushDeliveryRequested,
    SmsDeliveryRequested,
)
from mfa_pipeline.domain.factors import AUTO_PREFERENCE, Factor, FactorStatus, User
from mfa_pipeline.domain.failure_budget import LOCKABLE_FACTORS
from mfa_pipeline.domain.push import new_number_match
from mfa_pipeline.domain.totp import TotpOutcome
from mfa_pipeline.ports import Transition
from mfa_pipeline.services import audit
from mfa_pipeline.services.verification import CodeVerifier, ensure_open, raise_for_blocked
from mfa_pipeline.services.webhooks import announce_finished

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mfa_pipeline.domain.failure_budget import FailureCount
    from mfa_pipeline.domain.limits import RateLimit
    from mfa_pipeline.domain.rules import ChallengeRules
    from mfa_pipeline.ports import (
        ChallengeStore,
        Clock,
        EventPublisher,
        FactorRepository,
        IdempotencyMark,
        LoginCounters,
        Metrics,
        PushGuard,
        RateLimiter,
        SecretBox,
        StepClaim,
    )
    from mfa_pipeline.services.audit import Auditor
    from mfa_pipeline.services.backup_codes import BackupCodeService
    from mfa_pipeline.services.failure_budget import FailureBudgetService
    from mfa_pipeline.services.policies import PolicyService
    from mfa_pipeline.services.sms_spend import SmsSendGate, SmsTicket
    from mfa_pipeline.services.webauthn import WebAuthnLogins

log = structlog.get_logger(__name__)

DONE = Transition.DONE
# `delivery.error_code` of a challenge whose send could not be queued (the broker was down).
QUEUE_UNAVAILABLE = "queue_unavailable"


@dataclass(frozen=True, slots=True)
class ChallengeView:
    """A challenge as a reader sees it now (pending past expiry reads `expired`)."""

    challenge: Challenge
    status: ChallengeStatus
    public_key: dict[str, Any] | None = None  # WebAuthn request options, at creation

    @property
    def attempts_remaining(self) -> int:
        return self.challenge.attempts_remaining


@dataclass(frozen=True, slots=True)
class _Hit:
    """One count against a window: `name` is what operators see (`limit` in logs, metrics)."""

    name: str
    key: str
    limit: RateLimit


class RateLimits:
    """Per-user and per-IP windows on creating and on verifying challenges."""

    def __init__(
        self,
        limiter: RateLimiter,
        counters: LoginCounters,
        rules: ChallengeRules,
        metrics: Metrics,
    ) -> None:
        self._limiter = limiter
        self._counters = counters
        self._rules = rules
        self._metrics = metrics

    def _check(
        self, hits: list[_Hit], now: float, what: str, user_id: str | None
    ) -> FailureCount | None:
        """Count `hits`; with `user_id`, that user's failure count read in the same step."""
        pairs = [(h.key, h.limit) for h in hits]
        seen = None
        if user_id is None:
            waits = self._limiter.hit_many(pairs, now=now)
        else:
            waits, seen = self._counters.hit_and_read(pairs, user_id=user_id, now=now)
        wait = max(waits)
        if wait > 0:
            limited = hits[waits.index(wait)].name
            log.warning("rate_limited", limit=limited, outcome="rejected")
            self._metrics.rate_limited(limit=limited)
            raise RateLimitedError(
                f"Too many {what}; try again later.", retry_after=math.ceil(wait)
            )
        return seen

    def on_create(
        self,
        user_id: str,
        ip: str | None,
        now: float,
        *,
        verifying: bool = False,
        what: str = "login attempts",
    ) -> FailureCount | None:
        """Count one new challenge; `what` names it in the refusal (a login, an enrollment).

        `verifying` (a code sent along, or a passkey login): the verification windows count
        too, and the user's failure count is read with them and returned.
        """
        rules = self._rules
        # Short key prefixes: one counter per user and per address lives in the store.
        hits = [_Hit("challenges_per_user", f"cu:{user_id}", rules.challenges_per_user)]
        if ip:
            hits.append(_Hit("challenges_per_ip", f"ci:{ip}", rules.challenges_per_ip))
        if verifying:
            hits += self._verify_hits(user_id, ip)
        return self._check(hits, now, what, user_id if verifying else None)

    def on_verify(
        self, user_id: str, ip: str | None, now: float, *, read_failures: bool = False
    ) -> FailureCount | None:
        """Count one code attempt; with `read_failures`, the user's failure count comes back."""
        hits = self._verify_hits(user_id, ip)
        return self._check(hits, now, "code attempts", user_id if read_failures else None)

    def _verify_hits(self, user_id: str, ip: str | None) -> list[_Hit]:
        rules = self._rules
        hits = [_Hit("verifications_per_user", f"vu:{user_id}", rules.verifications_per_user)]
        if ip:
            hits.append(_Hit("verifications_per_ip", f"vi:{ip}", rules.verifications_per_ip))
        return hits


class ChallengeService:
    def __init__(
        self,
        *,
        store: ChallengeStore,
        factors: FactorRepository,
        publisher: EventPublisher,
        limiter: RateLimiter,
        login_counters: LoginCounters,
        secrets: SecretBox,
        clock: Clock,
        rules: ChallengeRules,
        shards: int,
        failure_budget: FailureBudgetService,
        backup_codes: BackupCodeService,
        policies: PolicyService,
        auditor: Auditor,
        push_guard: PushGuard,
        sms_gate: SmsSendGate,
        metrics: Metrics,
        webauthn: WebAuthnLogins,
    ) -> None:
        self._store = store
        self._webauthn = webauthn
        self._budget = failure_budget
        self._metrics = metrics
        # SMS pumping and bombing limits; enrollment admits its confirmation SMS through it too.
        self.sms_gate = sms_gate
        self._push_guard = push_guard
        self._policies = policies
        self._auditor = auditor
        self._factors = factors
        self._backup_codes = backup_codes
        self._publisher = publisher
        self._clock = clock
        self._rules = rules
        self._shards = shards
        self.limits = RateLimits(limiter, login_counters, rules, self._metrics)
        self._verifier = CodeVerifier(store=store, secrets=secrets)

    # --- issuing -----------------------------------------------------------------------------

    def issue(
        self,
        *,
        user_id: str,
        factor: RequestedFactor,
        factor_id: str | None = None,
        context: RequestContext | None = None,
        code: str | None = None,
        idempotency: IdempotencyMark | None = None,
    ) -> ChallengeView:
        """Create a challenge; SMS is only queued here (workers deliver it).

        For TOTP a `code` may come along: the challenge is created and checked in one call.
        `idempotency` is stored with a challenge created pending (not with one checked at
        once: its answer cannot be rebuilt from the challenge, only replayed).
        """
        context = context or RequestContext()
        if factor is RequestedFactor.BACKUP_CODE:
            return self._issue_backup_code(user_id, context, code)
        normalized = normalize_code(code) if code is not None else None
        now = self._clock.now()
        user, factors = self._login_factors(user_id, factor, factor_id)
        factors = self._open_factors(user, factors, factor)
        chosen = self._choose_factor(factors, factor, factor_id)
        self._budget.ensure_open(user, chosen.type)
        if normalized is not None and chosen.type is not FactorType.TOTP:
            raise InvalidRequestError(
                "A code can come with the challenge only for TOTP.", field="code"
            )
        # A code sent along is a verification too: both windows count, in one round trip. So
        # does a WebAuthn login, whose verification windows are counted here rather than at
        # its verify (an assertion cannot be guessed; its attempts are counted per challenge).
        verifying = normalized is not None or chosen.type is FactorType.WEBAUTHN
        seen = self.limits.on_create(user_id, context.ip, now, verifying=verifying)
        challenge = self._new_challenge(user_id, chosen, context, now, ChallengePurpose.LOGIN)
        if chosen.type is FactorType.WEBAUTHN:
            settled = seen is not None and self._budget.settled(
                seen,
                locked=user.code_factors_locked(now),
                within_seconds=challenge.expires_at - now,
            )
            return self._issue_webauthn(
                challenge, chosen, factors, explicit=factor_id is not None, settled=settled
            )
        if chosen.type is FactorType.PUSH:
            challenge = self._admit_push(challenge, factors, factor, context, now)
        if challenge.factor is FactorType.SMS:
            sms_factor = next(f for f in factors if f.factor_id == challenge.factor_id)
            self.sms_gate.admit_factor(sms_factor, application=context.application)
        if normalized is not None:
            seen = self._budget.ensure_paced(user_id, chosen.type, seen)
            claim = functools.partial(self._verifier.totp_claim, None, chosen, normalized, now=now)
            return self._issue_checked(challenge, claim, now, seen)
        try:
            self._store.create(challenge, idempotency=idempotency)
        except Exception:
            if challenge.factor is FactorType.PUSH:
                # Not created: it must not hold one of the user's pending-push slots.
                self._push_guard.release(challenge.user_id, challenge.challenge_id)
            raise
        self._after_create(challenge)
        return ChallengeView(challenge, challenge.status)

    def _login_factors(
        self, user_id: str, factor: RequestedFactor, factor_id: str | None
    ) -> tuple[User, list[Factor]]:
        """The user and the factors a login may use (one read), the firm's policy applied."""
        user, factors = self._factors.get_user_with_factors(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        return user, self._policies.filter_for_challenge(user, factors, factor, factor_id)

    def _issue_webauthn(
        self,
        challenge: Challenge,
        chosen: Factor,
        factors: list[Factor],
        *,
        explicit: bool,
        settled: bool,
    ) -> ChallengeView:
        """Request options naming the chosen credential, or every one of the user's."""
        allowed = (
            [chosen]
            if explicit
            else [f for f in factors if f.is_active and f.type is FactorType.WEBAUTHN]
        )
        # Without an explicit choice any of the user's credentials may answer: the factor
        # used is known (and recorded) only once the assertion is checked.
        public_key, ceremony = self._webauthn.begin(
            user_id=challenge.user_id, allowed=allowed, settled=settled
        )
        challenge = replace(
            challenge, factor_id=chosen.factor_id if explicit else None, ceremony=ceremony
        )
        self._store.create(challenge)
        self._after_create(challenge)
        return ChallengeView(challenge, challenge.status, public_key=public_key)

    def _admit_push(
        self,
        challenge: Challenge,
        factors: list[Factor],
        requested: RequestedFactor,
        context: RequestContext,
        now: float,
    ) -> Challenge:
        """Push fatigue limits; `auto` falls back to the next factor when push is refused."""
        wait = self._push_guard.admit(
            challenge.user_id, challenge.challenge_id, now=now, expires_at=challenge.expires_at
        )
        if wait <= 0:
            return challenge
        log.warning("push_refused", user_id=challenge.user_id, outcome="push_limited")
        if requested is RequestedFactor.AUTO:
            others = [f for f in factors if f.type is not FactorType.PUSH]
            if any(f.is_active for f in others):
                fallback = self._choose_factor(others, RequestedFactor.AUTO, None)
                return self._new_challenge(
                    challenge.user_id, fallback, context, now, ChallengePurpose.LOGIN
                )
        raise RateLimitedError(
            "Too many approval requests were sent to this user's phone; "
            "try again later or use another method.",
            retry_after=math.ceil(wait),
        )

    def _issue_backup_code(
        self, user_id: str, context: RequestContext, code: str | None
    ) -> ChallengeView:
        """A backup-code challenge; with `code` it is checked at once (one round trip)."""
        normalized = normalize_backup_code(code) if code is not None else None
        now = self._clock.now()
        user = self._factors.get_user(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        self._policies.ensure_allowed(user, FactorType.BACKUP_CODE)
        if self._backup_codes.remaining(user_id=user_id) == 0:
            raise NoBackupCodesError("The user has no unused backup codes.")
        seen = self.limits.on_create(user_id, context.ip, now, verifying=normalized is not None)
        # Backup codes are not a factor row: the challenge names the type, not a factor id.
        pseudo = Factor("", user_id, FactorType.BACKUP_CODE, FactorStatus.ACTIVE, created_at=now)
        challenge = replace(
            self._new_challenge(user_id, pseudo, context, now, ChallengePurpose.LOGIN),
            factor_id=None,
        )
        if normalized is not None:
            seen = self._budget.ensure_paced(user_id, FactorType.BACKUP_CODE, seen)

            def redeem() -> None:
                self._backup_codes.redeem(
                    user_id=user_id,
                    code=normalized,
                    challenge_id=challenge.challenge_id,
                    context=context,
                )

            return self._issue_checked(challenge, redeem, now, seen)
        self._store.create(challenge)
        self._after_create(challenge)
        return ChallengeView(challenge, challenge.status)

    def issue_for_enrollment(
        self,
        factor: Factor,
        *,
        context: RequestContext,
        idempotency: IdempotencyMark | None = None,
    ) -> Challenge:
        """The SMS challenge that proves a new phone number receives our texts.

        The caller counts it against the creation limits first (`limits.on_create`), before it
        stores the factor, so a refused enrollment leaves nothing behind.
        """
        now = self._clock.now()
        challenge = self._new_challenge(
            factor.user_id, factor, context, now, ChallengePurpose.ENROLLMENT
        )
        self._store.create(challenge, idempotency=idempotency)
        self._after_create(challenge)
        return challenge

    def _new_challenge(
        self,
        user_id: str,
        factor: Factor,
        context: RequestContext,
        now: float,
        purpose: ChallengePurpose,
    ) -> Challenge:
        queued = factor.type in (FactorType.SMS, FactorType.PUSH)
        return Challenge(
            challenge_id=new_challenge_id(shard_of(user_id, self._shards)),
            user_id=user_id,
            factor=factor.type,
            factor_id=factor.factor_id,
            status=ChallengeStatus.PENDING,
            purpose=purpose,
            created_at=now,
            expires_at=now + self._rules.lifetimes.for_factor(factor.type),
            attempts=0,
            max_attempts=self._rules.max_attempts,
            context=context,
            delivery=Delivery(DeliveryStatus.QUEUED if queued else DeliveryStatus.NOT_APPLICABLE),
            number_match=new_number_match() if factor.type is FactorType.PUSH else None,
        )

    def _after_create(self, challenge: Challenge) -> None:
        log.info(
            "challenge_issued",
            challenge_id=challenge.challenge_id,
            user_id=challenge.user_id,
            factor=challenge.factor.value,
            application=challenge.context.application,
        )
        if challenge.purpose is ChallengePurpose.LOGIN:
            self._metrics.challenge_created(
                factor=challenge.factor.value, application=challenge.context.application
            )
        self._publisher.publish(
            ChallengeIssued(challenge.challenge_id, challenge.user_id, challenge.factor)
        )
        delivery: SmsDeliveryRequested | PushDeliveryRequested | None = None
        if challenge.factor is FactorType.SMS:
            delivery = SmsDeliveryRequested(challenge.challenge_id, challenge.user_id, seq=0)
        elif challenge.factor is FactorType.PUSH and challenge.status is ChallengeStatus.PENDING:
            delivery = PushDeliveryRequested(challenge.challenge_id, challenge.user_id)
        if delivery is None:
            return
        try:
            self._publisher.publish(delivery)
        except UnavailableError:
            self._abandon(challenge)
            raise

    def _abandon(self, challenge: Challenge) -> None:
        """The delivery could not be queued: fail the challenge before the caller hears 503.

        So a 503 from creation means no code went out and none will: a late copy of the task
        finds the challenge failed and sends nothing, and the login page (or the client's
        retry) asks for a new challenge without the user getting two codes. A push that never
        left frees its place among the user's pending pushes.
        """
        log.warning(
            "delivery_not_queued",
            challenge_id=challenge.challenge_id,
            user_id=challenge.user_id,
            factor=challenge.factor.value,
        )
        if challenge.factor is FactorType.PUSH:
            with contextlib.suppress(UnavailableError):
                self._push_guard.release(challenge.user_id, challenge.challenge_id)
        with contextlib.suppress(UnavailableError):
            self._store.record_delivery(
                challenge.challenge_id,
                0,
                status=DeliveryStatus.FAILED.value,
                now=self._clock.now(),
                error_code=QUEUE_UNAVAILABLE,
                fail_challenge=True,
            )

    def _issue_checked(
        self,
        challenge: Challenge,
        check: Callable[[], StepClaim | None],
        now: float,
        seen: FailureCount,
    ) -> ChallengeView:
        """Create `challenge` already answered by `check` (a TOTP or backup code sent along).

        A TOTP code's step comes back from `check` unclaimed: it is claimed as the verified
        challenge is stored, in one round trip, and a step claimed first elsewhere is a replay.
        """
        done = replace(challenge, status=ChallengeStatus.VERIFIED, completed_at=now)
        try:
            claim = check()
            if not self._store.create(done, step_claim=claim):
                self._verifier.refuse_totp(
                    None, done.factor_id or "", done.user_id, TotpOutcome.REPLAYED, now=now
                )
        except WrongCodeError as exc:
            try:
                self._keep_missed(challenge, exc, now)
            finally:
                # After the miss is recorded: a lock this failure causes follows it.
                self._budget.record_failure(
                    user_id=challenge.user_id, factor=challenge.factor, context=challenge.context
                )
        self._after_create(done)
        self._finished(done, ChallengeStatus.VERIFIED)
        # Only once the code is known to be unused: a replayed code must not start the
        # failure count again. Should this fail (503), the login stands verified and audited.
        self._succeeded(challenge, seen)
        return ChallengeView(done, done.status)

    def _keep_missed(self, challenge: Challenge, exc: WrongCodeError, now: float) -> NoReturn:
        """Keep the challenge, one attempt used, so the user can try the next code on it."""
        missed = replace(challenge, attempts=1)
        if missed.attempts_remaining == 0:
            # That attempt was the only one allowed: the challenge is stored locked, or a
            # later right code would verify it past the limit.
            locked = replace(missed, status=ChallengeStatus.LOCKED, completed_at=now)
            self._store.create(locked)
            self._after_create(locked)
            self._finished(locked, ChallengeStatus.LOCKED)
            raise TooManyAttemptsError(
                "Too many wrong codes; this challenge is locked.",
                challenge_id=locked.challenge_id,
            ) from exc
        self._store.create(missed)
        self._after_create(missed)
        self._audit_miss(missed, exc)
        exc.details["challenge_id"] = missed.challenge_id
        exc.details["attempts_remaining"] = missed.attempts_remaining
        exc.attempts_remaining = missed.attempts_remaining
        raise exc

    def _choose_factor(
        self, factors: list[Factor], requested: RequestedFactor, factor_id: str | None
    ) -> Factor:
        active = [f for f in factors if f.is_active]
        if factor_id is not None:
            for candidate in active:
                if candidate.factor_id == factor_id and (
                    requested is RequestedFactor.AUTO or candidate.type.value == requested.value
                ):
                    return candidate
            raise FactorNotEnrolledError("That factor is not an active factor of this user.")
        order = (
            AUTO_PREFERENCE if requested is RequestedFactor.AUTO else (FactorType(requested.value),)
        )
        for factor_type in order:
            for candidate in active:
                if candidate.type is factor_type:
                    return candidate
        what = "" if requested is RequestedFactor.AUTO else f"{requested.value} "
        raise FactorNotEnrolledError(f"The user has no active {what}factor.")

    # --- reading -----------------------------------------------------------------------------

    def get(self, challenge_id: str) -> ChallengeView:
        challenge = self._store.get(challenge_id)
        if challenge is None:
            raise NotFoundError("No such challenge.")
        return ChallengeView(challenge, challenge.status_at(self._clock.now()))

    def resume(self, challenge_id: str) -> ChallengeView:
        """A challenge an earlier request created but could not answer for (reply lost).

        Its delivery may never have been queued: it is queued now (the delivery claim lets one
        copy send), so the retrying user gets the code at once, not at the next recovery sweep.
        """
        view = self.get(challenge_id)
        c = view.challenge
        if view.status is ChallengeStatus.PENDING and c.delivery.status is DeliveryStatus.QUEUED:
            if c.factor is FactorType.SMS:
                self._publisher.publish(SmsDeliveryRequested(c.challenge_id, c.user_id, c.send_seq))
            elif c.factor is FactorType.PUSH:
                self._publisher.publish(PushDeliveryRequested(c.challenge_id, c.user_id))
        return view

    # --- verifying ---------------------------------------------------------------------------

    def verify(
        self,
        *,
        challenge_id: str,
        code: object = None,
        credential: Mapping[str, object] | None = None,
        api_application: str | None = None,
    ) -> ChallengeView:
        """Check a code, or for WebAuthn an assertion (`credential`), against a challenge.

        `api_application` (the verifying API key's) is what the audit records.
        """
        challenge = self._store.get(challenge_id)
        if challenge is not None and api_application is not None:
            challenge = replace(
                challenge, context=replace(challenge.context, api_application=api_application)
            )
        if challenge is not None and challenge.factor is FactorType.WEBAUTHN:
            return self._verify_webauthn(challenge, credential)
        if code is None:
            raise InvalidRequestError("Send the code the user entered.", field="code")
        backup = challenge is not None and challenge.factor is FactorType.BACKUP_CODE
        normalized = normalize_backup_code(code) if backup else normalize_code(code)
        now = self._clock.now()
        if challenge is None:
            raise NotFoundError("No such challenge.")
        if challenge.purpose is not ChallengePurpose.LOGIN:
            # An enrollment's SMS code confirms its factor (`activate`); verified here it would
            # read as a login and leave the factor pending for good.
            raise NotFoundError(
                "No such login challenge. A code that confirms a new factor goes to "
                "POST /v1/users/{user_id}/factors/{factor_id}/activate."
            )
        ensure_open(challenge, now)
        factor = self._open_factor(challenge)
        read = self.limits.on_verify(
            challenge.user_id, challenge.context.ip, now, read_failures=True
        )
        seen = self._budget.ensure_paced(challenge.user_id, challenge.factor, read)
        try:
            self._check_code(challenge, normalized, now, factor)
        except MfaError as exc:
            self._log_outcome(challenge, exc)
            if isinstance(exc, WrongCodeError | TooManyAttemptsError):
                # This call's code was wrong (a closed challenge was refused above).
                self._budget.record_failure(
                    user_id=challenge.user_id, factor=challenge.factor, context=challenge.context
                )
            raise
        self._succeeded(challenge, seen)
        self._finished(challenge, ChallengeStatus.VERIFIED)
        return ChallengeView(challenge, ChallengeStatus.VERIFIED)

    def _verify_webauthn(
        self, challenge: Challenge, credential: Mapping[str, object] | None
    ) -> ChallengeView:
        now = self._clock.now()
        ensure_open(challenge, now)
        if credential is None:
            raise InvalidRequestError(
                "This challenge is answered with a passkey or security key: send `credential`.",
                field="credential",
            )
        try:
            factor_id = self._webauthn.check(challenge, credential, now=now)
            raise_for_blocked(
                self._store.complete(challenge.challenge_id, ChallengeStatus.VERIFIED, now=now)
            )
        except MfaError as exc:
            self._log_outcome(challenge, exc)
            raise
        used = replace(challenge, factor_id=factor_id)
        self._webauthn.succeeded(used)
        self._finished(used, ChallengeStatus.VERIFIED)
        return ChallengeView(used, ChallengeStatus.VERIFIED)

    def _open_factor(self, challenge: Challenge) -> Factor | None:
        """A TOTP or SMS challenge's factor, read with its user in one statement.

        A challenge issued before its user's code factors locked stays shut (423). None: the
        factor is gone (removed, or an administrator's reset), or the challenge has no code
        factor; `_check_code` refuses the former after the attempt is counted.
        """
        if challenge.factor not in LOCKABLE_FACTORS:
            return None
        user, factors = self._factors.get_user_with_factors(challenge.user_id)
        if user is not None:
            self._budget.ensure_open(user, challenge.factor)
        return next((f for f in factors if f.factor_id == challenge.factor_id), None)

    def _open_factors(
        self, user: User, factors: list[Factor], requested: RequestedFactor
    ) -> list[Factor]:
        """`auto` passes over locked code factors to push; asked for by name, they answer 423."""
        if requested is not RequestedFactor.AUTO or not user.code_factors_locked(self._clock.now()):
            return factors
        open_factors = [f for f in factors if f.type not in LOCKABLE_FACTORS]
        if not any(f.is_active for f in open_factors):
            self._budget.ensure_open(user, FactorType.TOTP)  # raises: locked, nothing else
        return open_factors

    def _succeeded(self, challenge: Challenge, seen: FailureCount) -> None:
        """A right code: the failure count starts again; a backup code also lifts a lock.

        `seen`: the count read before the code was checked. (A WebAuthn login lifts a lock
        through `WebAuthnLogins.succeeded`.)
        """
        self._budget.record_success(
            user_id=challenge.user_id,
            strong=challenge.factor is FactorType.BACKUP_CODE,
            context=challenge.context,
            seen=seen,
        )

    def _check_code(
        self, challenge: Challenge, code: str, now: float, factor: Factor | None
    ) -> None:
        """`factor`: the TOTP or SMS challenge's factor as `_open_factor` read it."""
        if challenge.factor is FactorType.SMS:
            # A code already sent must die with its factor: after an administrator's reset or
            # a removal, the phone that received it is no longer trusted.
            if factor is None:
                raise FactorNotEnrolledError("The challenge's factor was removed.")
            self._verifier.check_sms(challenge, code, now=now)
            return
        if challenge.factor is FactorType.BACKUP_CODE:
            self._backup_codes.check_challenge(challenge, code, now=now)
            return
        if challenge.factor is not FactorType.TOTP:
            raise InvalidRequestError(
                "This challenge is answered on the device, not with a code.", field="code"
            )
        if factor is None:
            raise FactorNotEnrolledError("The challenge's factor was removed.")
        self._verifier.check_totp(challenge, factor, code, now=now)
        raise_for_blocked(
            self._store.complete(challenge.challenge_id, ChallengeStatus.VERIFIED, now=now)
        )

    def _log_outcome(self, challenge: Challenge, exc: MfaError) -> None:
        code = exc.code
        log.info(
            "challenge_verify_failed",
            challenge_id=challenge.challenge_id,
            user_id=challenge.user_id,
            factor=challenge.factor.value,
            outcome=code,
        )
        if code == "too_many_attempts":
            self._finished(challenge, ChallengeStatus.LOCKED)
        elif isinstance(exc, WrongCodeError):
            self._audit_miss(challenge, exc)

    def _audit_miss(self, challenge: Challenge, exc: WrongCodeError) -> None:
        reason = exc.details.get("reason")
        self._auditor.record(
            audit.CHALLENGE_FAILED,
            user_id=challenge.user_id,
            context=challenge.context,
            outcome=str(reason or "wrong_code"),
            factor=challenge.factor.value,
            factor_id=challenge.factor_id,
            challenge_id=challenge.challenge_id,
            details={"attempts_remaining": exc.attempts_remaining},
            best_effort=True,
        )

    def _finished(self, challenge: Challenge, status: ChallengeStatus) -> None:
        self._auditor.record(
            audit.CHALLENGE_LOCKED
            if status is ChallengeStatus.LOCKED
            else audit.CHALLENGE_VERIFIED,
            user_id=challenge.user_id,
            context=challenge.context,
            outcome=status.value,
            factor=challenge.factor.value,
            factor_id=challenge.factor_id,
            challenge_id=challenge.challenge_id,
            best_effort=True,
        )
        log.info(
            "challenge_finished",
            challenge_id=challenge.challenge_id,
            user_id=challenge.user_id,
            factor=challenge.factor.value,
            application=challenge.context.application,
            outcome=status.value,
        )
        factor, application = challenge.factor.value, challenge.context.application
        if status is ChallengeStatus.VERIFIED:
            self._metrics.challenge_verified(factor=factor, application=application)
        else:
            self._metrics.challenge_failed(
                factor=factor, application=application, reason=status.value
            )
        announce_finished(
            self._publisher,
            ChallengeFinished(
                challenge.challenge_id,
                challenge.user_id,
                factor=challenge.factor,
                status=status,
                application=challenge.context.application,
            ),
        )

    # --- resending ---------------------------------------------------------------------------

    def resend(self, *, challenge_id: str) -> ChallengeView:
        now = self._clock.now()
        challenge = self._store.get(challenge_id)
        if challenge is None:
            raise NotFoundError("No such challenge.")
        if challenge.factor is not FactorType.SMS:
            raise InvalidRequestError("Only SMS challenges can be resent.", field="challenge_id")
        ticket = self._admit_resend(challenge, now)
        result = self._store.request_resend(
            challenge_id,
            now=now,
            max_resends=self._rules.max_resends,
            min_interval=self._rules.resend_interval_seconds,
        )
        if ticket is not None and result.transition is not DONE:
            self.sms_gate.refund(ticket)  # refused after all (a race): nothing was sent
        if result.transition is Transition.TOO_SOON:
            raise RateLimitedError(
                "Wait a little before asking for another code.",
                retry_after=int(result.retry_after + 0.999),
            )
        if result.transition is Transition.EXHAUSTED:
            raise TooManyResendsError(
                f"At most {self._rules.max_resends} new codes per login; start a new login.",
                retry_after=math.ceil(challenge.expires_at - now),
            )
        raise_for_blocked(result)
        self._publisher.publish(
            SmsDeliveryRequested(challenge_id, challenge.user_id, seq=result.seq)
        )
        log.info(
            "challenge_resend",
            challenge_id=challenge_id,
            user_id=challenge.user_id,
            factor=challenge.factor.value,
            seq=result.seq,
        )
        return self.get(challenge_id)

    def _admit_resend(self, challenge: Challenge, now: float) -> SmsTicket | None:
        """Count the resend's SMS against the pumping limits, unless the store would refuse it.

        The store's own checks (open, under the resend limit, not too soon) are read first from
        the challenge: a hammered resend button must not spend the deployment's SMS budget.
        """
        ensure_open(challenge, now)
        if challenge.resends >= self._rules.max_resends:
            return None  # the store answers `exhausted`
        last = challenge.last_resend_at or challenge.created_at
        if last + self._rules.resend_interval_seconds > now:
            return None  # the store answers `too_soon`
        factor = self._factors.get_factor(challenge.user_id, challenge.factor_id or "")
        if factor is None:
            raise FactorNotEnrolledError("The challenge's factor was removed.")
        return self.sms_gate.admit_factor(factor, application=challenge.context.application)
