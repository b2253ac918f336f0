"""pytest-celery runs on the local Redis: its Docker fixtures are replaced (tests/fixtures)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfa_pipeline.domain.challenges import FactorType, RequestContext, RequestedFactor
from mfa_pipeline.domain.factors import Factor, FactorStatus
from tests.fixtures.pipeline import wait_until

if TYPE_CHECKING:
    from pytest_celery import CeleryTestSetup

    from mfa_pipeline.bootstrap import Container


def test_the_celery_setup_uses_the_local_broker_and_routes_tasks_to_their_queues(
    celery_setup: CeleryTestSetup, redis_url: str
) -> None:
    app = celery_setup.app
    assert app.conf.broker_url == redis_url
    routes = app.conf.task_routes
    assert routes["mfa.deliver_sms"] == {"queue": "sms"}
    assert routes["mfa.sweep_expired"] == {"queue": "sweeps"}
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True


def test_a_sweep_sent_through_the_setup_runs_on_the_worker(
    celery_setup: CeleryTestSetup, container: Container, worker: object
) -> None:
    container.ports.factors.upsert_user("sweep-user", firm_id=None, now=container.ports.clock.now())
    container.ports.factors.add_factor(
        Factor(
            factor_id="f_sweep",
            user_id="sweep-user",
            type=FactorType.TOTP,
            status=FactorStatus.ACTIVE,
            created_at=container.ports.clock.now(),
            secret_ciphertext="unused",
        )
    )
    view = container.services.challenges.issue(
        user_id="sweep-user", factor=RequestedFactor.TOTP, context=RequestContext()
    )
    container.ports.clock.advance(container.settings.challenge_ttl_seconds + 1)  # type: ignore[attr-defined]
    celery_setup.app.send_task("mfa.sweep_expired", queue="sweeps")
    key = container.ports.store.keys.challenge(view.challenge.challenge_id)  # type: ignore[attr-defined]
    wait_until(lambda: container.redis.hget(key, "status") == "expired")
