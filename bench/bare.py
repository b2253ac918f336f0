"""The bare endpoint the login path is measured against: FastAPI, a small JSON body, no work.

`python -m bench.bare --port P --workers N` serves it with the same uvicorn settings as
`mfa-pipeline api` (same server, event loop, HTTP parser and worker count), so the share
`service rate / bare rate` in one run says what the service's own work costs, whatever the
machine's speed that day.

`--round-trips` adds to it the round trips a one-shot TOTP login makes and nothing else: two
Redis calls (PING, the cheapest there is) and the login's one SQL read of the user, through the
service's own clients (redis-py with hiredis; SQLAlchemy Core on the engine and connections
the repository uses), on `MFA_REDIS_URL` and `MFA_DATABASE_URL`. No check, log, metric or
audit row: the floor under any login that keeps those round trips.
"""

from __future__ import annotations

import argparse
import os

import redis
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mfa_pipeline.adapters.sql_models import UserRow
from mfa_pipeline.adapters.sql_repository import SingleStatements, create_engine_for

# What a one-shot TOTP login sends: the rate-limit windows with the failure count, the
# verified challenge with the claim of the code's time step (Redis); the user with their
# factors (SQL).
REDIS_CALLS = 2


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


def create_round_trips_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    client = redis.Redis.from_url(os.environ["MFA_REDIS_URL"])
    single = SingleStatements(create_engine_for(os.environ["MFA_DATABASE_URL"]))
    users = UserRow.__table__
    read = sa.select(users.c.user_id).where(users.c.user_id == sa.bindparam("b_user_id"))

    @app.post("/v1/challenges", status_code=201)
    async def create(body: Body) -> JSONResponse:
        for _ in range(REDIS_CALLS):
            client.ping()
        with single.read() as connection:
            connection.execute(read, {"b_user_id": body.user_id}).all()
        return JSONResponse({"status": "verified", "user_id": body.user_id}, status_code=201)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--round-trips", action="store_true", help="add a login's round trips")
    args = parser.parse_args()
    uvicorn.run(
        "bench.bare:create_round_trips_app" if args.round_trips else "bench.bare:create_app",
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
