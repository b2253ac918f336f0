"""Number matching and the signed answer's canonical form (contract)."""

from __future__ import annotations

from collections import Counter

from mfa_pipeline.domain.push import (
    Decision,
    PushAnswer,
    canonical_answer,
    new_number_match,
    number_choices,
    timestamp_fresh,
)


def test_the_number_shown_has_two_digits_without_a_leading_zero() -> None:
    numbers = {new_number_match() for _ in range(500)}
    assert all(len(n) == 2 and n.isdigit() and n[0] != "0" for n in numbers)
    assert len(numbers) > 50


def test_the_phone_offers_three_distinct_numbers_one_of_them_right() -> None:
    positions: Counter[int] = Counter()
    for _ in range(600):
        choices = number_choices("42")
        assert len(set(choices)) == 3
        assert all(len(c) == 2 for c in choices)
        positions[choices.index("42")] += 1
    # The right answer's place is not predictable: each place is used.
    assert all(positions[p] > 100 for p in range(3))


def test_the_canonical_string_is_the_contracts() -> None:
    assert canonical_answer("c1", "d1", "approve", "42", 1700000000, reason=None) == (
        b"c1|d1|approve|42|1700000000|"
    )
    assert canonical_answer("c1", "d1", "deny", None, 5, reason="not_me") == b"c1|d1|deny||5|not_me"


def test_the_reason_is_part_of_what_the_device_signs() -> None:
    plain = PushAnswer("c", "d", Decision.DENY, None, None, 5, b"")
    not_me = PushAnswer("c", "d", Decision.DENY, None, "not_me", 5, b"")
    assert plain.signed_bytes() != not_me.signed_bytes()


def test_only_a_deny_with_not_me_reports_fraud() -> None:
    def answer(decision: Decision, reason: str | None) -> PushAnswer:
        return PushAnswer("c", "d", decision, None, reason, 0, b"")

    assert answer(Decision.DENY, "not_me").fraud_reported
    assert not answer(Decision.DENY, None).fraud_reported
    assert not answer(Decision.APPROVE, "not_me").fraud_reported


def test_a_timestamp_is_fresh_within_a_minute_either_way() -> None:
    assert timestamp_fresh(1000, 1060)
    assert timestamp_fresh(1060, 1000)
    assert not timestamp_fresh(1000, 1061)
    assert not timestamp_fresh(1061, 1000)
