"""`mfa-pipeline`: run the whole service on one machine, or one role of a scaled deployment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mfa_pipeline.adapters import prometheus_dir
from mfa_pipeline.adapters.celery_app import QUEUES
from mfa_pipeline.cli.device_commands import device
from mfa_pipeline.config import (
    ConfigurationError,
    Settings,
    dev_api_key,
    load_settings,
    with_dev_keys,
)
from mfa_pipeline.logs import configure_logging

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mfa_pipeline.services.admin import AdminService, RotationProgress

ALL_QUEUES = ",".join(QUEUES)


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, env=settings.env.value)
    return settings


@click.group()
def main() -> None:
    """Multi-factor authentication as an event-driven pipeline."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--concurrency", default=2, show_default=True, type=int, help="Worker processes.")
@click.option("--demo", is_flag=True, help="Also serve the reference login web app.")
@click.option("--demo-port", default=8001, show_default=True, type=int)
def up(host: str, port: int, concurrency: int, demo: bool, demo_port: int) -> None:
    """Run everything here: embedded Redis (unless MFA_REDIS_URL), SQLite, API, workers, beat."""
    from mfa_pipeline.adapters.sql_migrations import upgrade  # noqa: PLC0415
    from mfa_pipeline.cli.embedded_redis import EmbeddedRedis  # noqa: PLC0415

    try:
        settings = with_dev_keys(_settings())
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
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
        [*me, "worker", "--queues", ALL_QUEUES, "--concurrency", str(concurrency)],
        [*me, "beat"],
    ]
    if demo:  # the reference login app, a client of the API like any login backend
        from mfa_pipeline.demo import launch  # noqa: PLC0415

        key = dev_api_key(settings) or settings.api_keys[0].partition(":")[2]
        env[launch.API_KEY_ENV] = key
        api_url = f"http://{host}:{port}"
        roles.append(launch.command(sys.executable, host=host, port=demo_port, api_url=api_url))
    children = [subprocess.Popen(role, env=env) for role in roles]  # noqa: S603
    _banner(settings, host, port, embedded.url if embedded else None)
    if demo:
        click.echo("\n".join([*launch.banner(f"http://{host}:{demo_port}"), ""]))
    try:
        stopped_by_signal = _supervise(children)
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
        "mfa-pipeline is starting",
        f"  API        http://{host}:{port}  (OpenAPI at /docs and /openapi.json)",
    ]
    if key:
        lines.append(f"  API key    {key}  (application 'dev'; set MFA_API_KEYS to choose)")
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


def _supervise(children: list[subprocess.Popen[bytes]]) -> bool:
    """Wait for SIGTERM/SIGINT or a dead child; stop all warmly. True when a signal stopped us."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
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
    return stopping


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn processes.")
def api(host: str, port: int, workers: int) -> None:
    """Run the HTTP API."""
    import uvicorn  # noqa: PLC0415

    settings = _settings()
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


@main.command()
@click.option("--queues", default=ALL_QUEUES, show_default=True, help="Comma list of queues.")
@click.option("--concurrency", default=2, show_default=True, type=int)
@click.option("--pool", default="prefork", show_default=True)
def worker(queues: str, concurrency: int, pool: str) -> None:
    """Run a Celery worker for some queues (one role of a scaled deployment)."""
    from workers.app import create_celery_app  # noqa: PLC0415 - only the worker needs tasks

    unknown = {q.strip() for q in queues.split(",")} - set(QUEUES)
    if unknown:
        raise click.BadParameter(
            f"unknown queue(s): {', '.join(sorted(unknown))}", param_hint="--queues"
        )
    settings = _settings()
    _share_metrics(settings)
    app = create_celery_app(settings)
    name = f"mfa-{queues.replace(',', '-')}@%h"
    app.worker_main(
        [
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
def beat() -> None:
    """Run the scheduler (expiry sweeps). Run exactly one per deployment."""
    from workers.app import create_celery_app  # noqa: PLC0415

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_celery_app(settings).start(["beat", "--loglevel", "INFO"])


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
    from mfa_pipeline.adapters.crypto import SecretDecryptError  # noqa: PLC0415

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
