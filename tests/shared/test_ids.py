"""``shared.ids.row_id``: the one rule both apps read posted and URL row ids with."""

from __future__ import annotations

import pytest

from shared.ids import MAX_ROW_ID, row_id


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", 1), (" 42 ", 42), (str(MAX_ROW_ID), MAX_ROW_ID)]
)
def test_ids_as_written_are_read(raw: str, expected: int) -> None:
    """Plain ASCII digits, spaces around them allowed, up to the INTEGER key."""
    assert row_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "0", "012", "-1", "1.0", "²", "١٢", "１２", "1 2", str(MAX_ROW_ID + 1), "9" * 40],
)
def test_anything_no_row_can_have_is_none(raw: object) -> None:
    """Zero, leading zeros, signs, other scripts' digits and ids past the key: None, no error."""
    assert row_id(raw) is None
