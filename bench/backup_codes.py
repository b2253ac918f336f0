"""Backup-code verifications per second on one core, with the service's argon2id parameters.

`python -m bench.backup_codes [seconds]` hashes a code a few times, then verifies it for about
`seconds` (default 3) in this single thread, and prints the figures. No assertions: the
numbers depend on the machine.
"""

from __future__ import annotations

import sys
import time

from mfa_pipeline.adapters.argon2_hasher import Argon2CodeHasher
from mfa_pipeline.domain.backup_codes import BITS_PER_CODE, generate_backup_codes


def main(argv: list[str]) -> None:
    seconds = min(float(argv[0]) if argv else 3.0, 60.0)
    hasher = Argon2CodeHasher()
    code = generate_backup_codes(1)[0]

    started = time.perf_counter()
    hashes = [hasher.hash(code) for _ in range(5)]
    hash_ms = (time.perf_counter() - started) / len(hashes) * 1000

    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        if not hasher.verify(hashes[count % len(hashes)], code):
            raise SystemExit("a verification failed")
        count += 1
    elapsed = time.perf_counter() - started

    params = hasher.parameters
    print(
        f"argon2id t={params['time_cost']} m={params['memory_cost_kib']} KiB "
        f"p={params['parallelism']}; {BITS_PER_CODE:.1f} bits per code"
    )
    print(f"hash:   {hash_ms:.1f} ms per code ({10 * hash_ms:.0f} ms for a set of 10)")
    print(f"verify: {count / elapsed:.1f} verifications/s on one core ({count} in {elapsed:.2f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
