"""`python -m bench.push_services`: a push login's service calls in one process, CPU per call.

No HTTP and no worker: on the bench stack (its own Redis and SQLite, logs at INFO as JSON,
default rate limits) it registers `--logins` phones, then times with `time.process_time()`
`ChallengeService.issue` (factor push, an address of its own per login),
`PushAnswers.answer` (a signed approval with the right number) and `ChallengeService.get`
(the long-poll's read, twice per login). On a busy machine this moves far less than figures
taken through the API. `--compare DIR` runs the same measurement on another checkout's code
(for example `git worktree add /tmp/before main`) and this one's in turn, `--runs` times
each, every run in a fresh process. Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

ROOT = Path(__file__).resolve().parent.parent


def measure(logins: int) -> dict[str, float]:
    """CPU milliseconds per call, measured in this process on the code it imports."""
    from bench.stack import Stack  # noqa: PLC0415 - after PYTHONPATH chose the code
    from bench.wrk import SERVICE_ENV  # noqa: PLC0415
    from mfa_pipeline.cli.device import SimulatedDevice  # noqa: PLC0415
    from mfa_pipeline.domain.challenges import RequestContext, RequestedFactor  # noqa: PLC0415
    from mfa_pipeline.domain.push import Decision, PushAnswer  # noqa: PLC0415
    from mfa_pipeline.logs import configure_logging  # noqa: PLC0415
    from mfa_pipeline.services.push import decode_signature  # noqa: PLC0415

    configure_logging(level="INFO", fmt="json", env="test", stream=io.StringIO())
    with Stack.start(extra_env=SERVICE_ENV) as stack:
        ports, services = stack.container.ports, stack.container.services
        phones = []
        for n in range(logins):
            user_id, phone = f"bench-push-{n:05d}", SimulatedDevice.generate()
            ports.factors.upsert_user(user_id, firm_id="bench", now=time.time())
            registered = services.push_devices.register(user_id=user_id, **phone.registration())
            phone.device_id = registered.factor.factor_id
            phones.append((user_id, phone))
        started = time.process_time()
        views = [
            services.challenges.issue(
                user_id=user_id,
                factor=RequestedFactor.PUSH,
                context=RequestContext(ip=f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255 or 1}"),
            )
            for n, (user_id, _) in enumerate(phones)
        ]
        issue = time.process_time() - started
        started = time.process_time()
        for view in views:
            services.challenges.get(view.challenge.challenge_id)
        get = time.process_time() - started
        answers = []
        for (_, phone), view in zip(phones, views, strict=True):
            body = phone.answer(
                view.challenge.challenge_id, "approve", number=view.challenge.number_match
            )
            # Built here, not with `services.push.answer_from_wire`: `--compare` runs this on
            # older checkouts, which do not have it.
            answers.append(
                PushAnswer(
                    challenge_id=body["challenge_id"],
                    device_id=body["device_id"],
                    decision=Decision(body["decision"]),
                    number=body["number"],
                    reason=None,
                    timestamp=body["timestamp"],
                    signature=decode_signature(body["signature"]),
                )
            )
        started = time.process_time()
        for answer in answers:
            services.push_answers.answer(answer)
        answer_cpu = time.process_time() - started
    per = 1000 / logins
    return {"issue": issue * per, "answer": answer_cpu * per, "get": get * per}


def run_in(code_root: Path, logins: int) -> dict[str, float]:
    """One measurement in a fresh process importing `code_root`'s code (this script's bench)."""
    env = dict(os.environ, PYTHONPATH=str(code_root))
    # By path, since the other checkout may not have this module; `-P` keeps `bench/` itself
    # off the path (its `webauthn.py` would shadow the library).
    argv = [sys.executable, "-P", str(Path(__file__)), "--child", "--logins", str(logins)]
    done = subprocess.run(
        argv, cwd=code_root, env=env, capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=600)
    parser.add_argument("--runs", type=int, default=2, help="per checkout, taken in turn")
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout's code")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.logins)))
        return 0
    codes = [("other code", args.compare.resolve())] if args.compare else []
    codes.append(("this code", ROOT))
    print(f"CPU ms per call, {args.logins} push logins per run, one process (no HTTP)")
    print(f"{'code':<12}{'run':>4}{'issue':>8}{'answer':>8}{'get x2':>8}{'login':>8}")
    for run in range(1, args.runs + 1):
        for name, root in codes:
            f = run_in(root, args.logins)
            total = f["issue"] + f["answer"] + 2 * f["get"]
            print(
                f"{name:<12}{run:>4}{f['issue']:>8.2f}{f['answer']:>8.2f}"
                f"{2 * f['get']:>8.2f}{total:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
