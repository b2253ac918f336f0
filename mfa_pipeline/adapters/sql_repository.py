"""Users and factors in SQL (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from mfa_pipeline.adapters.sql_models import (
    FactorRow,
    UserRow,
    WebAuthnCredentialRow,
    end_invitation,
)
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.domain.factors import Factor, FactorStatus, Role, User
from mfa_pipeline.domain.webauthn import WebAuthnCredential
from mfa_pipeline.ports import FactorRepository

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable

P = ParamSpec("P")
R = TypeVar("R")

# How long a writer waits for another process's SQLite write lock before giving up (503).
SQLITE_BUSY_SECONDS = 15
CONNECT_TIMEOUT_SECONDS = 5
# A pooled PostgreSQL connection handed back less than this long ago is not pinged again.
PING_BYPASS_SECONDS = 1.0
# The API's thread pool (anyio's default of 40) plus the few threads of a worker.
SQLITE_POOL_SIZE = 48
_LIBPQ_DRIVERS = frozenset({"psycopg", "psycopg2"})
_UNAVAILABLE = "The enrollment database is unavailable; try again."


def create_engine_for(url: str) -> sa.Engine:
    """An engine tuned for its database: SQLite shared by processes, or a PostgreSQL pool.

    Bound parameters are kept out of error messages (`hide_parameters`): a logged database
    error must not carry ciphertexts, code hashes or token digests.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Connections move between the API's worker threads; the pool hands each to one at a
        # time, so pysqlite's same-thread check only gets in the way.
        # One connection per API worker thread: a smaller pool makes the overflow threads
        # open (and set up) a fresh SQLite connection on every request.
        engine = sa.create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False},
            hide_parameters=True,
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_SIZE,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in _LIBPQ_DRIVERS:
        # A host that drops packets must fail fast (503), not after the OS's TCP timeout.
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    engine = sa.create_engine(
        url,
        connect_args=connect_args,
        hide_parameters=True,
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,
        # An exhausted pool answers 503 soon rather than holding a request for 30 s.
        pool_timeout=10,
    )
    event.listen(engine, "connect", _stamp_last_use)  # a new connection needs no ping
    event.listen(engine, "checkin", _stamp_last_use)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _stamp_last_use(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["last_used"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Test a connection that sat idle before handing it out (a lazy `pool_pre_ping`).

    Connections die behind load balancers and failovers, so one that waited in the pool is
    pinged first, and a dead one is replaced before the request sees it. One handed back
    within the last `PING_BYPASS_SECONDS` was just working: pinging it too cost a network
    round trip per statement, two per login (HikariCP skips validation the same way). A
    connection that dies inside that window fails its statement with a 503 and is discarded
    with the rest of the pool, as any connection lost mid-request is.
    """
    last_used = record.info.get("last_used")
    if last_used is not None and time.monotonic() - last_used < PING_BYPASS_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()  # the ping's implicit transaction must not stay open
    except Exception as exc:
        # The pool discards this connection and checks out another (a fresh one if need be).
        raise DisconnectionError("connection failed its ping") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    # busy_timeout first, so that even the switch to WAL waits for another process's lock.
    # WAL lets the API and worker processes read while one writes; NORMAL sync is durable
    # across crashes of the process; foreign keys are off in SQLite unless asked for.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SingleStatements:
    """Connections for one statement on its own, the cheapest way each database allows.

    On PostgreSQL a single statement runs in autocommit: no `BEGIN` and no `COMMIT`/`ROLLBACK`
    round trips while the API's event loop waits. On SQLite switching a pooled connection to
    autocommit and back costs more than the transaction it saves (pysqlite runs a PRAGMA each
    way: about 120 us per statement), and the database is in-process: a read uses the pool as
    it is, and a write commits its one statement.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def read(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return self._engine.connect() if self._sqlite else self._autocommit.connect()

    def write(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return self._engine.begin() if self._sqlite else self._autocommit.connect()


def translate_db_errors(func: Callable[P, R]) -> Callable[P, R]:
    """A database that cannot be reached becomes the domain's `UnavailableError` (503).

    The message is fixed: the driver's text may name the host, and must not reach a client.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (OperationalError, PoolTimeoutError) as exc:
            raise UnavailableError(_UNAVAILABLE) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise UnavailableError(_UNAVAILABLE) from exc
            raise

    return wrapper


_FACTORS = cast("sa.Table", FactorRow.__table__)
_USERS = cast("sa.Table", UserRow.__table__)
_CREDENTIALS = cast("sa.Table", WebAuthnCredentialRow.__table__)
# A passkey's credential, read with its factor on the login's one statement (prefixed: the
# factor row has columns of the same names).
_CREDENTIAL_COLUMNS = (
    "credential_id",
    "public_key",
    "sign_count",
    "transports",
    "aaguid",
    "backup_eligible",
    "backed_up",
    "last_used_at",
)


def _factor(row: FactorRow | sa.Row[Any]) -> Factor:
    return Factor(
        factor_id=row.factor_id,
        user_id=row.user_id,
        type=FactorType(row.type),
        status=FactorStatus(row.status),
        created_at=row.created_at,
        activated_at=row.activated_at,
        secret_ciphertext=row.secret_ciphertext,
        phone_ciphertext=row.phone_ciphertext,
        phone_last2=row.phone_last2,
        phone_region=row.phone_region,
        pending_challenge_id=row.pending_challenge_id,
        label=row.label,
        platform=row.platform,
        push_token_ciphertext=row.push_token_ciphertext,
        public_key=row.public_key,
    )


def credential_from_row(row: sa.Row[Any] | Any, prefix: str = "") -> WebAuthnCredential:
    """A passkey's credential from a row of it joined to its factor (name, creation time).

    `prefix`: what the credential's own columns are labelled with, where the factor's columns
    of the same names come in the same row.
    """

    def column(name: str) -> Any:
        return getattr(row, prefix + name)

    return WebAuthnCredential(
        factor_id=row.factor_id,
        user_id=row.user_id,
        credential_id=column("credential_id"),
        public_key=column("public_key"),
        sign_count=column("sign_count"),
        transports=tuple(t for t in column("transports").split(",") if t),
        aaguid=column("aaguid"),
        backup_eligible=column("backup_eligible"),
        backed_up=column("backed_up"),
        name=row.label or "",
        created_at=row.created_at,
        last_used_at=column("last_used_at"),
    )


def _factor_with_credential(row: sa.Row[Any]) -> Factor:
    factor = _factor(row)
    if row.w_credential_id is None or factor.status is not FactorStatus.ACTIVE:
        return factor
    return dataclasses.replace(factor, credential=credential_from_row(row, prefix="w_"))


def _user(row: UserRow | sa.Row[Any]) -> User:
    return User(
        user_id=row.user_id,
        firm_id=row.firm_id,
        created_at=row.created_at,
        role=Role(row.role),
        locked_until=row.locked_until,
    )


_USER_WITH_FACTORS = (
    sa.select(
        _USERS.c.firm_id.label("u_firm_id"),
        _USERS.c.created_at.label("u_created_at"),
        _USERS.c.role.label("u_role"),
        _USERS.c.locked_until.label("u_locked_until"),
        *(column for column in _FACTORS.c if column.name != "last_totp_step"),
        *(_CREDENTIALS.c[name].label(f"w_{name}") for name in _CREDENTIAL_COLUMNS),
    )
    .select_from(
        _USERS.outerjoin(_FACTORS, _FACTORS.c.user_id == _USERS.c.user_id).outerjoin(
            _CREDENTIALS, _CREDENTIALS.c.factor_id == _FACTORS.c.factor_id
        )
    )
    .where(_USERS.c.user_id == sa.bindparam("b_user_id"))
    .order_by(_FACTORS.c.created_at, _FACTORS.c.factor_id)
)

_USER = _USERS.select().where(_USERS.c.user_id == sa.bindparam("b_user_id"))
# Built once: every SMS and push delivery reads its factor with it, and building the statement
# and its cache key per call cost about as much as running it.
_FACTOR_BY_ID = _FACTORS.select().where(
    _FACTORS.c.factor_id == sa.bindparam("b_factor_id"),
    _FACTORS.c.user_id == sa.bindparam("b_user_id"),
)


class SqlFactorRepository(FactorRepository):
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        # The hot paths' single statements (`SingleStatements`).
        self._single = SingleStatements(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def _session(self) -> Session:
        return self._sessions()

    @translate_db_errors
    def put_user(
        self, user_id: str, *, firm_id: str | None, role: Role | None, now: float
    ) -> tuple[User | None, User]:
        with self._session() as session:
            try:
                with session.begin():
                    session.add(
                        UserRow(
                            user_id=user_id,
                            firm_id=firm_id,
                            role=(role or Role.MEMBER).value,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    previous = None
            except IntegrityError:
                with session.begin():
                    # Locked against a concurrent change: `previous` is what this call replaced.
                    row = session.get(UserRow, user_id, with_for_update=True)
                    assert row is not None  # noqa: S101 - the insert just collided with it
                    previous = _user(row)
                    if firm_id is not None:
                        row.firm_id = firm_id
                    if role is not None:
                        row.role = role.value
                    row.updated_at = now
            row = session.get(UserRow, user_id, populate_existing=True)
            assert row is not None  # noqa: S101 - just written
            return previous, _user(row)

    @translate_db_errors
    def lock_code_factors(self, user_id: str, *, now: float, until: float) -> bool:
        return self._single_update(
            sa.update(_USERS)
            .where(
                _USERS.c.user_id == user_id,
                sa.or_(_USERS.c.locked_until.is_(None), _USERS.c.locked_until <= now),
            )
            .values(locked_until=until)
        )

    @translate_db_errors
    def unlock_code_factors(self, user_id: str, *, now: float) -> bool:
        # Only a lock in force is lifted; a lapsed one is harmless and overwritten by the next.
        # Every push and passkey login asks, so this is one Core statement without a session.
        return self._single_update(
            sa.update(_USERS)
            .where(_USERS.c.user_id == user_id, _USERS.c.locked_until > now)
            .values(locked_until=None)
        )

    @translate_db_errors
    def get_user(self, user_id: str) -> User | None:
        # Every two-step code verification reads it (is the factor locked?): one prepared read.
        with self._single.read() as connection:
            row = connection.execute(_USER, {"b_user_id": user_id}).first()
            return None if row is None else _user(row)

    @translate_db_errors
    def add_factor(self, factor: Factor) -> None:
        with self._session() as session, session.begin():
            session.add(
                FactorRow(
                    factor_id=factor.factor_id,
                    user_id=factor.user_id,
                    type=factor.type.value,
                    status=factor.status.value,
                    label=factor.label,
                    platform=factor.platform,
                    push_token_ciphertext=factor.push_token_ciphertext,
                    public_key=factor.public_key,
                    secret_ciphertext=factor.secret_ciphertext,
                    phone_ciphertext=factor.phone_ciphertext,
                    phone_last2=factor.phone_last2,
                    phone_region=factor.phone_region,
                    pending_challenge_id=factor.pending_challenge_id,
                    created_at=factor.created_at,
                    activated_at=factor.activated_at,
                )
            )
            if factor.status is FactorStatus.ACTIVE:  # a push device is active at once
                session.execute(end_invitation(factor.user_id))

    @translate_db_errors
    def get_factor(self, user_id: str, factor_id: str) -> Factor | None:
        # Core rather than ORM on the hot paths (every delivery and verification): a plain
        # SELECT costs a fraction of a session's identity-map bookkeeping.
        with self._single.read() as connection:
            row = connection.execute(
                _FACTOR_BY_ID, {"b_factor_id": factor_id, "b_user_id": user_id}
            ).first()
            return None if row is None else _factor(row)

    @translate_db_errors
    def list_factors(self, user_id: str) -> list[Factor]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                _FACTORS.select()
                .where(_FACTORS.c.user_id == user_id)
                .order_by(_FACTORS.c.created_at, _FACTORS.c.factor_id)
            )
            return [_factor(r) for r in rows]

    @translate_db_errors
    def get_user_with_factors(self, user_id: str) -> tuple[User | None, list[Factor]]:
        # One statement (user LEFT JOIN factors) instead of two on every login.
        with self._single.read() as connection:
            rows = connection.execute(_USER_WITH_FACTORS, {"b_user_id": user_id}).all()
        if not rows:
            return None, []
        first = rows[0]
        user = User(
            user_id=user_id,
            firm_id=first.u_firm_id,
            created_at=first.u_created_at,
            role=Role(first.u_role),
            locked_until=first.u_locked_until,
        )
        return user, [_factor_with_credential(r) for r in rows if r.factor_id is not None]

    def _conditional_update(self, statement: sa.Update) -> bool:
        with self._session() as session, session.begin():
            result = session.execute(statement)
            return int(getattr(result, "rowcount", 0)) == 1

    def _single_update(self, statement: sa.Update) -> bool:
        """One Core UPDATE on its own (atomic alone): no ORM session, no BEGIN or COMMIT."""
        with self._single.write() as connection:
            return connection.execute(statement).rowcount == 1

    @translate_db_errors
    def activate_factor(self, user_id: str, factor_id: str, *, now: float) -> bool:
        with self._session() as session, session.begin():
            result = session.execute(
                sa.update(FactorRow)
                .where(
                    FactorRow.factor_id == factor_id,
                    FactorRow.user_id == user_id,
                    FactorRow.status == FactorStatus.PENDING.value,
                )
                .values(
                    status=FactorStatus.ACTIVE.value, activated_at=now, pending_challenge_id=None
                )
            )
            if int(getattr(result, "rowcount", 0)) != 1:
                return False
            session.execute(end_invitation(user_id))  # enrolling ends an invitation
            return True

    @translate_db_errors
    def refresh_push_device(
        self,
        user_id: str,
        factor_id: str,
        *,
        push_token_ciphertext: str,
        label: str | None,
        platform: str,
    ) -> bool:
        return self._conditional_update(
            sa.update(FactorRow)
            .where(FactorRow.factor_id == factor_id, FactorRow.user_id == user_id)
            .values(
                push_token_ciphertext=push_token_ciphertext,
                label=label,
                platform=platform,
                status=FactorStatus.ACTIVE.value,
            )
        )

    @translate_db_errors
    def deactivate_factor(self, user_id: str, factor_id: str) -> bool:
        return self._conditional_update(
            sa.update(FactorRow)
            .where(
                FactorRow.factor_id == factor_id,
                FactorRow.user_id == user_id,
                FactorRow.status == FactorStatus.ACTIVE.value,
            )
            .values(status=FactorStatus.INACTIVE.value)
        )

    @translate_db_errors
    def set_pending_challenge(self, user_id: str, factor_id: str, challenge_id: str) -> None:
        self._conditional_update(
            sa.update(FactorRow)
            .where(FactorRow.factor_id == factor_id, FactorRow.user_id == user_id)
            .values(pending_challenge_id=challenge_id)
        )

    @translate_db_errors
    def delete_factor(self, user_id: str, factor_id: str) -> bool:
        with self._session() as session, session.begin():
            result = session.execute(
                sa.delete(FactorRow).where(
                    FactorRow.factor_id == factor_id, FactorRow.user_id == user_id
                )
            )
            return int(getattr(result, "rowcount", 0)) == 1

    @translate_db_errors
    def ping(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
