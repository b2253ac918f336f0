"""Request dependencies as `Annotated` aliases: the container, the calling application."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mfa_pipeline.api.watcher import ChallengeWatcher
from mfa_pipeline.bootstrap import Container
from mfa_pipeline.domain.errors import UnauthenticatedError

_bearer = HTTPBearer(auto_error=False, description="An application's API key (MFA_API_KEYS).")


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread
# pool, a hop that costs more than these few lines.
async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_watcher(request: Request) -> ChallengeWatcher:
    watcher: ChallengeWatcher = request.app.state.watcher
    return watcher


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


ContainerDep = Annotated[Container, Depends(get_container)]
WatcherDep = Annotated[ChallengeWatcher, Depends(get_watcher)]
ApplicationDep = Annotated[str, Depends(get_application)]
