"""`Idempotency-Key` on creating calls: run once, answer every repeat the same way."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fastapi import Response

from mfa_pipeline.services.idempotency import HEADER, Reservation, StoredAnswer

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import Request
    from pydantic import BaseModel

    from mfa_pipeline.ports import IdempotencyMark
    from mfa_pipeline.services.idempotency import IdempotencyService

REPLAYED_HEADER = "Idempotent-Replayed"
_SUCCESS = range(200, 300)


def idempotent(
    request: Request,
    idempotency: IdempotencyService,
    application: str,
    *,
    user_id: str,
    body: BaseModel,
    run: Callable[[IdempotencyMark | None], Response],
    created: Callable[[str], Response],
) -> Response:
    """`run` the request once per key; a repeat gets the first answer.

    `created(challenge_id)` answers for a challenge an earlier attempt created but could not
    answer for (its reply was lost): the retry completes it instead of creating another.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return run(None)
    described = json.dumps(
        {"method": request.method, "path": request.url.path, "body": body.model_dump(mode="json")},
        sort_keys=True,
    )
    begun = idempotency.begin(application=application, key=key, request=described, user_id=user_id)
    if isinstance(begun, StoredAnswer):
        return _json(begun.status, begun.body, replayed=True)
    response = _first(idempotency, begun, run, created)
    if response.status_code in _SUCCESS:
        answer = StoredAnswer(response.status_code, bytes(response.body).decode())
        idempotency.finish(begun, answer)
    else:
        idempotency.release(begun)
    if begun.created is not None:
        response.headers[REPLAYED_HEADER] = "true"
    return response


def _first(
    idempotency: IdempotencyService,
    begun: Reservation,
    run: Callable[[IdempotencyMark | None], Response],
    created: Callable[[str], Response],
) -> Response:
    try:
        return created(begun.created) if begun.created is not None else run(begun.mark)
    except BaseException:
        idempotency.release(begun)
        raise


def _json(status: int, body: str, *, replayed: bool = False) -> Response:
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def json_response(status: int, body: str) -> Response:
    """A JSON answer already serialized (a model's `model_dump_json`)."""
    return _json(status, body)
