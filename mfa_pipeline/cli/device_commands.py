"""`mfa-pipeline device ...`: the device simulator from the command line (development).

    mfa-pipeline device register alice          # a key pair, registered as alice's phone
    mfa-pipeline device pushes                  # what the outbox delivered to it
    mfa-pipeline device approve --number 42     # answer the newest push, signed
    mfa-pipeline device deny --not-me           # or deny it, reporting fraud

State lives in `<data dir>/device.json` (or `--state`). The API is reached at `--api`
(default http://127.0.0.1:8000) with the key of `MFA_API_KEYS` or the generated dev key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx

from mfa_pipeline.cli.device import SimulatedDevice
from mfa_pipeline.config import dev_api_key, load_settings, with_dev_keys

_API = click.option("--api", default="http://127.0.0.1:8000", show_default=True)
_STATE = click.option(
    "--state", type=click.Path(path_type=Path), default=None, help="Device state file."
)


def _state_path(state: Path | None) -> Path:
    return state or load_settings().data_dir / "device.json"


def _load(state: Path | None) -> SimulatedDevice:
    path = _state_path(state)
    if not path.exists():
        raise click.ClickException(f"No simulated device yet ({path}): run `device register`.")
    return SimulatedDevice.load(path)


def _client(api: str) -> httpx.Client:
    settings = with_dev_keys(load_settings())
    configured = [entry.partition(":")[2] for entry in settings.api_keys]
    key = dev_api_key(settings) or next(iter(configured), None)
    if not key:
        raise click.ClickException("No API key: set MFA_API_KEYS.")
    return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=10)


class _DeviceCommands(click.Group):
    """An API that cannot be reached is one line, not a transport library's traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except httpx.TransportError as exc:
            try:
                where = str(exc.request.url.copy_with(path="", query=None))
            except RuntimeError:  # httpx raised before it had a request
                where = "--api"
            raise click.ClickException(
                f"cannot reach the API at {where} ({type(exc).__name__}): is it running there? "
                "--api names another address"
            ) from None


@click.group(cls=_DeviceCommands)
def device() -> None:
    """A simulated phone: register it, read its pushes, approve or deny them."""


@device.command("register")
@click.argument("user_id")
@click.option("--name", default="Simulated phone", show_default=True)
@_API
@_STATE
def register(user_id: str, name: str, api: str, state: Path | None) -> None:
    """Generate a key pair and register this device as USER_ID's phone."""
    simulated = SimulatedDevice.generate(name)
    with _client(api) as client:
        try:
            simulated.register(client, user_id)
        except httpx.HTTPStatusError as exc:
            raise click.ClickException(exc.response.text) from None
    simulated.save(_state_path(state))
    click.echo(f"Registered device {simulated.device_id} for {user_id}.")


@device.command("pushes")
@_STATE
def pushes(state: Path | None) -> None:
    """The pushes delivered to this device through the outbox provider, oldest first."""
    simulated = _load(state)
    found = simulated.pushes(load_settings().outbox_path)
    if not found:
        click.echo("No pushes yet.", err=True)
    for data in found:
        click.echo(
            f"{data.get('challenge_id')}  numbers {data.get('number_choices')}  "
            f"{data.get('application')} from {data.get('ip')} ({data.get('user_agent')}), "
            f"expires {data.get('expires_at')}"
        )


def _expires(push: dict[str, object]) -> datetime:
    try:
        return datetime.fromisoformat(str(push.get("expires_at")))
    except ValueError:  # not said: ask the service
        return datetime.max.replace(tzinfo=UTC)


def _newest_pending(simulated: SimulatedDevice, api: str) -> str:
    """The newest push still waiting for an answer.

    An answered one would only be refused (409), and a "not me" sent to it would still block
    the user's pushes for 15 minutes.
    """
    now = datetime.now(UTC)
    unexpired = [
        str(data["challenge_id"])
        for data in simulated.pushes(load_settings().outbox_path)
        if _expires(data) > now
    ]
    with _client(api) as client:
        for challenge_id in reversed(unexpired):
            status = client.get(f"/v1/challenges/{challenge_id}")
            if status.status_code == httpx.codes.NOT_FOUND:  # gone from the store: long expired
                continue
            if status.status_code != httpx.codes.OK:  # a wrong key, a service in trouble
                raise click.ClickException(f"{status.status_code} {status.text}")
            if status.json().get("status") == "pending":
                return challenge_id
    raise click.ClickException(
        "No pending push to answer (the others are answered or expired); name one with --challenge."
    )


def _answer(state: Path | None, api: str, challenge_id: str | None, **kwargs: object) -> None:
    simulated = _load(state)
    if challenge_id is None:
        challenge_id = _newest_pending(simulated, api)
    body = simulated.answer(challenge_id, **kwargs)  # type: ignore[arg-type]
    with httpx.Client(base_url=api, timeout=10) as client:  # the device needs no API key
        answer = client.post("/v1/push/responses", json=body)
    click.echo(json.dumps(answer.json()))
    if answer.status_code != 200:  # noqa: PLR2004
        raise SystemExit(1)


@device.command("approve")
@click.option("--challenge", "challenge_id", default=None, help="Default: the newest pending push.")
@click.option("--number", required=True, help="The number the login page shows.")
@_API
@_STATE
def approve(challenge_id: str | None, number: str, api: str, state: Path | None) -> None:
    """Approve a push, picking the number the login page shows."""
    _answer(state, api, challenge_id, decision="approve", number=number)


@device.command("deny")
@click.option("--challenge", "challenge_id", default=None, help="Default: the newest pending push.")
@click.option("--not-me", is_flag=True, help="Report the login as not yours (blocks pushes).")
@_API
@_STATE
def deny(challenge_id: str | None, not_me: bool, api: str, state: Path | None) -> None:
    """Deny a push; with --not-me, report it as fraud."""
    _answer(state, api, challenge_id, decision="deny", reason="not_me" if not_me else None)
