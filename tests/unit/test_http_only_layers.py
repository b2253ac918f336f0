"""The client and the demo app reach the service over HTTP only: they import none of its code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mfa_pipeline

PACKAGE = Path(mfa_pipeline.__file__).parent
ALLOWED = {"client": ("mfa_pipeline.client",), "demo": ("mfa_pipeline.client", "mfa_pipeline.demo")}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_nothing_of_the_service_but_the_client(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"mfa_pipeline/{layer} holds no Python files"
    offending = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in files
        for module in imported_modules(path)
        if module.startswith("mfa_pipeline") and not module.startswith(ALLOWED[layer])
    }
    assert not offending
