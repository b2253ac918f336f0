"""Attacks from the threat model (docs/security.md) not covered elsewhere: each meets a clear
error, and nothing it targets changes."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pyotp
import pytest

from tests.fixtures.pipeline import new_user_id

if TYPE_CHECKING:
    import httpx

    from tests.doubles.clock import FrozenClock


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "limit_challenges_per_user": "100/600",
        "limit_challenges_per_ip": "100/600",
        "limit_verifications_per_user": "6/600",
        "limit_verifications_per_ip": "8/600",
        "long_poll_max_seconds": 3,
    }


def totp_user(api: httpx.Client, clock: FrozenClock) -> tuple[str, pyotp.TOTP]:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    body = api.post(f"/v1/users/{user_id}/factors/totp").json()
    totp = pyotp.TOTP(body["secret"])
    activated = api.post(
        f"/v1/users/{user_id}/factors/{body['factor_id']}/activate",
        json={"code": totp.at(clock.now())},
    )
    assert activated.status_code == 200
    clock.advance(30)
    return user_id, totp


def wrong_code(totp: pyotp.TOTP, now: float) -> str:
    near = {totp.at(now, counter_offset=offset) for offset in range(-10, 11)}
    return next(c for c in (f"{n:06d}" for n in range(10**6)) if c not in near)


def new_challenge(api: httpx.Client, user_id: str, ip: str = "203.0.113.7") -> str:
    made = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "totp", "context": {"ip": ip}}
    )
    assert made.status_code == 201, made.text
    return str(made.json()["challenge_id"])


def test_guessing_codes_across_many_challenges_stops_at_the_per_user_limit(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id, totp = totp_user(api, clock)
    guess = wrong_code(totp, clock.now())
    answers = []
    for i in range(6):  # a fresh challenge per guess sidesteps the 5-attempt lock
        challenge_id = new_challenge(api, user_id, ip=f"198.51.100.{i}")
        answers.append(api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": guess}))
    # The activation was the user's first of 6 verifications in the window.
    assert [a.status_code for a in answers] == [400] * 5 + [429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["Retry-After"]) >= 1
    last = answers[-1].request.url.path.split("/")[3]
    assert api.get(f"/v1/challenges/{last}").json()["attempts_remaining"] == 5  # unchanged


def test_guessing_from_one_ip_across_users_stops_at_the_per_ip_limit(
    api: httpx.Client, clock: FrozenClock
) -> None:
    answers = []
    for _ in range(3):
        user_id, totp = totp_user(api, clock)
        guess = wrong_code(totp, clock.now())
        for _ in range(3):
            challenge_id = new_challenge(api, user_id, ip="192.0.2.66")
            answers.append(api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": guess}))
    assert [a.status_code for a in answers] == [400] * 8 + [429]


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_deeply_nested_body_is_an_invalid_request_not_a_500(
    api: httpx.Client, opener: str
) -> None:
    depth = 4000
    closer = "]" if opener == "[" else "}"
    body = '{"user_id": "alice", "context": ' + opener * depth + "1" + closer * depth + "}"
    answer = api.post(
        "/v1/challenges", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code in {413, 422}
    assert answer.json()["error"]["code"] in {"invalid_request", "payload_too_large"}


def test_an_unknown_challenge_id_and_a_malformed_one_look_the_same(api: httpx.Client) -> None:
    well_formed = "000" + "A" * 28
    answers = [
        api.get(f"/v1/challenges/{cid}")
        for cid in (well_formed, "nope", "x" * 64, "000" + "!" * 28)
    ]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1
    verify = api.post(f"/v1/challenges/{well_formed}/verify", json={"code": "123456"})
    assert (verify.status_code, verify.text) == (404, answers[0].text)


def test_a_caller_without_a_key_learns_nothing_about_existence(
    api: httpx.Client, anonymous: httpx.Client, clock: FrozenClock
) -> None:
    user_id, _ = totp_user(api, clock)
    challenge_id = new_challenge(api, user_id)
    known = [
        anonymous.get(f"/v1/users/{user_id}"),
        anonymous.get(f"/v1/challenges/{challenge_id}"),
        anonymous.post(f"/v1/challenges/{challenge_id}/verify", json={"code": "123456"}),
    ]
    unknown = [
        anonymous.get("/v1/users/nobody-here"),
        anonymous.get("/v1/challenges/000" + "B" * 28),
        anonymous.post("/v1/challenges/000" + "B" * 28 + "/verify", json={"code": "123456"}),
    ]
    assert [(a.status_code, a.text) for a in known] == [(u.status_code, u.text) for u in unknown]
    assert {a.status_code for a in known} == {401}
    assert api.get(f"/v1/challenges/{challenge_id}").json()["attempts_remaining"] == 5


def test_a_long_poll_beyond_the_limit_is_refused_and_held_polls_do_not_block_logins(
    api: httpx.Client, api_server: Any, clock: FrozenClock
) -> None:
    user_id, totp = totp_user(api, clock)
    challenge_id = new_challenge(api, user_id)
    assert api.get(f"/v1/challenges/{challenge_id}?wait=31").status_code == 422
    done: list[float] = []

    def poll() -> None:
        started = time.monotonic()
        api.get(f"/v1/challenges/{challenge_id}?wait=30")
        done.append(time.monotonic() - started)

    polls = [threading.Thread(target=poll) for _ in range(20)]
    for p in polls:
        p.start()
    time.sleep(0.2)
    verified = api.post(
        f"/v1/challenges/{new_challenge(api, user_id)}/verify", json={"code": totp.at(clock.now())}
    )
    assert verified.status_code == 200
    assert done == []  # answered while all 20 polls are still held: they cost it no worker
    for p in polls:
        p.join(10)
    assert len(done) == 20
    assert max(done) < 3 + 2  # MFA_LONG_POLL_MAX_SECONDS caps what a caller may hold
