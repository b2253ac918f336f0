"""A login with the challenge store on a 3-master Redis Cluster (MFA_REDIS_CLUSTER=true).

The whole path over real HTTP: the API and the worker are built by `bootstrap` with a
`RedisCluster` client, the broker is a separate single Redis (MFA_BROKER_URL), SMS go through
the fake Twilio, and a long poll on the API is woken by a script that ran on another master.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
from redis.cluster import RedisCluster

from tests.e2e.test_login_flows import PHONE_E164, create_user, enroll_sms, last_code
from tests.fixtures.pipeline import wait_until

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.cli.embedded_redis import EmbeddedRedis
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.pipeline import ApiServer
    from tests.fixtures.redis_cluster import LocalRedisCluster

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def redis_url(redis_cluster: LocalRedisCluster) -> str:
    """The store's URL: one node of the cluster."""
    return redis_cluster.url


@pytest.fixture
def settings_overrides(redis_server: EmbeddedRedis) -> dict[str, Any]:
    return {"redis_cluster": True, "broker_url": redis_server.url}


def test_an_sms_login_on_a_redis_cluster_store_delivers_verifies_and_wakes_the_long_poll(
    api: httpx.Client,
    api_server: ApiServer,
    container: Container,
    fake_twilio: FakeTwilio,
) -> None:
    assert isinstance(container.redis, RedisCluster)
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})
    assert created.status_code == 201, created.text
    challenge_id = created.json()["challenge_id"]
    code = last_code(fake_twilio, 2)
    assert fake_twilio.messages[1]["To"] == PHONE_E164
    wait_until(
        lambda: api.get(f"/v1/challenges/{challenge_id}").json()["delivery"]["status"] == "sent"
    )

    answer: dict[str, Any] = {}

    def poll() -> None:
        answer["body"] = api.get(f"/v1/challenges/{challenge_id}", params={"wait": 20}).json()

    poller = threading.Thread(target=poll)
    poller.start()
    wait_until(lambda: api_server.waiters() > 0)
    verified = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code})
    assert verified.status_code == 200, verified.text
    poller.join(10)
    assert not poller.is_alive()
    assert answer["body"]["status"] == "verified"
    assert api.get("/readyz").status_code == 200
