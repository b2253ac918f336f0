"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI

from mfa_pipeline.api.app_config import ApiConfig
from mfa_pipeline.api.body_limit import BodyLimitMiddleware
from mfa_pipeline.api.cpu_pool import CpuBoundPool
from mfa_pipeline.api.deps import ApiKeys
from mfa_pipeline.api.errors import install_error_handlers
from mfa_pipeline.api.routes import (
    admin,
    backup_codes,
    challenges,
    firms,
    health,
    invitations,
    providers,
    push,
    trusted_sessions,
    users,
    webauthn,
)
from mfa_pipeline.api.routes import (
    metrics as metrics_routes,
)
from mfa_pipeline.api.watcher import ChallengeWatcher
from mfa_pipeline.tracing import instrument_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from mfa_pipeline.ports import Clock, Metrics
    from mfa_pipeline.services.graph import Services

DESCRIPTION = """Second-factor checks for web logins: TOTP, SMS codes delivered by workers,
push approval. Authenticate with `Authorization: Bearer <api key>`. Every error is
`{"error": {"code", "message", ...}}`."""


def create_app(services: Services, *, clock: Clock, metrics: Metrics, config: ApiConfig) -> FastAPI:
    watcher = ChallengeWatcher(
        config.redis_url, channel_prefix=f"{config.key_prefix}:ev:", metrics=metrics
    )
    cpu_pool = CpuBoundPool(workers=config.backup_code_workers, queue=config.backup_code_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await watcher.start()
        try:
            yield
        finally:
            await watcher.stop()
            cpu_pool.close()
            services.auditor.flush()

    app = FastAPI(
        title="mfa-pipeline",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    app.state.clock = clock
    app.state.metrics = metrics
    app.state.config = config
    app.state.watcher = watcher
    app.state.cpu_pool = cpu_pool
    app.state.api_keys = ApiKeys(config.api_keys)
    install_error_handlers(app)
    app.include_router(health.router)
    # The login path first: a request is matched against the routers in this order, and a
    # push login's three requests (create, long-poll, the phone's answer) come first.
    app.include_router(challenges.router)
    app.include_router(push.router)
    app.include_router(users.router)
    app.include_router(backup_codes.router)
    app.include_router(trusted_sessions.router)
    app.include_router(firms.router)
    app.include_router(invitations.router)
    app.include_router(admin.router)
    app.include_router(providers.router)
    app.include_router(metrics_routes.router)
    app.include_router(webauthn.router)

    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    instrument_app(app)  # a no-op unless tracing is on in this process
    return app


class RequestIdMiddleware:
    """Binds a request id into every log line of the request and echoes it (pure ASGI: cheap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", ())).get(b"x-request-id", b"")
        request_id = given.decode("latin-1")[:64] if given else uuid.uuid4().hex[:16]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
