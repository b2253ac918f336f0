"""Challenge ids: unguessable, carrying their shard, and strictly shaped."""

from __future__ import annotations

import base64
import re

import pytest

from mfa_pipeline.domain.challenges import (
    is_well_formed_challenge_id,
    new_challenge_id,
    shard_of,
    shard_of_challenge,
)

VALID = new_challenge_id(7)


def test_an_id_is_three_hex_digits_then_28_url_safe_characters() -> None:
    for _ in range(1000):
        assert re.fullmatch(r"[0-9a-f]{3}[A-Za-z0-9_-]{28}", new_challenge_id(5))


def test_the_random_part_of_an_id_holds_168_bits() -> None:
    random_part = new_challenge_id(0)[3:]
    assert len(base64.urlsafe_b64decode(random_part)) * 8 == 168


def test_ids_do_not_repeat() -> None:
    assert len({new_challenge_id(0) for _ in range(10_000)}) == 10_000


@pytest.mark.parametrize("shard", [0, 1, 15, 16, 255, 4095])
def test_an_id_carries_its_shard(shard: int) -> None:
    assert shard_of_challenge(new_challenge_id(shard)) == shard


def test_a_user_always_maps_to_the_same_shard_within_range() -> None:
    shards = [shard_of(f"user-{n}", 16) for n in range(1000)]
    assert shards == [shard_of(f"user-{n}", 16) for n in range(1000)]
    assert set(shards) == set(range(16))


def test_a_new_id_is_well_formed() -> None:
    assert all(is_well_formed_challenge_id(new_challenge_id(n)) for n in range(4096))


@pytest.mark.parametrize(
    "challenge_id",
    [
        "",
        "*",
        VALID[:-1],
        VALID + "A",
        VALID[:-1] + "*",
        VALID[:-1] + "?",
        VALID[:-1] + "{",
        VALID[:-1] + "}",
        VALID[:-1] + ":",
        VALID[:-1] + "\n",
        VALID[:-1] + " ",
        VALID[:-1] + "/",
        VALID[:-1] + "é",
        VALID[:-1] + "٦",
        "../" + VALID[3:],
        "00A" + VALID[3:],
        "0x1" + VALID[3:],
        "-01" + VALID[3:],
        "\uff10\uff10\uff11" + VALID[3:],  # full-width digits
        VALID[:3] + "{s0}" + VALID[7:],
    ],
    # Named, not shown: VALID is random, and parallel runs must collect the same ids.
    ids=[
        "empty",
        "star",
        "short",
        "long",
        "star-at-end",
        "question-mark",
        "open-brace",
        "close-brace",
        "colon",
        "newline",
        "space",
        "slash",
        "e-acute",
        "arabic-digit",
        "dot-dot-slash",
        "shard-not-hex",
        "shard-0x",
        "shard-negative",
        "full-width-shard",
        "hash-tag",
    ],
)
def test_an_id_with_anything_but_its_alphabet_is_refused(challenge_id: str) -> None:
    assert not is_well_formed_challenge_id(challenge_id)
