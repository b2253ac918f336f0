"""The reference login web app: a password login, then the service's second step.

A small FastAPI + Jinja application with its own toy password store, standing where a real
product's login backend stands: it talks to the MFA service only over HTTP, through
`mfa_pipeline.client`. `mfa-pipeline up --demo` starts it next to the service; its source is
the example to read (see examples/login_app/README.md).
"""

from mfa_pipeline.demo.app import DemoConfig, create_app
from mfa_pipeline.demo.passwords import DemoAccount, PasswordStore

__all__ = ["DemoAccount", "DemoConfig", "PasswordStore", "create_app"]
