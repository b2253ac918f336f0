"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mfa_pipeline.api.deps import ContainerDep
from mfa_pipeline.domain.errors import UnavailableError

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(c: ContainerDep) -> JSONResponse:
    """Redis and the database answer; 503 `unavailable` otherwise."""
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(c.redis.ping)
        checks["redis"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        checks["redis"] = "unavailable"
    try:
        await run_in_threadpool(c.factors.ping)
        checks["database"] = "ok"
    except (UnavailableError, Exception):  # noqa: BLE001
        checks["database"] = "unavailable"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    return JSONResponse(
        {
            "error": {
                "code": "unavailable",
                "message": "A dependency is not reachable.",
                "checks": checks,
            }
        },
        status_code=503,
        headers={"Retry-After": "1"},
    )
