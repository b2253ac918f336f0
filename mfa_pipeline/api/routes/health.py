"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mfa_pipeline.api.deps import ReadinessDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(readiness: ReadinessDep) -> JSONResponse:
    """Redis and the database answer; 503 `unavailable` otherwise."""
    report = await run_in_threadpool(readiness.check)
    checks = {
        "redis": "ok" if report.challenge_store else "unavailable",
        "database": "ok" if report.database else "unavailable",
    }
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
