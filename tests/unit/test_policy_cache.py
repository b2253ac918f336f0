"""A firm policy is read once per `cache_seconds` per process, and fresh after a put here."""

from __future__ import annotations

from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.factors import Factor, FactorStatus, Role
from mfa_pipeline.domain.policies import FirmPolicy
from mfa_pipeline.services.administrators import FirmAdministrators
from mfa_pipeline.services.audit import Auditor
from mfa_pipeline.services.policies import PolicyService
from tests.doubles.clock import FrozenClock
from tests.doubles.memory_account import InMemoryAuditLog, InMemoryPolicyRepository
from tests.doubles.memory_factors import InMemoryFactorRepository

T0 = 1_800_000_000.0


class CountingPolicies(InMemoryPolicyRepository):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, firm_id: str) -> FirmPolicy | None:
        self.reads += 1
        return super().get(firm_id)


def service(
    policies: CountingPolicies, clock: FrozenClock, factors: InMemoryFactorRepository
) -> PolicyService:
    auditor = Auditor(log=InMemoryAuditLog(), clock=clock)
    return PolicyService(
        policies=policies,
        factors=factors,
        auditor=auditor,
        clock=clock,
        administrators=FirmAdministrators(factors=factors, auditor=auditor),
        cache_seconds=2.0,
    )


def test_a_policy_is_read_once_within_the_cache_time_and_again_after_it() -> None:
    clock, policies = FrozenClock(T0), CountingPolicies()
    policies.put(FirmPolicy("firm", require_mfa=True))
    one = service(policies, clock, InMemoryFactorRepository())
    assert one.get(firm_id="firm").require_mfa
    assert one.get(firm_id="firm").require_mfa
    assert policies.reads == 1
    clock.advance(2.0)
    one.get(firm_id="firm")
    assert policies.reads == 2


def test_a_change_made_by_another_process_applies_once_the_cache_time_passed() -> None:
    clock, policies = FrozenClock(T0), CountingPolicies()
    here = service(policies, clock, InMemoryFactorRepository())
    assert not here.get(firm_id="firm").require_mfa
    policies.put(FirmPolicy("firm", require_mfa=True))  # written by another API process
    assert not here.get(firm_id="firm").require_mfa
    clock.advance(2.0)
    assert here.get(firm_id="firm").require_mfa


def test_a_change_made_through_this_service_applies_at_once() -> None:
    clock, policies = FrozenClock(T0), CountingPolicies()
    factors = InMemoryFactorRepository()
    factors.upsert_user("admin", firm_id="firm", role=Role.ADMIN, now=T0)
    factors.add_factor(Factor("f1", "admin", FactorType.TOTP, FactorStatus.ACTIVE, created_at=T0))
    here = service(policies, clock, factors)
    assert here.get(firm_id="firm").allows(FactorType.SMS)
    here.put(
        firm_id="firm",
        actor_id="admin",
        require_mfa=True,
        allowed_factors=[FactorType.TOTP],
    )
    assert not here.get(firm_id="firm").allows(FactorType.SMS)
    assert here.get(firm_id="firm").require_mfa
