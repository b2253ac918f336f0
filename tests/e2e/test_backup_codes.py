"""Backup codes over real HTTP: generation, download, login, single use, replacement, storage."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

import httpx
import pytest
import sqlalchemy as sa

from mfa_pipeline.domain.backup_codes import ALPHABET, BITS_PER_CODE
from tests.e2e.test_login_flows import create_user, enroll_totp
from tests.fixtures.pipeline import MANAGE_KEY

if TYPE_CHECKING:
    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.config import Settings
    from tests.doubles.clock import FrozenClock
    from tests.fixtures.pipeline import ApiServer

pytestmark = pytest.mark.usefixtures("worker")

CODE_SHAPE = re.compile(rf"^[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")


def new_codes(api: httpx.Client, user_id: str) -> list[str]:
    answer = api.post(f"/v1/users/{user_id}/backup-codes")
    assert answer.status_code == 201, answer.text
    codes = answer.json()["codes"]
    assert isinstance(codes, list)
    return [str(c) for c in codes]


def login_with(api: httpx.Client, user_id: str, code: str) -> httpx.Response:
    return api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "backup_code", "code": code}
    )


def remaining(api: httpx.Client, user_id: str) -> int:
    return int(api.get(f"/v1/users/{user_id}").json()["backup_codes_remaining"])


def test_a_new_set_is_ten_unique_paper_friendly_codes_of_40_bits(api: httpx.Client) -> None:
    user_id = create_user(api)
    answer = api.post(f"/v1/users/{user_id}/backup-codes")
    assert answer.status_code == 201
    body = answer.json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["generated_at"])
    codes = body["codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(CODE_SHAPE.match(c) for c in codes)
    assert not set("ilou") & set(ALPHABET)
    assert BITS_PER_CODE >= 40
    assert remaining(api, user_id) == 10


def test_the_set_downloads_as_a_text_file_with_one_code_per_line(api: httpx.Client) -> None:
    user_id = create_user(api)
    answer = api.post(f"/v1/users/{user_id}/backup-codes", headers={"Accept": "text/plain"})
    assert answer.status_code == 201
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["content-disposition"].startswith("attachment;")
    assert "backup-codes.txt" in answer.headers["content-disposition"]
    codes = [line for line in answer.text.splitlines() if CODE_SHAPE.match(line)]
    assert len(set(codes)) == 10
    assert "once" in answer.text  # the short instructions
    assert login_with(api, user_id, codes[0]).json()["status"] == "verified"


def test_a_code_logs_in_with_or_without_the_dash_and_in_any_case(api: httpx.Client) -> None:
    user_id = create_user(api)
    codes = new_codes(api, user_id)
    for typed in (codes[0], codes[1].replace("-", ""), codes[2].upper(), f" {codes[3]} "):
        answer = login_with(api, user_id, typed)
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "verified"
        assert answer.json()["factor"] == "backup_code"
    assert remaining(api, user_id) == 6
    assert answer.json()["backup_codes_remaining"] == 6
    assert answer.json()["warning"] is None


def test_a_backup_code_challenge_can_be_verified_in_a_second_call(api: httpx.Client) -> None:
    user_id = create_user(api)
    codes = new_codes(api, user_id)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "backup_code"})
    assert created.status_code == 201
    assert created.json()["status"] == "pending"
    challenge_id = created.json()["challenge_id"]
    verified = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": codes[5]})
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "verified"
    assert verified.json()["backup_codes_remaining"] == 9


def test_a_code_of_the_wrong_shape_is_refused_without_using_an_attempt(
    api: httpx.Client,
) -> None:
    user_id = create_user(api)
    new_codes(api, user_id)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "backup_code"})
    challenge_id = created.json()["challenge_id"]
    for typed in ("abcd-efg", "abcd-efgu", "123456", "abcd-ef\u0662h"):
        answer = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": typed})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalid_code"
    assert api.get(f"/v1/challenges/{challenge_id}").json()["attempts_remaining"] == 5


def test_a_used_code_is_refused_the_second_time_and_costs_an_attempt(api: httpx.Client) -> None:
    user_id = create_user(api)
    code = new_codes(api, user_id)[0]
    assert login_with(api, user_id, code).status_code == 201
    again = login_with(api, user_id, code)
    assert again.status_code == 400
    error = again.json()["error"]
    assert error["code"] == "invalid_code"
    assert error["reason"] == "used"
    assert error["attempts_remaining"] == 4
    assert code not in again.text


def test_two_concurrent_logins_with_one_code_let_exactly_one_in(
    api_server: ApiServer, api: httpx.Client
) -> None:
    user_id = create_user(api)
    code = new_codes(api, user_id)[0]
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def login() -> None:
        with httpx.Client(
            base_url=api_server.url, headers={"Authorization": f"Bearer {MANAGE_KEY}"}, timeout=30
        ) as client:
            barrier.wait()
            answer = login_with(client, user_id, code)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=login) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [400] * 7
    refused = [a.json()["error"] for a in answers if a.status_code == 400]
    assert all(e["code"] == "invalid_code" and e["reason"] == "used" for e in refused)
    assert remaining(api, user_id) == 9


def test_a_new_set_replaces_the_old_one(api: httpx.Client) -> None:
    user_id = create_user(api)
    old = new_codes(api, user_id)
    new = new_codes(api, user_id)
    refused = login_with(api, user_id, old[0])
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_code"
    assert login_with(api, user_id, new[0]).status_code == 201
    assert remaining(api, user_id) == 9


def test_two_or_fewer_codes_left_add_a_warning_and_an_audit_event(
    api: httpx.Client, container: Container
) -> None:
    user_id = create_user(api)
    codes = new_codes(api, user_id)
    for code in codes[:7]:
        answer = login_with(api, user_id, code)
        assert answer.json()["warning"] is None
    low = login_with(api, user_id, codes[7])
    assert low.status_code == 201
    assert low.json()["warning"] == "backup_codes_low"
    assert low.json()["backup_codes_remaining"] == 2
    events = [e.event for e in container.ports.audit_log.for_user(user_id)]
    assert events.count("backup_codes_low") == 1
    assert events.count("backup_code_used") == 8
    assert events[-1] == "backup_codes_generated"


def test_only_argon2id_hashes_are_stored(api: httpx.Client, settings: Settings) -> None:
    user_id = create_user(api)
    codes = new_codes(api, user_id)
    engine = sa.create_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT * FROM backup_codes WHERE user_id = :u"), {"u": user_id}
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 10
    dump = repr(rows).lower()
    for code in codes:
        assert code not in dump
        assert code.replace("-", "") not in dump
    hashes = [row._mapping["code_hash"] for row in rows]
    assert all(h.startswith("$argon2id$v=19$m=7168,t=5,p=1$") for h in hashes)
    assert len(set(hashes)) == 10


def test_auto_never_picks_backup_codes_and_preauth_lists_them(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    new_codes(api, user_id)
    only_codes = api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"})
    assert only_codes.status_code == 409
    assert only_codes.json()["error"]["code"] == "factor_not_enrolled"
    enroll_totp(api, clock, user_id)
    assert api.post("/v1/challenges", json={"user_id": user_id}).json()["factor"] == "totp"
    preauth = api.post("/v1/preauth", json={"user_id": user_id}).json()
    assert preauth["result"] == "auth"
    assert [f["type"] for f in preauth["factors"]] == ["totp", "backup_code"]


def test_a_user_without_codes_cannot_start_a_backup_code_challenge(api: httpx.Client) -> None:
    user_id = create_user(api)
    answer = login_with(api, user_id, "abcd-2345")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "factor_not_enrolled"
    assert api.post("/v1/users/nobody-here/backup-codes").status_code == 404
