"""`mfa-pipeline`: run the whole service on one machine, or one role of a scaled deployment."""

from __future__ import annotations

import contextlib
import http
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
import structlog

from mfa_pipeline.adapters import prometheus_dir
from mfa_pipeline.adapters.celery_app import QUEUES
from mfa_pipeline.cli.device_commands import device
from mfa_pipeline.config import (
    DEV_APPLICATION,
    ConfigurationError,
    Settings,
    SettingsError,
    dev_api_key,
    dev_api_key_path,
    load_settings,
    with_dev_keys,
)
from mfa_pipeline.logs import configure_logging
from mfa_pipeline.tracing import configure_tracing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mfa_pipeline.services.admin import AdminService, RotationProgress

ALL_QUEUES = ",".join(QUEUES)
UP_WAIT_SECONDS = 60
PORT = click.IntRange(1, 65535)
# A delivery spends almost all its time waiting on the provider (Twilio usually answers in
# 100-500 ms), so one process keeps many sends in flight on threads: I/O releases the GIL, and
# threads cost far less memory than prefork processes. bench/latency.py measures the choice.
WORKER_POOL = "threads"
WORKER_CONCURRENCY = 64


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, env=settings.env.value)
    return settings


class _Cli(click.Group):
    """Settings the service cannot run with end the command in one line, exit 1, no trace."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (SettingsError, ConfigurationError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Cli)
@click.version_option(package_name="mfa-pipeline", prog_name="mfa-pipeline")
def main() -> None:
    """Multi-factor authentication as an event-driven pipeline."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=PORT)
@click.option(
    "--concurrency",
    default=WORKER_CONCURRENCY,
    show_default=True,
    type=int,
    help="Sends the worker keeps in flight (threads).",
)
@click.option("--demo", is_flag=True, help="Also serve the reference login web app.")
@click.option("--demo-port", default=8001, show_default=True, type=PORT)
def up(host: str, port: int, concurrency: int, demo: bool, demo_port: int) -> None:
    """Run everything here: embedded Redis (unless MFA_REDIS_URL), SQLite, API, workers, beat."""
    from mfa_pipeline.adapters.sql_migrations import upgrade  # noqa: PLC0415
    from mfa_pipeline.cli.embedded_redis import EmbeddedRedis  # noqa: PLC0415

    try:
        settings = with_dev_keys(_settings())
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    _refuse_busy_port(host, port, "--port")
    if demo:
        _refuse_busy_port(host, demo_port, "--demo-port")
    env = dict(os.environ)
    # Every process of this run sums into one metrics directory, emptied for the new run.
    env[prometheus_dir.ENV] = str(
        prometheus_dir.prepare(_metrics_dir(settings), keep_live=prometheus_dir.ENV in os.environ)
    )
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        embedded.start()
        env["MFA_REDIS_URL"] = embedded.url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    me = [sys.executable, "-m", "mfa_pipeline.cli"]
    roles: list[Sequence[str]] = [
        [*me, "api", "--host", host, "--port", str(port)],
        [*me, "worker", "--queues", ALL_QUEUES, "--concurrency", str(concurrency), "--quiet"],
        [*me, "beat", "--quiet"],
    ]
    if demo:  # the reference login app, a client of the API like any login backend
        from mfa_pipeline.demo import launch  # noqa: PLC0415

        application, _, key = settings.api_keys[0].partition(":")  # the dev key if generated
        env[launch.API_KEY_ENV] = key
        # Its users see the demo firm's name in their authenticator app, unless told otherwise.
        env.setdefault("MFA_TOTP_ISSUERS", f"{application}:{launch.TOTP_ISSUER}")
        api_url = f"http://{host}:{port}"
        roles.append(launch.command(sys.executable, host=host, port=demo_port, api_url=api_url))
    stopping = _stop_signal()
    children = [subprocess.Popen(role, env=env) for role in roles]  # noqa: S603
    try:
        # The banner (and the API key in it) comes last, not under the workers' start-up lines.
        if _wait_until_up(children, stopping, (host, port), env["MFA_REDIS_URL"], settings):
            _banner(settings, host, port, embedded.url if embedded else None)
            if demo:
                click.echo("\n".join([*launch.banner(f"http://{host}:{demo_port}"), ""]))
        stopped_by_signal = _supervise(children, stopping)
    finally:
        if embedded is not None:
            embedded.stop()
    if not stopped_by_signal:
        raise SystemExit(1)  # a role died on its own


def _metrics_dir(settings: Settings) -> Path:
    given = os.environ.get(prometheus_dir.ENV)
    return Path(given) if given else prometheus_dir.default_dir(settings.data_dir)


def _share_metrics(settings: Settings) -> None:
    """Point prometheus-client at the deployment's metrics directory before it is imported.

    Given (by `up`, or by the operator): used as it is. Not given: the data dir's, with the
    files of processes that no longer run removed, so a sibling role keeps its counts.
    """
    if prometheus_dir.ENV in os.environ:
        Path(os.environ[prometheus_dir.ENV]).mkdir(parents=True, exist_ok=True)
        return
    directory = prometheus_dir.prepare(
        prometheus_dir.default_dir(settings.data_dir), keep_live=True
    )
    os.environ[prometheus_dir.ENV] = str(directory)


def _banner(settings: Settings, host: str, port: int, embedded_url: str | None) -> None:
    key = dev_api_key(settings)
    lines = [
        "",
        "mfa-pipeline is up",
        f"  API        http://{host}:{port}  (OpenAPI at /docs and /openapi.json)",
    ]
    if key:
        lines += [
            f"  API key    {key}",
            f"             application '{DEV_APPLICATION}', saved in {dev_api_key_path(settings)}",
            "             (set MFA_API_KEYS to choose your own)",
        ]
    lines += [
        f"  Redis      {'embedded at ' + embedded_url if embedded_url else 'MFA_REDIS_URL'}",
        "  Database   "
        + (f"SQLite in {settings.data_dir}" if not settings.database_url else "MFA_DATABASE_URL"),
        f"  SMS        {settings.sms_provider.value}"
        + (": read them with `mfa-pipeline outbox`" if settings.sms_provider == "outbox" else ""),
        "  Stop with Ctrl-C.",
        "",
    ]
    click.echo("\n".join(lines))


def _refuse_busy_port(host: str, port: int, option: str) -> None:
    """Say at once that a port is taken, before anything starts.

    Otherwise uvicorn says it later, in one line among the workers' start-up lines, and `up`
    waits for the other roles to stop before it exits.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): another program "
                f"uses it; stop it or choose another port with {option}"
            ) from None


def _wait_until_up(
    children: list[subprocess.Popen[bytes]],
    stopping: threading.Event,
    api: tuple[str, int],
    redis_url: str,
    settings: Settings,
) -> bool:
    """Until the API answers and a worker answers a ping; False if a role died or we stop."""
    from mfa_pipeline.adapters.celery_app import create_producer  # noqa: PLC0415

    celery = create_producer(settings.model_copy(update={"redis_url": redis_url}))
    deadline = time.monotonic() + UP_WAIT_SECONDS
    api_up = workers_up = False
    try:
        while time.monotonic() < deadline:
            if stopping.is_set() or any(child.poll() is not None for child in children):
                return False
            if not api_up:
                api_up = _answers(*api)
            if not workers_up:
                with contextlib.suppress(Exception):  # the broker may still be connecting
                    workers_up = bool(celery.control.ping(timeout=0.5))
            if api_up and workers_up:
                return True
            time.sleep(0.2)
    finally:
        celery.close()
    click.echo(f"mfa-pipeline: not all roles answered within {UP_WAIT_SECONDS} s", err=True)
    return True


def _answers(host: str, port: int) -> bool:
    """`/healthz` answers 200 (plain http.client: no client library logging each probe)."""
    connection = http.client.HTTPConnection(host, port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == http.HTTPStatus.OK
    except OSError:
        return False
    finally:
        connection.close()


def _stop_signal() -> threading.Event:
    """Set by SIGTERM/SIGINT, from the first child started: every role is then stopped warmly."""
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return stopping


def _supervise(children: list[subprocess.Popen[bytes]], stopping: threading.Event) -> bool:
    """Wait for SIGTERM/SIGINT or a dead child; stop all warmly. True when a signal stopped us."""
    while not stopping.is_set() and all(child.poll() is None for child in children):
        stopping.wait(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # Celery's warm shutdown: running tasks finish
    deadline = time.monotonic() + 30
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return stopping.is_set()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=PORT)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn processes.")
def api(host: str, port: int, workers: int) -> None:
    """Run the HTTP API."""
    import uvicorn  # noqa: PLC0415

    settings = _settings()
    with_dev_keys(settings)  # keys it cannot start with: said here, in one line
    _warn_unless_migrated(settings)
    _share_metrics(settings)
    uvicorn.run(
        "mfa_pipeline.api.main:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=settings.log_level.upper() == "DEBUG",
        proxy_headers=True,
    )


def _warn_unless_migrated(settings: Settings) -> None:
    """A database behind the package's schema answers 503 to every call: say why, once."""
    import sqlalchemy.exc  # noqa: PLC0415

    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)  # a look at the revision, not a migration: no chatter
    try:
        from mfa_pipeline.adapters.sql_migrations import current_revision, head_revision  # noqa: PLC0415

        current, head = current_revision(settings.effective_database_url), head_revision()
    except sqlalchemy.exc.SQLAlchemyError:
        return  # not reachable now: /readyz and the 503s say so, and it may come back
    finally:
        alembic_log.setLevel(level)
    if current != head:
        structlog.get_logger(__name__).warning(
            "database_not_migrated",
            revision=current or "none",
            expected=head,
            fix="run `mfa-pipeline db upgrade` (every call needing the database answers 503)",
        )


def _trace_pool_process(**_: object) -> None:
    configure_tracing("mfa-worker")


@main.command()
@click.option("--queues", default=ALL_QUEUES, show_default=True, help="Comma list of queues.")
@click.option(
    "--concurrency",
    default=WORKER_CONCURRENCY,
    show_default=True,
    type=int,
    help="Tasks in flight: threads, or processes with --pool prefork.",
)
@click.option(
    "--pool",
    default=WORKER_POOL,
    show_default=True,
    type=click.Choice(["threads", "prefork", "solo"]),
    help="threads: sends wait on providers in parallel in one process.",
)
@click.option("--quiet", is_flag=True, help="No start-up banner (as under `up`).")
def worker(queues: str, concurrency: int, pool: str, quiet: bool) -> None:
    """Run a Celery worker for some queues (one role of a scaled deployment)."""
    from celery import signals  # noqa: PLC0415

    unknown = {q.strip() for q in queues.split(",")} - set(QUEUES)
    if unknown:
        raise click.BadParameter(
            f"unknown queue(s): {', '.join(sorted(unknown))}", param_hint="--queues"
        )
    settings = _settings()
    _share_metrics(settings)
    # Only now: the tasks import the metrics, and prometheus-client picks its store on import.
    from workers.app import create_celery_app  # noqa: PLC0415 - only the worker needs tasks

    if pool == "prefork":
        # Each pool process traces for itself: a span exporter's thread does not survive
        # the fork. Its container is built later, on its first task, already traced.
        signals.worker_process_init.connect(_trace_pool_process, weak=False)
    else:
        configure_tracing("mfa-worker")  # threads or solo: tasks run in this process
    app = create_celery_app(settings)
    name = f"mfa-{queues.replace(',', '-')}@%h"
    app.worker_main(
        [
            *(["--quiet"] if quiet else []),
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--hostname",
            name,
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@main.command()
@click.option("--quiet", is_flag=True, help="No start-up banner (as under `up`).")
def beat(quiet: bool) -> None:
    """Run the scheduler (expiry sweeps). Run exactly one per deployment."""
    from workers.app import create_celery_app  # noqa: PLC0415

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_celery_app(settings).start(
        [*(["--quiet"] if quiet else []), "beat", "--loglevel", "INFO"]
    )


@main.command()
@click.option("--to", "to", default=None, help="Only messages to this number.")
@click.option("--channel", type=click.Choice(["sms", "push"]), default=None)
@click.option("--limit", default=20, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def outbox(to: str | None, channel: str | None, limit: int, as_json: bool) -> None:
    """Show the messages the outbox providers recorded (development)."""
    from mfa_pipeline.adapters.outbox import OutboxReader  # noqa: PLC0415

    settings = load_settings()
    messages = OutboxReader(settings.outbox_path).messages(channel=channel, to=to, limit=limit)
    if not messages:
        click.echo(f"The outbox is empty ({settings.outbox_path}).", err=True)
    for message in messages:
        if as_json:
            click.echo(json.dumps(message))
        else:
            click.echo(
                f"{message.get('created_at', '')}  {message.get('channel', '')}  "
                f"to {message.get('to', '')}: {message.get('body', message.get('data', ''))}"
            )


@main.group()
def db() -> None:
    """The enrollment database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (Alembic) to MFA_DATABASE_URL."""
    from mfa_pipeline.adapters.sql_migrations import upgrade  # noqa: PLC0415

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    click.echo("database schema is up to date")


@main.group()
def admin() -> None:
    """Operator commands on users' MFA and on the encryption keys."""


def _admin_service() -> AdminService:
    from mfa_pipeline.bootstrap import build_admin  # noqa: PLC0415

    try:
        return build_admin(_settings())
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@admin.command("reset-user")
@click.argument("user_id")
@click.option("--actor", required=True, help="Who asked for the reset (kept in the audit log).")
def admin_reset_user(user_id: str, actor: str) -> None:
    """Remove a user's factors, backup codes and trusted sessions (a lost device)."""
    from mfa_pipeline.domain.challenges import RequestContext  # noqa: PLC0415
    from mfa_pipeline.domain.errors import MfaError  # noqa: PLC0415

    try:
        result = _admin_service().reset_user(
            user_id=user_id,
            actor_id=actor,
            context=RequestContext(application="cli"),
            same_firm_only=False,
        )
    except MfaError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(
        f"reset {user_id}: {result.factors_removed} factor(s) removed, "
        f"{result.backup_codes_removed} backup code(s) removed, "
        f"{result.trusted_sessions_revoked} trusted session(s) revoked"
    )


@admin.command("show-user")
@click.argument("user_id")
@click.option("--events", default=10, show_default=True, type=int, help="Audit events shown.")
def admin_show_user(user_id: str, events: int) -> None:
    """A user's factors (no secrets, masked numbers), backup codes, sessions, recent events."""
    from mfa_pipeline.api.schemas import iso  # noqa: PLC0415
    from mfa_pipeline.domain.errors import MfaError  # noqa: PLC0415
    from mfa_pipeline.domain.factors import masked_phone  # noqa: PLC0415

    try:
        report = _admin_service().show_user(user_id=user_id, events=events)
    except MfaError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"user {report.user.user_id}  firm {report.user.firm_id or '-'}")
    click.echo(f"factors ({len(report.factors)}):")
    for f in report.factors:
        phone = f"  {masked_phone(f.phone_last2)}" if f.phone_last2 else ""
        click.echo(f"  {f.factor_id}  {f.type.value:<5} {f.status.value:<8}{phone}")
    click.echo(f"backup codes remaining: {report.backup_codes_remaining}")
    click.echo(f"trusted sessions: {report.trusted_sessions}")
    click.echo("recent events:")
    for e in report.recent_events:
        click.echo(
            f"  {iso(e.created_at)}  {e.event:<20} {e.outcome or '-':<12} "
            f"app={e.application or '-'} actor={e.actor_id or '-'}"
        )


@admin.command("rotate-keys")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
def admin_rotate_keys(batch_size: int) -> None:
    """Re-encrypt every stored secret under the first MFA_ENCRYPTION_KEYS key (resumable)."""
    from mfa_pipeline.ports import SecretDecryptError  # noqa: PLC0415

    def progress(p: RotationProgress) -> None:
        click.echo(f"scanned {p.scanned}, re-encrypted {p.rewritten}, already current {p.skipped}")

    try:
        done = _admin_service().rotate_keys(batch_size=batch_size, progress=progress)
    except SecretDecryptError as exc:
        raise click.ClickException(
            f"{exc}; keep every old key in MFA_ENCRYPTION_KEYS until rotation finishes"
        ) from exc
    click.echo(
        f"done: {done.rewritten} secret row(s) re-encrypted, {done.skipped} already current, "
        f"in {done.elapsed_seconds:.1f} s"
    )


main.add_command(device)
