"""Fuzzing the API with schemathesis against its own generated OpenAPI schema, over real HTTP.

Every operation gets schema-conforming requests (positive) and schema-violating ones (negative),
each with and without a valid API key, a bounded number of examples each. Whatever comes in,
the answer is never a 500 and always conforms to the schema the API publishes (the contract's
error JSON included). The counts are printed for the record (`pytest -s`).

The four runs (mode x key) are separate tests, so a parallel suite spreads them over its
processes. `MFA_FUZZ_EXAMPLES` sets the examples per operation, mode and key: 10 by default,
more for a deeper run (`MFA_FUZZ_EXAMPLES=200 scripts/test tests/e2e/test_api_fuzz.py`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from tests.fixtures.pipeline import MANAGE_KEY

if TYPE_CHECKING:
    from schemathesis import APIOperation, Case

    from tests.fixtures.pipeline import ApiServer

# Per operation, per mode, per auth variant. Hypothesis tries the boundaries (empty, missing,
# wrong type, oversized) among the first examples; a deep run raises it.
EXAMPLES = int(os.environ.get("MFA_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
AUTH = {"with_key": {"Authorization": f"Bearer {MANAGE_KEY}"}, "without_key": {}}


def fuzz(operation: APIOperation, mode: GenerationMode, headers: dict[str, str], url: str) -> int:
    session = requests.Session()
    calls = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Case) -> None:
        nonlocal calls
        calls += 1
        # A long-poll would wait out its whole `wait`; the fuzz is about inputs, not waiting.
        if case.query and "wait" in case.query:
            case.query["wait"] = 0
        case.call_and_validate(base_url=url, session=session, headers=headers, checks=CHECKS)

    one()
    session.close()
    return calls


@pytest.mark.parametrize("variant", list(AUTH))
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_input_gets_a_500_or_an_answer_outside_the_published_schema(
    api_server: ApiServer, mode: GenerationMode, variant: str
) -> None:
    schema = schemathesis.openapi.from_dict(api_server.app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # every route of the contract is in the schema
    total = 0
    failures = []
    for operation in operations:
        try:
            calls = fuzz(operation, mode, AUTH[variant], api_server.url)
            if calls == 0:  # a run that sent nothing would pass whatever the API does
                failures.append(f"{operation.label} [{mode.value}, {variant}]: no request sent")
            total += calls
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no inputs
        except Exception as exc:  # every finding, not only the first
            failures.append(f"{operation.label} [{mode.value}, {variant}]: {exc}")
    print(f"\nfuzz ({mode.value}, {variant}): {len(operations)} operations, {total} cases")
    assert failures == []
