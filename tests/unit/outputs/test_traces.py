"""hf-traces and init-results files: contents, naming, atomicity."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from overlord.outputs import traces
from overlord.outputs.events import is_valid_trace_id
from overlord.outputs.traces import (
    OutputDirError,
    atomic_write_text,
    new_trace_id,
    resolve_output_dir,
    write_init_results,
    write_trace,
)
from tests.unit.outputs.samples import POOL, UINT256_MAX, USER

LINES = [(USER, 937_500_000_000_000_000), (POOL, UINT256_MAX), (USER.lower(), 10**18 + 1)]


def test_trace_has_one_line_per_user_with_exact_and_float_health_factor(tmp_path: Path) -> None:
    path = write_trace(tmp_path, "abc123", LINES)
    assert path == tmp_path / "hf-traces" / "abc123.txt"
    assert path.read_text().splitlines() == [
        f"{USER} 937500000000000000 0.9375",
        f"{POOL} {UINT256_MAX} 1.157920892373162e+59",
        f"{USER.lower()} 1000000000000000001 1.0",
    ]


def test_trace_lines_parse_back_to_the_exact_values(tmp_path: Path) -> None:
    path = write_trace(tmp_path, "roundtrip", LINES)
    parsed = [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]
    assert parsed == LINES


def test_an_empty_trace_is_an_empty_file(tmp_path: Path) -> None:
    assert write_trace(tmp_path, "empty", []).read_text() == ""


def test_rewriting_a_trace_replaces_it_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_trace(tmp_path, "again", LINES)
    path = write_trace(tmp_path, "again", LINES[:1])
    assert path.read_text().count("\n") == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["again.txt"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    target.write_text("old\n")
    with pytest.raises(TypeError):
        atomic_write_text(target, 42)  # type: ignore[arg-type]  # fails inside the write
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


def test_a_failing_line_source_leaves_the_previous_trace(tmp_path: Path) -> None:
    path = write_trace(tmp_path, "kept", LINES)

    def lines() -> Iterator[tuple[str, int]]:
        yield LINES[0]
        raise RuntimeError("engine stopped mid-trace")

    with pytest.raises(RuntimeError):
        write_trace(tmp_path, "kept", lines())
    assert path.read_text().count("\n") == len(LINES)
    assert [p.name for p in path.parent.iterdir()] == ["kept.txt"]


def test_files_are_readable_like_ordinary_reports(tmp_path: Path) -> None:
    path = write_trace(tmp_path, "mode", LINES)
    assert path.stat().st_mode & 0o777 == traces.FILE_MODE


@pytest.mark.parametrize("trace_id", ["", "../escape", "a/b", "a.b", "x" * 65])
def test_trace_ids_that_are_not_file_names_are_refused(tmp_path: Path, trace_id: str) -> None:
    with pytest.raises(ValueError, match="trace id"):
        write_trace(tmp_path, trace_id, LINES)


def test_init_results_file_is_named_by_date(tmp_path: Path) -> None:
    underwater = [(USER, 937_500_000_000_000_000), (POOL, 0)]
    path = write_init_results(tmp_path, datetime.date(2025, 4, 1), underwater)
    assert path == tmp_path / "init_hf_under_1_results_2025-04-01.txt"
    assert path.read_text() == f"{USER} 937500000000000000 0.9375\n{POOL} 0 0.0\n"


def test_init_results_accept_a_datetime(tmp_path: Path) -> None:
    moment = datetime.datetime(2025, 4, 1, 12, 30, tzinfo=datetime.UTC)
    path = write_init_results(tmp_path, moment, [])
    assert path.name == "init_hf_under_1_results_2025-04-01.txt"


def test_init_results_refuse_a_user_that_is_not_underwater(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not below 1e18"):
        write_init_results(tmp_path, datetime.date(2025, 4, 1), [(USER, 10**18)])
    assert list(tmp_path.iterdir()) == []


def test_output_dir_comes_from_the_argument_before_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = tmp_path / "env"
    from_env.mkdir()
    monkeypatch.setenv(traces.OUTPUT_DIR_ENV, str(from_env))
    assert resolve_output_dir() == from_env
    assert resolve_output_dir(tmp_path) == tmp_path
    assert write_trace(None, "viaenv", LINES).parent.parent == from_env


def test_missing_output_dir_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(traces.OUTPUT_DIR_ENV, raising=False)
    with pytest.raises(OutputDirError, match="TEMP_OUTPUT_DIR"):
        resolve_output_dir()
    with pytest.raises(OutputDirError, match="does not exist"):
        write_trace(tmp_path / "absent", "t", LINES)
    monkeypatch.setenv(traces.OUTPUT_DIR_ENV, "")
    with pytest.raises(OutputDirError):
        resolve_output_dir()


def test_trace_ids_are_fresh_uuid4_hex() -> None:
    first, second = new_trace_id(), new_trace_id()
    assert first != second
    assert len(first) == 32
    assert int(first, 16) >> 76 & 0xF == 4  # the uuid version nibble
    assert is_valid_trace_id(first)


def test_fsync_is_called_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        calls.append("fsync")
        real_fsync(descriptor)

    def replace(source: str, target: Path) -> None:
        calls.append("replace")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_text(tmp_path / "f.txt", "x")
    assert calls == ["fsync", "replace"]
