"""With Redis gone the API says 503 `unavailable` and keeps serving what it can."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from mfa_pipeline.adapters.sql_migrations import upgrade
from mfa_pipeline.api.main import app_for
from mfa_pipeline.bootstrap import bootstrap
from tests.fixtures.pipeline import MANAGE_KEY, ApiServer, make_settings
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def client_without_redis(tmp_path: Path) -> Iterator[httpx.Client]:
    settings = make_settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0", "down")
    upgrade(settings.effective_database_url)
    container = bootstrap(settings)
    container.services.enrollment.put_user(user_id="alice", firm_id="firm-test")
    factor = container.services.enrollment.enroll_totp(user_id="alice").factor
    container.ports.factors.activate_factor(
        "alice", factor.factor_id, now=container.ports.clock.now()
    )
    server = ApiServer(app_for(container))
    server.start()
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {MANAGE_KEY}"}, timeout=10
    ) as client:
        yield client
    server.stop()
    container.close()


def test_a_challenge_without_redis_is_unavailable_with_retry_after(
    client_without_redis: httpx.Client,
) -> None:
    answer = client_without_redis.post(
        "/v1/challenges", json={"user_id": "alice", "factor": "totp"}
    )
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"
    answer = client_without_redis.get("/v1/challenges/000" + "a" * 28)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"
    assert answer.headers["Retry-After"] == "1"


def test_readiness_names_the_missing_dependency_while_liveness_stays_up(
    client_without_redis: httpx.Client,
) -> None:
    ready = client_without_redis.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["checks"] == {"redis": "unavailable", "database": "ok"}
    assert client_without_redis.get("/healthz").status_code == 200


def test_enrollment_data_stays_readable_without_redis(client_without_redis: httpx.Client) -> None:
    answer = client_without_redis.get("/v1/users/alice")
    assert answer.status_code == 200
    assert answer.json()["factors"][0]["type"] == "totp"
