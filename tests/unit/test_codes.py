"""One-time codes: the accepted shape, uniform generation and keyed, bound digests."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_pipeline.domain.codes import code_digest, generate_code, normalize_code
from mfa_pipeline.domain.errors import InvalidCodeError

KEY = b"k" * 32
CHALLENGE_ID = "000" + "A" * 28
BASE = (KEY, CHALLENGE_ID, 0, "123456")


@pytest.mark.parametrize("typed", ["123456", "123 456", "123-456", " 123456 "])
def test_a_typed_code_with_separators_normalizes_to_six_digits(typed: str) -> None:
    assert normalize_code(typed) == "123456"


@pytest.mark.parametrize(
    "typed",
    [
        "12345a",
        "abcdef",
        "12345",
        "1234567",
        "",
        "١٢٣٤٥٦",  # Arabic-Indic digits
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width digits
        "¹²³⁴⁵⁶",  # superscripts
        "12345٦",  # one non-ASCII digit is enough
        "123_456",
        "123.456",
        "123\t456",
        "1-2-3-4-5-6",  # separators anywhere but the middle: not a form of the contract
        "-123456",
        "123456-",
        "123--456",
        "123 - 456",
        "12-3456",
        "1 2 3 4 5 6",
    ],
)
def test_a_code_of_the_wrong_shape_is_refused(typed: str) -> None:
    with pytest.raises(InvalidCodeError):
        normalize_code(typed)


@pytest.mark.parametrize("value", [None, 123456, 123456.0, b"123456", ["123456"]])
def test_a_code_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(InvalidCodeError):
        normalize_code(value)


@settings(database=None)
@given(st.one_of(st.text(), st.text(alphabet="0123456789 -\t\n\u0666\uff16\u2076a_", max_size=14)))
def test_whatever_is_accepted_is_six_ascii_digits_once_separators_are_stripped(
    typed: str,
) -> None:
    try:
        code = normalize_code(typed)
    except InvalidCodeError:
        return
    assert re.fullmatch(r"[0-9]{6}", code)
    assert code == typed.strip().replace(" ", "").replace("-", "")


def test_a_generated_code_is_six_ascii_digits() -> None:
    assert all(re.fullmatch(r"[0-9]{6}", generate_code()) for _ in range(1000))


def test_every_digit_position_of_generated_codes_is_roughly_uniform() -> None:
    # 20,000 draws put 2,000 of each digit in each position, give or take 42 (one standard
    # deviation); the 8-12 % band is over 9 deviations wide, so this never fails by chance.
    codes = [generate_code() for _ in range(20_000)]
    for position in range(6):
        counts = Counter(code[position] for code in codes)
        assert set(counts) == set("0123456789")
        assert all(1_600 <= n <= 2_400 for n in counts.values())


def test_a_digest_is_stable_for_the_same_inputs() -> None:
    assert code_digest(*BASE) == code_digest(*BASE)


@pytest.mark.parametrize(
    "changed",
    [
        (b"o" * 32, CHALLENGE_ID, 0, "123456"),
        (KEY, "001" + "A" * 28, 0, "123456"),
        (KEY, CHALLENGE_ID, 1, "123456"),
        (KEY, CHALLENGE_ID, 0, "123457"),
    ],
    ids=["key", "challenge_id", "seq", "code"],
)
def test_a_digest_changes_with_each_of_its_inputs(changed: tuple[bytes, str, int, str]) -> None:
    assert code_digest(*changed) != code_digest(*BASE)


def test_a_digest_does_not_contain_the_code() -> None:
    assert "123456" not in code_digest(KEY, CHALLENGE_ID, 0, "123456")
