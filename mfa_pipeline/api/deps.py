"""Request dependencies as `Annotated` aliases: the services, the calling application."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mfa_pipeline.api.app_config import ApiConfig
from mfa_pipeline.api.watcher import ChallengeWatcher
from mfa_pipeline.domain.errors import UnauthenticatedError
from mfa_pipeline.ports import Clock, Metrics
from mfa_pipeline.services.admin import AdminService
from mfa_pipeline.services.audit import Auditor
from mfa_pipeline.services.backup_codes import BackupCodeService
from mfa_pipeline.services.challenges import ChallengeService
from mfa_pipeline.services.delivery_status import DeliveryStatusService
from mfa_pipeline.services.enrollment import EnrollmentService
from mfa_pipeline.services.graph import Services
from mfa_pipeline.services.idempotency import IdempotencyService
from mfa_pipeline.services.invitations import InvitationService
from mfa_pipeline.services.login import LoginService
from mfa_pipeline.services.policies import PolicyService
from mfa_pipeline.services.push import PushAnswers, PushDevices
from mfa_pipeline.services.readiness import Readiness
from mfa_pipeline.services.trusted_sessions import TrustedSessionService
from mfa_pipeline.services.webauthn import WebAuthnEnrollment

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="An application's API key (MFA_API_KEYS).")


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread
# pool, a hop that costs more than these few lines.
def _service(pick: Callable[[Services], T]) -> Callable[[Request], Awaitable[T]]:
    async def dependency(request: Request) -> T:
        services: Services = request.app.state.services
        return pick(services)

    return dependency


def _from_state(name: str) -> Callable[[Request], Awaitable[object]]:
    """What the app factory put in `app.state` under `name` (the Annotated alias gives its type)."""

    async def dependency(request: Request) -> object:
        return getattr(request.app.state, name)

    return dependency


class ApiKeys:
    """API keys → application names, checked by digest with a constant-time comparison."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._digests = [(hashlib.sha256(k.encode()).digest(), app) for k, app in keys.items()]

    def application_for(self, presented: str) -> str | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for candidate, app in self._digests:  # every key is compared: no early exit
            if hmac.compare_digest(candidate, digest):
                found = app
        return found


async def get_application(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthenticatedError("Send an API key as `Authorization: Bearer <key>`.")
    keys: ApiKeys = request.app.state.api_keys
    app = keys.application_for(credentials.credentials)
    if app is None:
        raise UnauthenticatedError("That API key is not valid.")
    return app


ApplicationDep = Annotated[str, Depends(get_application)]
# The whole graph as one dependency, for the busiest route: FastAPI resolves each dependency on
# every request (about 20 us each), and one login creation needed three services.
ServicesDep = Annotated[Services, Depends(_from_state("services"))]
WatcherDep = Annotated[ChallengeWatcher, Depends(_from_state("watcher"))]
ClockDep = Annotated[Clock, Depends(_from_state("clock"))]
MetricsDep = Annotated[Metrics, Depends(_from_state("metrics"))]
ConfigDep = Annotated[ApiConfig, Depends(_from_state("config"))]

AdminDep = Annotated[AdminService, Depends(_service(lambda s: s.admin))]
AuditorDep = Annotated[Auditor, Depends(_service(lambda s: s.auditor))]
BackupCodesDep = Annotated[BackupCodeService, Depends(_service(lambda s: s.backup_codes))]
ChallengesDep = Annotated[ChallengeService, Depends(_service(lambda s: s.challenges))]
DeliveryStatusDep = Annotated[DeliveryStatusService, Depends(_service(lambda s: s.delivery_status))]
EnrollmentDep = Annotated[EnrollmentService, Depends(_service(lambda s: s.enrollment))]
InvitationsDep = Annotated[InvitationService, Depends(_service(lambda s: s.invitations))]
IdempotencyDep = Annotated[IdempotencyService, Depends(_service(lambda s: s.idempotency))]
LoginDep = Annotated[LoginService, Depends(_service(lambda s: s.login))]
PoliciesDep = Annotated[PolicyService, Depends(_service(lambda s: s.policies))]
PushAnswersDep = Annotated[PushAnswers, Depends(_service(lambda s: s.push_answers))]
PushDevicesDep = Annotated[PushDevices, Depends(_service(lambda s: s.push_devices))]
ReadinessDep = Annotated[Readiness, Depends(_service(lambda s: s.readiness))]
TrustedSessionsDep = Annotated[
    TrustedSessionService, Depends(_service(lambda s: s.trusted_sessions))
]
WebAuthnDep = Annotated[WebAuthnEnrollment, Depends(_service(lambda s: s.webauthn))]
