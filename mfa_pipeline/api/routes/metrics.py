"""`GET /metrics`: Prometheus text for the whole deployment, from any API process."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from mfa_pipeline.api.deps import MetricsDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text: every API and worker process summed, queue depths read now.

    Unauthenticated like `/healthz`: it holds counts, never a user's data.
    """
    body, content_type = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=content_type)
