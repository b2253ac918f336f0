"""How `mfa-pipeline up --demo` starts the demo app, and what it prints about it.

Kept here rather than in the CLI so that the demo's accounts and start-up live in one package.
"""

from __future__ import annotations

from mfa_pipeline.demo.passwords import DEMO_ADMIN, DEMO_PASSWORDS, DEMO_USER

API_KEY_ENV = "MFA_DEMO_API_KEY"
# The issuer an authenticator app shows for the demo's accounts (`MFA_TOTP_ISSUERS`).
TOTP_ISSUER = "Demo Firm"


def command(python: str, *, host: str, port: int, api_url: str) -> list[str]:
    return [
        python,
        "-m",
        "mfa_pipeline.demo",
        "--host",
        host,
        "--port",
        str(port),
        "--api-url",
        api_url,
    ]


def banner(url: str) -> list[str]:
    return [
        f"  Demo app   {url}  (the reference login app: open it in a browser)",
        f"             user   {DEMO_USER.username} / {DEMO_PASSWORDS[DEMO_USER.username]}",
        f"             admin  {DEMO_ADMIN.username} / {DEMO_PASSWORDS[DEMO_ADMIN.username]}",
    ]
