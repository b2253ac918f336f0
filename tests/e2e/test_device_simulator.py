"""`mfa-pipeline device`: register, read the push in the outbox, approve it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from mfa_pipeline.cli import main
from tests.fixtures.pipeline import MANAGE_KEY, new_user_id, wait_until

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.config import Settings
    from tests.fixtures.pipeline import ApiServer

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"push_provider": "outbox"}


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MFA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MFA_API_KEYS", f"manage:{MANAGE_KEY}")
    return CliRunner()


def user_with_device(api: httpx.Client, api_server: ApiServer, cli: CliRunner) -> str:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    registered = cli.invoke(main, ["device", "register", user_id, "--api", api_server.url])
    assert registered.exit_code == 0, registered.output
    return user_id


def pushed(api: httpx.Client, cli: CliRunner, user_id: str) -> dict[str, Any]:
    """A push challenge for the user, once it reached the simulated device."""
    challenge: dict[str, Any] = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "push"}
    ).json()
    wait_until(lambda: challenge["challenge_id"] in cli.invoke(main, ["device", "pushes"]).output)
    return challenge


def test_a_push_login_with_the_simulated_device(
    api: httpx.Client, api_server: ApiServer, cli: CliRunner
) -> None:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    registered = cli.invoke(main, ["device", "register", user_id, "--api", api_server.url])
    assert registered.exit_code == 0, registered.output
    challenge = api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"}).json()
    assert challenge["factor"] == "push"

    def pushed() -> str | None:
        listed = cli.invoke(main, ["device", "pushes"])
        return listed.output if challenge["challenge_id"] in listed.output else None

    listing = wait_until(pushed)
    assert challenge["number_match"] in listing
    approved = cli.invoke(
        main, ["device", "approve", "--number", challenge["number_match"], "--api", api_server.url]
    )
    assert approved.exit_code == 0, approved.output
    assert '"approved"' in approved.output
    status = api.get(f"/v1/challenges/{challenge['challenge_id']}").json()["status"]
    assert status == "approved"


def test_a_second_answer_from_the_simulator_fails_clearly(
    api: httpx.Client, api_server: ApiServer, cli: CliRunner
) -> None:
    challenge = pushed(api, cli, user_with_device(api, api_server, cli))
    first = cli.invoke(main, ["device", "deny", "--not-me", "--api", api_server.url])
    assert '"denied"' in first.output
    again = cli.invoke(
        main,
        ["device", "deny", "--challenge", challenge["challenge_id"], "--api", api_server.url],
    )
    assert again.exit_code == 1
    assert "challenge_completed" in again.output


def test_deny_not_me_picks_the_newest_pending_push_not_a_newer_answered_one(
    api: httpx.Client, api_server: ApiServer, cli: CliRunner
) -> None:
    user_id = user_with_device(api, api_server, cli)
    waiting = pushed(api, cli, user_id)
    newer = pushed(api, cli, user_id)
    approve = ["device", "approve", "--challenge", newer["challenge_id"], "--api", api_server.url]
    approved = cli.invoke(main, [*approve, "--number", newer["number_match"]])
    assert approved.exit_code == 0, approved.output

    denied = cli.invoke(main, ["device", "deny", "--not-me", "--api", api_server.url])

    assert denied.exit_code == 0, denied.output
    assert api.get(f"/v1/challenges/{waiting['challenge_id']}").json()["status"] == "denied"
    assert api.get(f"/v1/challenges/{newer['challenge_id']}").json()["status"] == "approved"


def test_with_no_pending_push_deny_not_me_says_so_and_blocks_nothing(
    api: httpx.Client, api_server: ApiServer, cli: CliRunner
) -> None:
    user_id = user_with_device(api, api_server, cli)
    pushed(api, cli, user_id)
    assert cli.invoke(main, ["device", "deny", "--api", api_server.url]).exit_code == 0

    refused = cli.invoke(main, ["device", "deny", "--not-me", "--api", api_server.url])

    assert refused.exit_code == 1
    said = (
        "Error: No pending push to answer (the others are answered or expired); "
        "name one with --challenge."
    )
    assert refused.stderr.strip().splitlines() == [said]
    events = [e["event"] for e in api.get(f"/v1/users/{user_id}/audit").json()["events"]]
    assert "fraud_reported" not in events
    again = api.post("/v1/challenges", json={"user_id": user_id, "factor": "push"})
    assert again.status_code == 201  # pushes are not blocked


def test_picking_the_pending_push_with_a_wrong_api_key_says_so_and_answers_nothing(
    api: httpx.Client, api_server: ApiServer, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    challenge = pushed(api, cli, user_with_device(api, api_server, cli))
    monkeypatch.setenv("MFA_API_KEYS", "manage:not-the-key")

    refused = cli.invoke(main, ["device", "deny", "--not-me", "--api", api_server.url])

    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: 401 ")
    assert "unauthenticated" in refused.stderr
    assert api.get(f"/v1/challenges/{challenge['challenge_id']}").json()["status"] == "pending"
