"""Firm-wide MFA policy: reading and changing it, and applying it to enrollment and login.

A firm's administrator may require MFA of every user of the firm and restrict the factor
types they may use. Only an administrator of the firm who has MFA enabled may change the
policy (`FirmAdministrators`; the help article: "If you are an administrator at your firm and
have MFA enabled on your own account, you can ... require other firm users to enable MFA").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.challenges import FactorType, RequestedFactor
from mfa_pipeline.domain.errors import (
    FactorNotAllowedError,
    InvalidPhoneError,
    NotFoundError,
)
from mfa_pipeline.domain.policies import FirmPolicy
from mfa_pipeline.services import audit

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from mfa_pipeline.domain.challenges import RequestContext
    from mfa_pipeline.domain.factors import Factor, User
    from mfa_pipeline.domain.phones import PhoneNumber
    from mfa_pipeline.ports import Clock, FactorRepository, PolicyRepository
    from mfa_pipeline.services.administrators import FirmAdministrators
    from mfa_pipeline.services.audit import Auditor

log = structlog.get_logger(__name__)

_NAMES = {
    FactorType.WEBAUTHN: "passkeys and security keys",
    FactorType.TOTP: "an authenticator app",
    FactorType.SMS: "text messages",
    FactorType.PUSH: "the mobile app",
    FactorType.BACKUP_CODE: "backup codes",
}


_POLICY_CACHE_ENTRIES = 10_000


def _regions(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().upper() for v in values if v.strip())


class PolicyService:
    def __init__(
        self,
        *,
        policies: PolicyRepository,
        factors: FactorRepository,
        auditor: Auditor,
        clock: Clock,
        administrators: FirmAdministrators,
        sms_allowed_regions: Iterable[str] = (),
        sms_denied_regions: Iterable[str] = (),
        cache_seconds: float = 0.0,
    ) -> None:
        self._policies = policies
        # Every login of a firm's user reads the firm's policy; it changes a few times a year.
        # Kept per process for `cache_seconds`, dropped here at once on `put`.
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, FirmPolicy]] = {}
        self._factors = factors
        self._auditor = auditor
        self._administrators = administrators
        self._clock = clock
        self._allowed_regions = _regions(sms_allowed_regions)
        self._denied_regions = _regions(sms_denied_regions)

    # --- reading and changing ----------------------------------------------------------------

    def get(self, *, firm_id: str) -> FirmPolicy:
        """The firm's policy; a firm that never set one requires nothing and allows everything."""
        if self._cache_seconds <= 0:
            return self._policies.get(firm_id) or FirmPolicy(firm_id=firm_id)
        now = self._clock.now()
        cached = self._cache.get(firm_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        policy = self._policies.get(firm_id) or FirmPolicy(firm_id=firm_id)
        if len(self._cache) >= _POLICY_CACHE_ENTRIES:
            self._cache.clear()
        self._cache[firm_id] = (now, policy)
        return policy

    def put(
        self,
        *,
        firm_id: str,
        actor_id: str,
        require_mfa: bool,
        allowed_factors: Sequence[FactorType],
        context: RequestContext | None = None,
    ) -> FirmPolicy:
        """Replace the firm's policy, if `actor_id` is an administrator of the firm with MFA."""
        self._administrators.require(
            actor_id=actor_id, firm_id=firm_id, action=audit.POLICY_CHANGED, context=context
        )
        self._cache.pop(firm_id, None)  # the previous policy as stored, and none cached after
        previous = self.get(firm_id=firm_id)
        self._cache.pop(firm_id, None)
        policy = FirmPolicy(
            firm_id=firm_id,
            require_mfa=require_mfa,
            allowed_factors=frozenset(allowed_factors),
            updated_at=self._clock.now(),
            updated_by=actor_id,
        )
        self._policies.put(policy)
        self._auditor.record(
            audit.POLICY_CHANGED,
            user_id=actor_id,
            actor_id=actor_id,
            firm_id=firm_id,
            context=context,
            outcome="ok",
            details={
                "require_mfa": require_mfa,
                "allowed_factors": sorted(f.value for f in policy.allowed_factors),
                "previous_require_mfa": previous.require_mfa,
                "previous_allowed_factors": sorted(f.value for f in previous.allowed_factors),
            },
        )
        log.info("policy_changed", firm_id=firm_id, actor_id=actor_id, require_mfa=require_mfa)
        return policy

    # --- applying ----------------------------------------------------------------------------

    def for_user(self, user: User | None) -> FirmPolicy:
        if user is None or user.firm_id is None:
            return FirmPolicy(firm_id="")
        return self.get(firm_id=user.firm_id)

    def usable_factors(self, user: User | None, factors: Iterable[Factor]) -> list[Factor]:
        """The user's active factors of a type the firm allows."""
        policy = self.for_user(user)
        return [f for f in factors if f.is_active and policy.allows(f.type)]

    def enrollment_required(self, user: User | None, factors: Iterable[Factor]) -> bool:
        """The firm requires MFA and the user has no factor it allows: they must enroll one."""
        policy = self.for_user(user)
        return policy.require_mfa and not any(
            f.is_active and policy.allows(f.type) for f in factors
        )

    def allows(self, user: User | None, factor: FactorType) -> bool:
        return self.for_user(user).allows(factor)

    def ensure_allowed(self, user: User | None, factor: FactorType) -> None:
        _ensure_allows(self.for_user(user), factor)

    def ensure_allowed_for(self, user_id: str, factor: FactorType) -> None:
        user = self._factors.get_user(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        self.ensure_allowed(user, factor)

    def filter_for_challenge(
        self,
        user: User,
        factors: list[Factor],
        requested: RequestedFactor,
        factor_id: str | None,
    ) -> list[Factor]:
        """Factors a login may use: an explicit disallowed choice is refused, `auto` skips it."""
        policy = self.for_user(user)  # once: the checks below share it
        if not policy.allowed_factors:
            return factors
        if requested is not RequestedFactor.AUTO:
            _ensure_allows(policy, FactorType(requested.value))
        if factor_id is not None:
            for f in factors:
                if f.factor_id == factor_id:
                    _ensure_allows(policy, f.type)
        return [f for f in factors if policy.allows(f.type)]

    def ensure_sms_number(self, user: User | None, number: PhoneNumber) -> None:
        """The SMS factor is allowed, and the number's region is one this deployment serves."""
        self.ensure_allowed(user, FactorType.SMS)
        region = (number.region or "").upper()
        if region in self._denied_regions or (
            self._allowed_regions and region not in self._allowed_regions
        ):
            raise InvalidPhoneError(
                "We cannot send text messages to numbers in that country; "
                "use another number or an authenticator app.",
                region=number.region,
            )


def _ensure_allows(policy: FirmPolicy, factor: FactorType) -> None:
    if not policy.allows(factor):
        raise FactorNotAllowedError(
            f"Your firm's policy does not allow {_NAMES.get(factor, factor.value)} "
            "as a second factor.",
            factor=factor.value,
        )
