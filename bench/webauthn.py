"""WebAuthn logins per second through the API, next to TOTP logins in the same run.

`python -m bench.webauthn [--seconds 8] [--threads 8]` starts the bench stack (its own Redis,
SQLite and `mfa-pipeline api`), registers passkeys through the real registration path (software
authenticator: ES256, attestation `none`), seeds TOTP users, then runs for `seconds` each:

- TOTP: `POST /v1/challenges {"factor": "totp", "code": ...}` (the one-round-trip verify),
  each user once;
- WebAuthn: `POST /v1/challenges {"factor": "webauthn"}`, the assertion signed in this
  process, `POST /v1/challenges/{id}/verify {"credential": ...}`.

It prints logins per second and the API's CPU milliseconds per login of each, over short rounds
taken in turn (target: a
WebAuthn login at most twice a TOTP login's). Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pyotp

from bench.seed import Seeder
from bench.stack import API_KEY, Stack
from tests.fakes.soft_authenticator import SoftAuthenticator

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.stack import Child

WEBAUTHN_USERS = 64
TOTP_USERS = 6000
TARGET_RATIO = 2.0
ROUNDS = 4


@dataclass
class Phase:
    name: str
    logins: int
    failures: int
    seconds: float
    api_cpu: float

    @property
    def rate(self) -> float:
        return self.logins / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_login(self) -> float:
        return self.api_cpu / self.logins * 1000 if self.logins else float("nan")


def register_passkeys(stack: Stack, count: int) -> list[tuple[str, SoftAuthenticator]]:
    """Users with one passkey each, registered in-process through the real services."""
    c = stack.container
    users = []
    for n in range(count):
        user_id = f"bench-webauthn-{n:04d}"
        c.ports.factors.upsert_user(user_id, firm_id="bench", now=time.time())
        key = SoftAuthenticator()
        start = c.services.webauthn.start(user_id=user_id, name="bench key")
        c.services.webauthn.register(
            user_id=user_id,
            registration_id=start.registration_id,
            credential=key.create(start.public_key),
            name=None,
        )
        users.append((user_id, key))
    return users


def run_phase(
    name: str,
    api: Child,
    *,
    seconds: float,
    threads: int,
    login: Callable[[httpx.Client, int], bool],
    limit: int,
    start: int = 0,
) -> Phase:
    """Logins from `threads` keep-alive clients until `seconds` pass or `limit` are done."""
    counter = iter(range(start, start + limit))
    lock = threading.Lock()
    done = failures = 0
    deadline = time.monotonic() + seconds

    def lane(url: str) -> None:
        nonlocal done, failures
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        ) as client:
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                ok = login(client, index)
                with lock:
                    done += ok
                    failures += not ok

    cpu_before, started = api.cpu_seconds(), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(lane, api_url) for _ in range(threads)]:
            future.result()
    elapsed, cpu = time.monotonic() - started, api.cpu_seconds() - cpu_before
    return Phase(name, done, failures, elapsed, cpu)


def totp_login(users: list[Any]) -> Callable[[httpx.Client, int], bool]:
    def login(client: httpx.Client, index: int) -> bool:
        user = users[index]
        answer = client.post(
            "/v1/challenges",
            json={"user_id": user.user_id, "factor": "totp", "code": pyotp.TOTP(user.secret).now()},
        )
        return answer.status_code == 201 and answer.json()["status"] == "verified"

    return login


def webauthn_login(
    users: list[tuple[str, SoftAuthenticator]],
) -> Callable[[httpx.Client, int], bool]:
    locks = [threading.Lock() for _ in users]

    def login(client: httpx.Client, index: int) -> bool:
        slot = index % len(users)
        user_id, key = users[slot]
        with locks[slot]:  # one authenticator, one login at a time: its counter only grows
            created = client.post("/v1/challenges", json={"user_id": user_id, "factor": "webauthn"})
            if created.status_code != 201:
                return False
            body = created.json()
            assertion = key.get(body["public_key"])
            verified = client.post(
                f"/v1/challenges/{body['challenge_id']}/verify", json={"credential": assertion}
            )
        return verified.status_code == 200

    return login


api_url = ""


def main() -> None:
    global api_url
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    seconds = min(args.seconds, 25.0)  # the whole run stays within a minute
    with Stack.start() as stack:
        passkeys = register_passkeys(stack, WEBAUTHN_USERS)
        seeder = Seeder(stack.container)
        totp_users = seeder.totp_users(TOTP_USERS)
        seeder.close()
        api, api_url = stack.start_api(workers=1)
        # Warm both paths (imports, connections, caches) before measuring.
        warm_totp = totp_login(totp_users[-200:])
        run_phase("warm", api, seconds=1.0, threads=2, login=webauthn_login(passkeys), limit=50)
        run_phase("warm", api, seconds=1.0, threads=2, login=warm_totp, limit=200)
        # Short rounds taken in turn: on a busy machine both kinds see the same load.
        totp_logins = totp_login(totp_users[:-200])
        webauthn_logins = webauthn_login(passkeys)
        totp = Phase("TOTP", 0, 0, 0.0, 0.0)
        webauthn = Phase("WebAuthn", 0, 0, 0.0, 0.0)
        offset = 0
        for _ in range(ROUNDS):
            for total, login in ((totp, totp_logins), (webauthn, webauthn_logins)):
                part = run_phase(
                    total.name,
                    api,
                    seconds=seconds / ROUNDS,
                    threads=args.threads,
                    login=login,
                    limit=TOTP_USERS - 200 - offset,
                    start=offset if login is totp_logins else 0,
                )
                if login is totp_logins:
                    offset += part.logins + part.failures
                total.logins += part.logins
                total.failures += part.failures
                total.seconds += part.seconds
                total.api_cpu += part.api_cpu
    print("one API process (--workers 1); client and API share this machine's cores")
    print(f"{'login':<10}{'logins/s':>10}{'API CPU ms/login':>19}{'logins':>8}{'failed':>8}")
    for phase in (totp, webauthn):
        print(
            f"{phase.name:<10}{phase.rate:>10.1f}{phase.cpu_ms_per_login:>19.2f}"
            f"{phase.logins:>8}{phase.failures:>8}"
        )
    ratio = webauthn.cpu_ms_per_login / totp.cpu_ms_per_login
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    target = f"target <= {TARGET_RATIO:.0f}x: {verdict}"
    print(f"WebAuthn / TOTP API CPU per login: {ratio:.2f}x ({target})")


if __name__ == "__main__":
    main()
