"""The queues each broker gets: plain ones on Redis, quorum queues on RabbitMQ."""

from __future__ import annotations

import pytest

from mfa_pipeline.adapters.celery_app import QUEUES, declared_queues, is_amqp
from mfa_pipeline.config import Settings


def test_a_redis_broker_gets_plain_queues_on_direct_exchanges() -> None:
    queues = declared_queues("redis://127.0.0.1:6379/0")
    assert [q.name for q in queues] == list(QUEUES)
    assert all(not q.queue_arguments and q.exchange.type == "direct" for q in queues)


@pytest.mark.parametrize("url", ["amqp://guest@rabbit:5672/mfa", "amqps://u:p@rabbit/mfa"])
def test_a_rabbitmq_broker_gets_quorum_queues_on_topic_exchanges(url: str) -> None:
    assert is_amqp(url)
    for queue, name in zip(declared_queues(url), QUEUES, strict=True):
        assert queue.name == name
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        # Native delayed delivery (retry countdowns on quorum queues) needs topic exchanges.
        assert (queue.exchange.name, queue.exchange.type, queue.routing_key) == (
            name,
            "topic",
            name,
        )


def test_a_cluster_store_needs_a_broker_url_of_its_own() -> None:
    settings = Settings(redis_url="redis://node-1:6379/0", redis_cluster=True)
    with pytest.raises(RuntimeError, match="MFA_BROKER_URL"):
        _ = settings.effective_broker_url
    with_broker = Settings(
        redis_url="redis://node-1:6379/0", redis_cluster=True, broker_url="amqp://rabbit//"
    )
    assert with_broker.effective_broker_url == "amqp://rabbit//"
