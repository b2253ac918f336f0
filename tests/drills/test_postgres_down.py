"""Fault drill: PostgreSQL goes away under the API, then comes back.

The machine's PostgreSQL is never stopped: the service reaches its own fresh database through a
TCP proxy on loopback, and the test cuts the proxy (open connections reset, new ones refused),
as a crashed server or a lost network would. While it is cut, every request that needs SQL
answers 503 `unavailable` at once, readiness names the database, nothing reaches Redis for a
refused login, and not a row changes in any table. Restored, the API serves again by itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx
import pyotp
import pytest
import sqlalchemy as sa

from mfa_pipeline.api.main import app_for
from mfa_pipeline.bootstrap import bootstrap
from tests.drills.kit import drill_settings
from tests.fakes.tcp_proxy import TcpProxy
from tests.fixtures.pipeline import MANAGE_KEY, ApiServer, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import redis

    from tests.fakes.fake_twilio import FakeTwilio

pytestmark = pytest.mark.drill


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows per table, read past the proxy."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return {
            name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for name, table in metadata.tables.items()
        }


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy to this test's PostgreSQL database, and the database URL through it."""
    url = sa.engine.make_url(postgres_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
def api_on_proxied_postgres(
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    fake_twilio: FakeTwilio,
    postgres_proxy: tuple[TcpProxy, str],
) -> Iterator[httpx.Client]:
    settings = drill_settings(
        tmp_path, redis_url, key_prefix, fake_twilio.url, database_url=postgres_proxy[1]
    )
    container = bootstrap(settings)
    server = ApiServer(app_for(container))
    server.start()
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {MANAGE_KEY}"}, timeout=20
    ) as client:
        yield client
    server.stop()
    container.close()


def enroll_totp(api: httpx.Client, user_id: str) -> pyotp.TOTP:
    assert api.put(f"/v1/users/{user_id}", json={"firm_id": "acme"}).status_code == 200
    created = api.post(f"/v1/users/{user_id}/factors/totp").json()
    totp = pyotp.TOTP(created["secret"])
    activated = api.post(
        f"/v1/users/{user_id}/factors/{created['factor_id']}/activate", json={"code": totp.now()}
    )
    assert activated.status_code == 200, activated.text
    return totp


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "unavailable"
    assert answer.headers["Retry-After"] == "1"


def test_postgres_down_answers_503_writes_nothing_and_the_api_recovers_by_itself(
    api_on_proxied_postgres: httpx.Client,
    postgres_proxy: tuple[TcpProxy, str],
    postgres_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    api = api_on_proxied_postgres
    proxy = postgres_proxy[0]
    enroll_totp(api, "alice")
    direct = sa.create_engine(postgres_url)
    try:
        before = row_counts(direct)
        challenge_keys = set(redis_client.scan_iter(match=f"{key_prefix}:*:ch:*"))

        proxy.cut()
        started = time.monotonic()
        assert_unavailable(api.put("/v1/users/bob", json={"firm_id": "acme"}))
        assert_unavailable(api.post("/v1/users/alice/factors/totp"))
        assert_unavailable(api.post("/v1/challenges", json={"user_id": "alice", "factor": "totp"}))
        assert_unavailable(api.delete("/v1/users/alice/trusted-sessions"))
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["checks"] == {"redis": "ok", "database": "unavailable"}
        assert time.monotonic() - started < 10  # a clear answer, not a hang
        # Nothing half-written: no table changed, no challenge reached Redis.
        assert row_counts(direct) == before
        assert set(redis_client.scan_iter(match=f"{key_prefix}:*:ch:*")) == challenge_keys

        proxy.restore()
        # Nobody restarts the API: the pool's pre-ping replaces the dead connections.
        wait_until(lambda: api.get("/readyz").status_code == 200, timeout=10)
        assert api.put("/v1/users/bob", json={"firm_id": "acme"}).status_code == 200
        created = api.post("/v1/challenges", json={"user_id": "alice", "factor": "totp"})
        assert created.status_code == 201, created.text
        assert [f["type"] for f in api.get("/v1/users/alice").json()["factors"]] == ["totp"]
    finally:
        direct.dispose()
