"""Key rotation speed: re-encrypting stored secrets under a new first key, on SQLite.

`python -m bench.rotate_keys [--rows N] [--batch-size B]` seeds N factor rows (default
100,000: half TOTP secrets, half phone numbers, sealed with key A) into a temporary SQLite
database with bulk SQL inserts, then times `AdminService.rotate_keys` with keys "B,A" and
prints rows/s. A second pass shows the cost of a resumed run that finds everything current.
No assertions: the numbers depend on the machine. Bounded: at most 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from mfa_pipeline.adapters.crypto import AesGcmSecretBox, generate_key, parse_keys
from mfa_pipeline.adapters.sql_account import (
    SqlAuditLog,
    SqlBackupCodeRepository,
    SqlTrustedSessionRepository,
)
from mfa_pipeline.adapters.sql_migrations import upgrade
from mfa_pipeline.adapters.sql_models import FactorRow, UserRow
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from mfa_pipeline.adapters.sql_secrets import SqlSecretRotationRepository
from mfa_pipeline.adapters.system_clock import SystemClock
from mfa_pipeline.ports import NullMetrics
from mfa_pipeline.services.admin import AdminService
from mfa_pipeline.services.administrators import FirmAdministrators
from mfa_pipeline.services.audit import Auditor
from mfa_pipeline.services.failure_budget import CodeFactorLock

MAX_ROWS = 1_000_000
FACTORS_PER_USER = 2  # one TOTP, one SMS
INSERT_CHUNK = 10_000


def seed(engine: sa.Engine, rows: int, box: AesGcmSecretBox) -> None:
    users = (rows + FACTORS_PER_USER - 1) // FACTORS_PER_USER
    with engine.begin() as conn:
        for start in range(0, users, INSERT_CHUNK):
            conn.execute(
                sa.insert(UserRow),
                [
                    {
                        "user_id": f"u{n:07d}",
                        "firm_id": "bench",
                        "created_at": 1.0,
                        "updated_at": 1.0,
                    }
                    for n in range(start, min(users, start + INSERT_CHUNK))
                ],
            )
        for start in range(0, rows, INSERT_CHUNK):
            batch = []
            for n in range(start, min(rows, start + INSERT_CHUNK)):
                user_id, factor_id = f"u{n // FACTORS_PER_USER:07d}", f"f_{n:08d}"
                totp = n % 2 == 0
                row: dict[str, object] = {
                    "factor_id": factor_id,
                    "user_id": user_id,
                    "type": "totp" if totp else "sms",
                    "status": "active",
                    "created_at": 1.0,
                    "secret_ciphertext": None,
                    "phone_ciphertext": None,
                }
                if totp:
                    row["secret_ciphertext"] = box.encrypt(
                        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", context=f"totp:{user_id}:{factor_id}"
                    )
                else:
                    row["phone_ciphertext"] = box.encrypt(
                        f"+1201555{n % 10_000:04d}", context=f"sms:{user_id}:{factor_id}"
                    )
                batch.append(row)
            conn.execute(sa.insert(FactorRow), batch)


def service(engine: sa.Engine, keys: list[str]) -> AdminService:
    clock = SystemClock()
    factors = SqlFactorRepository(engine)
    auditor = Auditor(log=SqlAuditLog(engine), clock=clock)
    return AdminService(
        factors=factors,
        backup_codes=SqlBackupCodeRepository(engine),
        trusted_sessions=SqlTrustedSessionRepository(engine),
        auditor=auditor,
        clock=clock,
        administrators=FirmAdministrators(factors=factors, auditor=auditor),
        code_factor_lock=CodeFactorLock(
            factors=factors, auditor=auditor, clock=clock, metrics=NullMetrics()
        ),
        secrets_box=AesGcmSecretBox(parse_keys(keys)),
        stored_secrets=SqlSecretRotationRepository(engine),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    rows = max(1, min(args.rows, MAX_ROWS))
    key_a, key_b = generate_key(), generate_key()
    with tempfile.TemporaryDirectory(prefix="mfa-bench-rotate-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'mfa.sqlite3'}"
        upgrade(url)
        engine = create_engine_for(url)
        started = time.perf_counter()
        seed(engine, rows, AesGcmSecretBox(parse_keys([key_a])))
        seeded = time.perf_counter() - started
        print(f"seeded {rows:,} secret rows in {seeded:.1f} s")

        admin = service(engine, [key_b, key_a])
        done = admin.rotate_keys(batch_size=args.batch_size)
        print(
            f"rotate: {done.rewritten:,} rows re-encrypted in {done.elapsed_seconds:.2f} s "
            f"= {done.rewritten / done.elapsed_seconds:,.0f} rows/s (batch {args.batch_size})"
        )
        again = admin.rotate_keys(batch_size=args.batch_size)
        print(
            f"resume: {again.skipped:,} rows already current, checked in "
            f"{again.elapsed_seconds:.2f} s = {again.scanned / again.elapsed_seconds:,.0f} rows/s"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
