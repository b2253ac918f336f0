"""Secrets are compared in constant time everywhere: a source scan for `==` on secret names.

A timing difference between "first byte wrong" and "last byte wrong" lets an attacker find a
secret byte by byte. Every comparison of a code, hash, token, signature or key must go through
`hmac.compare_digest` (or pyotp's `strings_equal`); this test reads the package's syntax tree
and fails on an `==`/`!=` whose operand is named like a secret.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mfa_pipeline"

SECRET_NAME = re.compile(
    r"(^|_)(code|codes|otp|secret|token|signature|digest|hash|api_key|key|mac|tag|password)"
    r"($|_)",
    re.IGNORECASE,
)
# Names that match the pattern but hold no secret (a type, a status, an error code, a count).
HARMLESS = re.compile(
    r"(error_code|status_code|exit_code|country_code|code_length|key_id|kid|key_prefix|"
    r"factor|type|status|scheme|public_key|canonical_key|token_type|lookup|_id$|^[A-Z_]+$)",
)
# (file, name) pairs read and judged harmless: `code` there is an error code, not a secret.
ALLOWED = {("mfa_pipeline/services/challenges.py", "code")}


def operand_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return None


def secret_comparisons(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(o, ast.Constant) and o.value in (None, "", 0) for o in operands):
            continue  # a test for absence is not a comparison of secrets
        for operand in operands:
            name = operand_name(operand)
            if name and SECRET_NAME.search(name) and not HARMLESS.search(name):
                found.append((node.lineno, name))
    return found


def test_no_secret_is_compared_with_eq_anywhere_in_the_package() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        where = str(path.relative_to(PACKAGE.parent))
        offenders += [
            f"{where}:{line} ({name})"
            for line, name in secret_comparisons(tree)
            if (where, name) not in ALLOWED
        ]
    assert offenders == []


def test_the_scan_does_catch_a_plain_comparison_of_a_secret() -> None:
    tree = ast.parse("ok = presented_token == stored_token\nsame = a.code_hash != b")
    names = [name for _, name in secret_comparisons(tree)]
    assert names == ["presented_token", "stored_token", "code_hash"]
