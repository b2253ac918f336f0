"""Callbacks from providers: Twilio's delivery status reports."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from mfa_pipeline.api.deps import DeliveryStatusDep
from mfa_pipeline.api.schemas import ErrorOut

router = APIRouter(tags=["providers"])


@router.post(
    "/v1/providers/twilio/status",
    status_code=204,
    responses={403: {"model": ErrorOut}},
    openapi_extra={
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
        }
    },
)
async def twilio_status(
    request: Request,
    delivery_status: DeliveryStatusDep,
    x_twilio_signature: Annotated[str | None, Header()] = None,
) -> Response:
    """Twilio's status callback for one SMS; 403 `forbidden` unless Twilio signed it.

    Answers 204 to every authentic report, applied or not (stale, repeated), so that Twilio
    has nothing to retry or flag.
    """
    body = await request.body()
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    # The query exactly as sent: it is part of what Twilio signed.
    query = request.scope.get("query_string", b"").decode("latin-1")
    await run_in_threadpool(
        delivery_status.twilio_status, query=query, form=form, signature=x_twilio_signature
    )
    return Response(status_code=204)
