"""Addresses files: one address per line, comments, duplicates, problems with line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlord.verify import AddressProblem, load_addresses_file, parse_addresses

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
LOWER = CHECKSUMMED.lower()
OTHER = "0x" + "ab" * 20


def test_lower_case_checksummed_and_upper_case_addresses_are_accepted_and_lowered() -> None:
    upper = "0x" + "CD" * 20

    addresses, problems = parse_addresses([CHECKSUMMED, OTHER, upper])

    assert addresses == [LOWER, OTHER, upper.lower()]
    assert problems == []


def test_blank_lines_and_comments_are_skipped() -> None:
    lines = ["# users to check", "", "   ", f"{OTHER}  # alice", "\t#indented comment"]

    assert parse_addresses(lines) == ([OTHER], [])


def test_duplicates_are_merged_in_first_seen_order_whatever_their_case() -> None:
    addresses, _ = parse_addresses([OTHER, CHECKSUMMED, LOWER, OTHER.upper().replace("0X", "0x")])

    assert addresses == [OTHER, LOWER]


def test_bad_lines_are_reported_with_their_line_numbers_and_skipped() -> None:
    bad_checksum = CHECKSUMMED.replace("a", "A", 1)
    lines = [OTHER, "0x1234", "", "not an address", bad_checksum, LOWER + "00", "ab" * 20]

    addresses, problems = parse_addresses(lines)

    assert addresses == [OTHER]
    assert [p.line for p in problems] == [2, 4, 5, 6, 7]
    assert "checksum" in problems[2].reason
    assert str(problems[0]) == "line 2: not a 0x-prefixed 20-byte hex address: '0x1234'"


def test_a_file_is_read_with_the_same_rules(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text(f"# header\n{CHECKSUMMED}\n\nbogus\n{LOWER}\n")

    addresses, problems = load_addresses_file(path)

    assert addresses == [LOWER]
    assert problems == [AddressProblem(4, "bogus", "not a 0x-prefixed 20-byte hex address")]


def test_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="No such file"):
        load_addresses_file(tmp_path / "absent.txt")
