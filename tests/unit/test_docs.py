"""Relative links in README.md and docs/*.md point at files (and headings) that exist.

Pages move and sections change pages; a link left behind is caught here, not by a reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mfa_pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in HEADING.findall(text)}


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_pages_link_to_something() -> None:
    assert sum(len(relative_links(page)) for page in PAGES) > 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_a_slug_is_what_github_makes_of_a_heading() -> None:
    assert slug("Past one Redis: Redis Cluster, RabbitMQ and several hosts") == (
        "past-one-redis-redis-cluster-rabbitmq-and-several-hosts"
    )
    assert slug("`mfa-pipeline up` and the API") == "mfa-pipeline-up-and-the-api"


def test_every_setting_is_in_the_configuration_reference() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [
        f"MFA_{name.upper()}"
        for name in Settings.model_fields
        if f"`MFA_{name.upper()}" not in page
    ]
    assert not missing, f"docs/configuration.md lacks {', '.join(missing)}"


# `mfa_pipeline/cli/device.py`, `tests/drills/`, `bench/*.py`; and tests cited the way
# docs/security.md cites them: `unit/test_x.py::test_y`, then `::test_z` (a file named nearby).
REPO_PATH = re.compile(
    r"`((?:mfa_pipeline|workers|tests|bench|config|examples|scripts|docs|\.ci)/[\w./*-]*)[`:]"
)
TEST_FILE = re.compile(r"`((?:tests/)?(?:unit|integration|e2e|drills|browser)/[\w/-]+\.py)\b")
TEST_NAME = re.compile(r"::(test_\w+)`")


def defined_tests() -> set[str]:
    return {
        name
        for path in (ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^\s*(?:async )?def (test_\w+)\(", path.read_text(), re.MULTILINE)
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_file_and_test_the_page_names_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = [
        path
        for path in REPO_PATH.findall(text)
        if not (any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists())
    ]
    missing += [
        file
        for file in TEST_FILE.findall(text)
        if not (ROOT / (file if file.startswith("tests/") else f"tests/{file}")).exists()
    ]
    known = defined_tests()
    missing += [f"::{name}" for name in TEST_NAME.findall(text) if name not in known]
    assert not missing, f"{page.relative_to(ROOT)} names what is not there: {', '.join(missing)}"
