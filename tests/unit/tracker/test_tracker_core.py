"""The tracker's core with a scripted source and a real SQLite store: delta detection,
bootstrap suppression, at-least-once delivery, verdicts, and malformed logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from overlord.aave import AccountData
from overlord.chain.aave_abi import LIQUIDATION_CALL_TOPIC
from overlord.chain.rpc import RpcError
from overlord.observability.metrics import Metrics
from overlord.tracker.attribution import Verdict, Watchlist, attribute
from overlord.tracker.logsource import decode_liquidation_call
from overlord.tracker.records import LiquidationRecord, Source, SourceBatch, record_id
from overlord.tracker.store import TrackerStore, TrackerStoreError
from overlord.tracker.tracker import LiquidationTracker, TrackedLiquidation, TrackerSettings

WAD = 10**18
USER = "0x" + "11" * 20
OTHER = "0x" + "22" * 20


def _record(n: int, *, user: str = USER, timestamp: int = 1_000) -> LiquidationRecord:
    tx = "0x" + f"{n:064x}"
    return LiquidationRecord(
        id=record_id(tx, 3),
        tx_hash=tx,
        log_index=3,
        timestamp=timestamp + n,
        user=user,
        liquidator="0x" + "33" * 20,
        collateral_asset="0x" + "44" * 20,
        debt_asset="0x" + "55" * 20,
        debt_to_cover=10**30 + n,  # beyond a double: must survive the store exactly
        liquidated_collateral_amount=n,
        source=Source.LOGS,
        block_number=100 + n,
        receive_a_token=False,
    )


@dataclass
class ScriptedSource:
    """Answers each poll with the next scripted batch; records the cursors it was given."""

    batches: list[list[LiquidationRecord]]
    name: str = "scripted"
    cursors: list[str | None] = field(default_factory=list)
    fail_next: bool = False

    def poll(self, cursor: str | None) -> SourceBatch:
        self.cursors.append(cursor)
        if self.fail_next:
            self.fail_next = False
            raise RpcError("eth_getLogs", "node down")
        records = self.batches.pop(0) if self.batches else []
        return SourceBatch(tuple(records), str(len(self.cursors)), cursor is None)


def _tracker(
    tmp_path: Path,
    batches: Sequence[list[LiquidationRecord]],
    delivered: list[TrackedLiquidation],
    *,
    bootstrap: bool = True,
    metrics: Metrics | None = None,
) -> tuple[LiquidationTracker, ScriptedSource]:
    source = ScriptedSource(list(batches))
    tracker = LiquidationTracker(
        source,
        TrackerStore.in_dir(tmp_path),
        TrackerSettings(ignore_bootstrap_batch=bootstrap),
        deliver=delivered.append,
        metrics=metrics,
    )
    return tracker, source


def test_a_cold_start_suppresses_its_first_batch_and_delivers_only_new_ones_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    delivered: list[TrackedLiquidation] = []
    metrics = Metrics("lb_")
    tracker, source = _tracker(
        tmp_path,
        [[_record(1), _record(2)], [_record(2), _record(3), _record(3), _record(4)]],
        delivered,
        metrics=metrics,
    )
    with caplog.at_level(logging.INFO):
        first = tracker.poll()
    second = tracker.poll()

    assert (first.bootstrap, first.suppressed, first.new) == (True, 2, ())
    assert "bootstrap batch ignored (2 events suppressed)" in caplog.text
    assert [item.record.id for item in delivered] == [_record(3).id, _record(4).id]
    assert (second.snapshot_size, second.seen_total) == (4, 4)
    assert source.cursors == [None, "1"]
    text = metrics.exposition().decode()
    assert "lb_liquidation_new_events_total 2.0" in text
    assert "lb_liquidation_snapshot_size 4.0" in text
    assert "lb_liquidation_seen_total 4.0" in text


def test_without_suppression_the_first_batch_is_delivered(tmp_path: Path) -> None:
    delivered: list[TrackedLiquidation] = []
    tracker, _ = _tracker(tmp_path, [[_record(1)]], delivered, bootstrap=False)
    assert tracker.poll().new[0].record == _record(1)
    assert delivered[0].record == _record(1)


def test_a_restart_resumes_from_the_saved_cursor_and_seen_set(tmp_path: Path) -> None:
    delivered: list[TrackedLiquidation] = []
    tracker, _ = _tracker(tmp_path, [[_record(1)], [_record(2)]], delivered)
    tracker.poll()
    tracker.poll()
    tracker.store.close()

    again, source = _tracker(tmp_path, [[_record(2), _record(3)]], delivered)
    report = again.poll()

    assert source.cursors == ["2"]  # warm: no bootstrap, no cold poll
    assert not report.bootstrap
    assert [item.record.id for item in delivered] == [_record(2).id, _record(3).id]
    assert again.store.recent(5) == [_record(3), _record(2), _record(1)]
    again.store.close()


def test_a_delivery_failure_commits_nothing_so_the_next_poll_delivers_again(
    tmp_path: Path,
) -> None:
    attempts: list[str] = []

    def flaky(item: TrackedLiquidation) -> None:
        attempts.append(item.record.id)
        if len(attempts) == 1:
            raise OSError("socket gone")

    source = ScriptedSource([[], [_record(1)], [_record(1)]])
    tracker = LiquidationTracker(source, TrackerStore.in_dir(tmp_path), deliver=flaky)
    tracker.poll()
    with pytest.raises(OSError, match="socket gone"):
        tracker.poll()
    assert tracker.store.cursor("scripted") == "1"  # not moved past the undelivered batch
    tracker.poll()
    assert attempts == [_record(1).id, _record(1).id]  # at least once, same id
    assert tracker.store.seen_total() == 1


def test_run_survives_a_failed_poll_and_counts_it(tmp_path: Path) -> None:
    metrics = Metrics()
    source = ScriptedSource([[]])
    source.fail_next = True
    tracker = LiquidationTracker(
        source,
        TrackerStore.in_dir(tmp_path),
        TrackerSettings(poll_interval_s=0.01),
        metrics=metrics,
    )
    stop = threading.Event()
    thread = threading.Thread(target=tracker.run, args=(stop,))
    thread.start()
    while tracker.polls < 2:
        stop.wait(0.01)
    stop.set()
    thread.join()
    assert tracker.failures == 1
    assert 'tracker_poll_errors_total{source="scripted"} 1.0' in metrics.exposition().decode()


def _account(hf: int, collateral: int = 10**10) -> AccountData:
    return AccountData(collateral, 10**9, 0, 8000, 7500, hf)


@pytest.mark.parametrize(
    ("block", "before", "flag_at", "known_at", "expected"),
    [
        (50, _account(WAD // 2), None, 10, Verdict.BEFORE_START),
        (101, _account(WAD // 2), 100, 10, Verdict.FLAGGED),
        (101, _account(2 * WAD), 100, 10, Verdict.FLAGGED),  # a pending detection
        (101, _account(WAD // 2), 101, 10, Verdict.BUG),  # flagged too late
        (101, None, None, 10, Verdict.UNKNOWN),
        (101, _account(WAD), None, 10, Verdict.SAME_BLOCK),
        (101, _account(WAD - 1), None, None, Verdict.NOT_IN_USER_SET),
        (101, _account(WAD - 1), None, 101, Verdict.NOT_IN_USER_SET),
        (101, _account(WAD - 1, collateral=500), None, 10, Verdict.BELOW_THRESHOLD),
        (101, _account(WAD - 1, collateral=501), None, 10, Verdict.BUG),
    ],
)
def test_verdicts(
    block: int,
    before: AccountData | None,
    flag_at: int | None,
    known_at: int | None,
    expected: Verdict,
) -> None:
    watchlist = Watchlist()
    watchlist.started([OTHER], 60)
    if known_at is not None:
        watchlist.known([USER.upper().replace("0X", "0x")], known_at)
    if flag_at is not None:
        watchlist.flagged(USER, flag_at)
    assert attribute(watchlist, USER, block, before, min_collateral_base=500) is expected


def _log(**changes: object) -> dict[str, object]:
    word = "0" * 24
    log: dict[str, object] = {
        "address": "0x" + "66" * 20,
        "topics": [
            LIQUIDATION_CALL_TOPIC,
            "0x" + word + "44" * 20,
            "0x" + word + "55" * 20,
            "0x" + word + "11" * 20,
        ],
        "data": "0x" + f"{7:064x}" + f"{9:064x}" + word + "33" * 20 + f"{1:064x}",
        "blockNumber": "0x10",
        "transactionHash": "0x" + "ab" * 32,
        "logIndex": "0x2",
    }
    log.update(changes)
    return log


def test_a_liquidation_call_log_decodes_exactly() -> None:
    record = decode_liquidation_call(_log(), 1_700_000_000)
    assert record.id == "0x" + "ab" * 32 + ":2"
    assert (record.user, record.liquidator) == (USER, "0x" + "33" * 20)
    assert (record.collateral_asset, record.debt_asset) == ("0x" + "44" * 20, "0x" + "55" * 20)
    assert (record.debt_to_cover, record.liquidated_collateral_amount) == (7, 9)
    assert (record.block_number, record.receive_a_token, record.timestamp) == (
        16,
        True,
        1_700_000_000,
    )


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"topics": [LIQUIDATION_CALL_TOPIC]}, "not a LiquidationCall"),
        ({"data": "0x" + "00" * 96}, "not 4 words"),
        ({"data": "0x" + "00" * 96 + "zz" * 32}, "not 4 words"),
        ({"data": "0x" + "00" * 96 + f"{2:064x}"}, "receiveAToken"),
        ({"transactionHash": "0x1234"}, "transaction hash"),
        ({"logIndex": 2}, "logIndex"),
        ({"blockNumber": "0xzz"}, "blockNumber"),
    ],
)
def test_malformed_logs_are_errors_never_records(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(RpcError, match=problem):
        decode_liquidation_call(_log(**changes), 1)


def test_an_address_word_with_dirty_padding_is_refused() -> None:
    topics = list(_log()["topics"])  # type: ignore[call-overload]
    topics[3] = "0x" + "ff" * 12 + "11" * 20
    with pytest.raises(RpcError, match="user"):
        decode_liquidation_call(_log(topics=topics), 1)


def test_records_refuse_garbage_and_round_trip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="user"):
        _record_with(user="0x123")
    with pytest.raises(ValueError, match="non-negative"):
        _record_with(debt_to_cover=-1)
    with pytest.raises(ValueError, match="id"):
        _record_with(id="nonsense")
    record = _record(5)
    assert LiquidationRecord.from_document(record.to_document()) == record


def _record_with(**changes: object) -> LiquidationRecord:
    values = {**_record(1).to_document(), **changes}
    values["source"] = Source(values["source"])
    values["debt_to_cover"] = int(values["debt_to_cover"])
    values["liquidated_collateral_amount"] = int(values["liquidated_collateral_amount"])
    return LiquidationRecord(**values)


def test_an_unusable_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TrackerStoreError, match="tracker store"):
        TrackerStore.in_dir(blocker)
