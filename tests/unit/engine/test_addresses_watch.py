"""The addresses watcher against a real file and an engine that is never advanced (its
node is never asked): what it asks the engine to read again and to drop."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from overlord.aave import UserAccount, UserReserve
from overlord.aave.configuration import user_configuration_word
from overlord.engine.addresses_watch import AddressesChange, AddressesWatcher
from overlord.engine.engine import Engine
from overlord.engine.store import ProcessedBlock
from tests.unit.chain.fakes import FakeNode, client_for

POOL = "0x" + "11" * 20
A, B, C = ("0x" + digit * 40 for digit in "abc")


class RecordingEngine(Engine):
    """An engine that also records the re-read and drop requests it gets."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.reread_requests: list[list[str]] = []
        self.drop_requests: list[list[str]] = []
        self.asked = threading.Event()

    def reread_next(self, addresses: Iterable[str]) -> None:
        listed = list(addresses)
        self.reread_requests.append(listed)
        super().reread_next(listed)
        self.asked.set()

    def drop_users(self, addresses: Iterable[str]) -> int:
        listed = list(addresses)
        self.drop_requests.append(listed)
        return super().drop_users(listed)


@pytest.fixture
def engine() -> Iterator[RecordingEngine]:
    with client_for(FakeNode()) as client:
        built = RecordingEngine(client, POOL)
        for address in (A, B):
            built.table.upsert(
                UserAccount(
                    address, user_configuration_word(collateral=[0]), 0, {0: UserReserve(7)}
                )
            )
        yield built


def write(path: Path, *lines: str) -> None:
    """Replace ``path`` atomically, as a careful writer does."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.replace(temporary, path)


def watcher_of(path: Path, engine: Engine) -> AddressesWatcher:
    write(path, A, B)
    watcher = AddressesWatcher(path, engine, initial=[A, B.upper().replace("0X", "0x")])
    assert watcher.check() is None  # the file as listed at start: nothing to do
    return watcher


def test_an_unchanged_file_changes_nothing(tmp_path: Path, engine: RecordingEngine) -> None:
    watcher = watcher_of(tmp_path / "users.txt", engine)

    assert watcher.check() is None

    assert engine.reread_requests == engine.drop_requests == []
    assert watcher.reloads == 1  # read once, at the first check


def test_an_added_line_is_read_at_the_next_block(tmp_path: Path, engine: RecordingEngine) -> None:
    path = tmp_path / "users.txt"
    watcher = watcher_of(path, engine)
    write(path, A, B, C)

    change = watcher.check()

    assert change == AddressesChange(added=(C,), removed=())
    assert engine.reread_requests == [[C]]
    assert watcher.check() is None
    assert engine.reread_requests == [[C]]  # no block went by: nothing asked again
    assert (watcher.added_total, watcher.removed_total) == (1, 0)
    assert watcher.addresses == {A, B, C}


def test_a_removed_line_drops_the_user(tmp_path: Path, engine: RecordingEngine) -> None:
    path = tmp_path / "users.txt"
    watcher = watcher_of(path, engine)
    write(path, A)

    change = watcher.check()

    assert change == AddressesChange(added=(), removed=(B,))
    assert engine.drop_requests == [[B]]
    index = engine.table.user_index(B)
    assert index is not None
    assert engine.table.account(index) == UserAccount(B, 0)
    assert watcher.dropped_users() == {B}
    assert watcher.removed_total == 1


def test_a_line_listed_again_is_no_longer_dropped(tmp_path: Path, engine: RecordingEngine) -> None:
    path = tmp_path / "users.txt"
    watcher = watcher_of(path, engine)
    write(path, A)
    watcher.check()
    write(path, A, "", B)

    change = watcher.check()

    assert change == AddressesChange(added=(B,), removed=())
    assert watcher.dropped_users() == frozenset()
    assert engine.reread_requests == [[B]]


def test_a_malformed_line_is_logged_and_the_rest_applies(
    tmp_path: Path, engine: RecordingEngine, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.txt"
    watcher = watcher_of(path, engine)
    write(path, A, "0xnot-an-address", C)

    with caplog.at_level(logging.WARNING, logger="overlord.addresses"):
        change = watcher.check()

    assert change == AddressesChange(added=(C,), removed=(B,))
    (record,) = [r for r in caplog.records if r.getMessage() == "addresses file line skipped"]
    assert record.levelno == logging.WARNING
    assert (record.line, record.text) == (2, "0xnot-an-address")  # type: ignore[attr-defined]


def test_a_missing_file_drops_nobody_and_is_logged_once(
    tmp_path: Path, engine: RecordingEngine, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.txt"
    watcher = watcher_of(path, engine)
    path.unlink()

    with caplog.at_level(logging.INFO, logger="overlord.addresses"):
        assert watcher.check() is None
        assert watcher.check() is None
        write(path, A, B, C)
        change = watcher.check()

    assert engine.drop_requests == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(path) in str(errors[0].file)  # type: ignore[attr-defined]
    assert watcher.errors == 2
    assert change == AddressesChange(added=(C,), removed=())


def test_an_undecodable_file_drops_nobody(tmp_path: Path, engine: RecordingEngine) -> None:
    path = tmp_path / "users.txt"
    watcher = watcher_of(path, engine)
    path.write_bytes(b"\xff\xfe" + A.encode())

    assert watcher.check() is None

    assert engine.drop_requests == []
    assert watcher.addresses == {A, B}


def test_an_empty_file_is_not_taken_for_dropping_everyone(
    tmp_path: Path, engine: RecordingEngine
) -> None:
    path = tmp_path / "users.txt"
    watcher = watcher_of(path, engine)
    write(path, "# nobody")

    assert watcher.check() is None

    assert engine.drop_requests == []
    assert watcher.addresses == {A, B}


def test_an_added_user_a_block_went_by_without_is_asked_for_again(
    tmp_path: Path, engine: RecordingEngine
) -> None:
    path = tmp_path / "users.txt"
    watcher = watcher_of(path, engine)
    write(path, A, B, C)
    watcher.check()
    # A block whose reads were chosen before the request landed: it did not read C.
    engine.history.append(ProcessedBlock(10, 10, None, frozenset({A})))

    watcher.check()

    assert engine.reread_requests == [[C], [C]]
    engine.history.append(ProcessedBlock(11, 11, None, frozenset({C})))
    watcher.check()
    engine.history.append(ProcessedBlock(12, 12, None, frozenset()))
    watcher.check()
    assert engine.reread_requests == [[C], [C]]  # read at block 11: followed no more


def test_the_thread_applies_changes_until_stopped(tmp_path: Path, engine: RecordingEngine) -> None:
    path = tmp_path / "users.txt"
    write(path, A, B, C)
    watcher = AddressesWatcher(path, engine, interval_s=0.001, initial=[A, B])
    stop = threading.Event()

    thread = watcher.start(stop)
    asked = engine.asked.wait(timeout=30)
    stop.set()
    thread.join(timeout=30)

    assert asked
    assert thread.name == "addresses-watch"
    assert not thread.is_alive()
    assert engine.reread_requests[0] == [C]
