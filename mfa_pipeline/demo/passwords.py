"""The toy password store: argon2id hashes in memory, a demo user and a demo administrator.

A real product has its own user database; this one exists so the example can show the first
factor next to the second. Unknown names cost one argon2 check too, so timing does not tell
which user names exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Lighter than the backup codes' setting: a demo starts fast and logs in many times in tests.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    display_name: str
    firm_id: str
    is_admin: bool = False


class PasswordStore:
    def __init__(self) -> None:
        self._accounts: dict[str, tuple[DemoAccount, str]] = {}
        self._dummy = _HASHER.hash("an unknown user's password")

    def add(self, account: DemoAccount, password: str) -> None:
        self._accounts[account.username] = (account, _HASHER.hash(password))

    def accounts(self) -> list[DemoAccount]:
        return [account for account, _ in self._accounts.values()]

    def get(self, username: str) -> DemoAccount | None:
        found = self._accounts.get(username)
        return found[0] if found else None

    def check(self, username: str, password: str) -> DemoAccount | None:
        """The account when the password is right, else None (same cost for unknown names)."""
        account, stored = self._accounts.get(username, (None, self._dummy))
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return account


DEMO_FIRM = "demo-firm"
DEMO_USER = DemoAccount("demo", "Dana Demo", DEMO_FIRM)
DEMO_ADMIN = DemoAccount("admin", "Ada Admin", DEMO_FIRM, is_admin=True)
DEMO_PASSWORDS = {DEMO_USER.username: "demo-password", DEMO_ADMIN.username: "admin-password"}


def demo_store() -> PasswordStore:
    store = PasswordStore()
    for account in (DEMO_USER, DEMO_ADMIN):
        store.add(account, DEMO_PASSWORDS[account.username])
    return store
