"""Browser tests of the demo login app: Playwright driving Debian's headless Chromium.

The whole stack is real and on loopback: the API server, Redis, a Celery worker delivering SMS
and pushes to the outbox, and the demo app served by uvicorn, talking to the API over HTTP.
Playwright never downloads a browser here: it launches `/usr/bin/chromium` (`scripts/test`
installs Debian's package as root when it is missing), and without it these tests skip.

Each step's screenshot goes to `tests/artifacts/browser/<test>/`. With `MFA_DOC_SCREENSHOTS`
set to a directory (`docs/screenshots`), the steps the README shows are copied there too.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pytest
import uvicorn
from playwright.sync_api import expect

from mfa_pipeline.demo import DemoConfig, create_app
from tests.fixtures.pipeline import MANAGE_KEY
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page, Playwright

    from tests.fixtures.pipeline import ApiServer

CHROMIUM = Path(os.environ.get("MFA_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
DOC_SHOTS = os.environ.get("MFA_DOC_SCREENSHOTS")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """SMS and pushes go to the outbox: the test reads codes there, the simulated phone pushes."""
    return {"sms_provider": "outbox", "push_provider": "outbox"}


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and every later test calling `asyncio.run` would fail under it.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}: scripts/test installs Debian's chromium as root"
        if os.environ.get("CI"):  # CI must not go green without its browser tests
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright import sync_api  # noqa: PLC0415 - a test extra: imported when used

    with sync_api.sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield launched
    launched.close()


class DemoServer:
    """The demo app on a loopback port, in a thread, pointed at the test's API server."""

    def __init__(self, api_url: str, *, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.port = port or free_port()
        # `localhost` where passkeys are tried: a secure context whose name can be an RP ID.
        self.url = f"http://{host}:{self.port}"
        app = create_app(DemoConfig(api_url=api_url, api_key=MANAGE_KEY, startup_timeout=10))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the demo app did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def demo(api_server: ApiServer) -> Iterator[DemoServer]:
    with DemoServer(api_server.url) as server:
        yield server


@pytest.fixture
def locale() -> str:
    """The browser's language (its Accept-Language); a test may parametrize another."""
    return "en-US"


@pytest.fixture
def page(browser: Browser, demo: DemoServer, locale: str) -> Iterator[Page]:
    context = browser.new_context(
        base_url=demo.url,
        accept_downloads=True,
        locale=locale,
        viewport={"width": 960, "height": 760},
    )
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


class Shots:
    """Numbered full-page screenshots of each step, kept as the test run's artifacts."""

    def __init__(self, page: Page, test_name: str) -> None:
        self.page = page
        self.dir = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.count = 0

    def take(self, step: str, *, doc: str | None = None) -> Path:
        self.count += 1
        path = self.dir / f"{self.count:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if doc and DOC_SHOTS:
            Path(DOC_SHOTS).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(DOC_SHOTS) / f"{doc}.png")
        return path


@pytest.fixture
def shots(page: Page, request: pytest.FixtureRequest) -> Shots:
    return Shots(page, request.node.name)


def sign_out(page: Page) -> None:
    """Sign out and wait for the sign-in page, so that no later navigation races the logout."""
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
