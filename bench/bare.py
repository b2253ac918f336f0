"""The bare endpoint the login path is measured against: FastAPI, a small JSON body, no work.

`python -m bench.bare --port P --workers N` serves it with the same uvicorn settings as
`mfa-pipeline api` (same server, event loop, HTTP parser and worker count), so the share
`service rate / bare rate` in one run says what the service's own work costs, whatever the
machine's speed that day.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class Context(BaseModel):
    ip: str | None = Field(default=None, max_length=64)


class Body(BaseModel):
    """The shape of a one-shot TOTP login, validated as the service validates it."""

    user_id: str = Field(min_length=1, max_length=128)
    factor: str = Field(max_length=32)
    code: str | None = Field(default=None, max_length=16)
    context: Context = Field(default_factory=Context)


def create_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/v1/challenges", status_code=201)
    async def create(body: Body) -> JSONResponse:
        # 201 with a body of the service's shape, so the client's checks pass the same way.
        return JSONResponse({"status": "verified", "user_id": body.user_id}, status_code=201)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "bench.bare:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
