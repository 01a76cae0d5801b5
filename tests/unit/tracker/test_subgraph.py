"""The subgraph source against a real GraphQL server: pagination, retries, limits, secrets."""

from __future__ import annotations

import json
import logging
import random
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from overlord.tracker.records import LiquidationRecord, Source
from overlord.tracker.subgraph import (
    MAX_SKIP,
    SubgraphError,
    SubgraphSettings,
    SubgraphSource,
)
from tests.unit.tracker.subgraph_server import USDC, WETH, FakeSubgraph, make_entity, tx_hash

LOGGER = "overlord.tracker.subgraph"
URL_SECRET = "URLSECRET4242"
KEY = "the-api-key-0123456789"


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


MakeSource = Callable[..., SubgraphSource]


@pytest.fixture
def server() -> Iterator[FakeSubgraph]:
    with FakeSubgraph() as fake:
        yield fake


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(scope="module")
def shared_http() -> Iterator[httpx.Client]:
    """One client for the module: making one costs ~50 ms (its TLS context)."""
    with httpx.Client() as client:
        yield client


@pytest.fixture
def make_source(
    server: FakeSubgraph, fake_time: FakeTime, shared_http: httpx.Client
) -> Iterator[MakeSource]:
    made: list[SubgraphSource] = []

    def make(*, http: httpx.Client | None = None, **overrides: Any) -> SubgraphSource:
        overrides.setdefault("url", f"{server.url}/api/{URL_SECRET}/subgraphs/id/aave-v3")
        source = SubgraphSource(
            SubgraphSettings(**overrides),
            http=http or shared_http,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def ids(records: tuple[LiquidationRecord, ...] | list[LiquidationRecord]) -> list[str]:
    return [record.id for record in records]


def entity_id(entity: dict[str, Any]) -> str:
    return str(entity["id"])


def add(server: FakeSubgraph, entities: list[dict[str, Any]], *, seed: int = 7) -> None:
    """Add ``entities`` in a shuffled order, so the server must do the ordering."""
    shuffled = list(entities)
    random.Random(seed).shuffle(shuffled)
    server.entities.extend(shuffled)


def mock_client(answer: Callable[[dict[str, Any]], object]) -> httpx.Client:
    """An httpx client whose every POST is answered with ``answer(variables)`` as JSON."""

    def handler(request: httpx.Request) -> httpx.Response:
        variables = json.loads(request.content)["variables"]
        return httpx.Response(200, json=answer(variables))

    return httpx.Client(transport=httpx.MockTransport(handler))


# --- cold start ---------------------------------------------------------------------------


def test_cold_poll_returns_the_newest_page_oldest_first(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    entities = [make_entity(n, 100 + n) for n in range(12)]
    add(server, entities)
    batch = make_source().poll(None)
    assert batch.cold is True
    assert batch.cursor == "111"
    assert ids(batch.records) == [entity_id(e) for e in entities[7:]]
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request.variables == {"first": 5}
    assert request.query is not None
    assert "orderDirection: desc" in request.query


def test_cold_poll_of_an_empty_subgraph(make_source: MakeSource) -> None:
    batch = make_source().poll(None)
    assert batch.records == ()
    assert batch.cursor == "0"
    assert batch.cold is True


def test_record_mapping_lowercases_and_fills_every_field(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    entity = make_entity(5, 1_700_000_000, log_index=41)
    upper_hash = "0x" + entity["txHash"][2:].upper()
    entity["txHash"] = upper_hash
    entity["id"] = f"{upper_hash}:41"
    entity["user"]["id"] = "0x" + "AB" * 20
    entity["collateralReserve"]["underlyingAsset"] = WETH.upper().replace("0X", "0x")
    server.entities.append(entity)
    (record,) = make_source().poll(None).records
    assert record == LiquidationRecord(
        id=f"{tx_hash(5)}:41",
        tx_hash=tx_hash(5),
        log_index=41,
        timestamp=1_700_000_000,
        user="0x" + "ab" * 20,
        liquidator="0x" + f"{12:040x}",
        collateral_asset=WETH,
        debt_asset=USDC,
        debt_to_cover=2_500_000_000,
        liquidated_collateral_amount=10**18,
        source=Source.SUBGRAPH,
        block_number=None,
        receive_a_token=None,
        collateral_symbol="WETH",
        debt_symbol="USDC",
    )


def test_long_entity_ids_of_newer_subgraph_versions_are_accepted(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    entity = make_entity(3, 500)
    entity["id"] = f"19000000:12:{tx_hash(3)}:87:2"
    server.entities.append(entity)
    (record,) = make_source().poll(None).records
    assert record.id == f"{tx_hash(3)}:87"
    assert record.log_index == 87


# --- pagination: nothing lost -------------------------------------------------------------


def test_a_burst_after_the_cursor_is_fully_returned(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    old = [make_entity(1, 90), make_entity(2, 95), make_entity(3, 100)]
    # 23 liquidations; ties at 101 (7) and 103 (12) straddle page boundaries of 5.
    stamps = [101] * 7 + [102] + [103] * 12 + [104, 105, 105]
    burst = [make_entity(10 + i, ts) for i, ts in enumerate(stamps)]
    add(server, old + burst)
    source = make_source(max_pages=50)

    batch = source.poll("100")

    assert batch.cold is False
    assert batch.cursor == "105"
    assert sorted(ids(batch.records)) == sorted([entity_id(old[2])] + [entity_id(e) for e in burst])
    assert len(batch.records) == 24  # skip counting re-reads nothing inside one poll
    positions = [(r.variables or {}).get("since") for r in server.requests]
    skips = [(r.variables or {}).get("skip") for r in server.requests]
    assert positions == [100, 101, 103, 103, 103]
    assert skips == [0, 4, 1, 6, 11]
    assert source.stats.pages == 5

    again = source.poll(batch.cursor)
    assert sorted(ids(again.records)) == sorted(entity_id(e) for e in burst[-2:])
    assert again.cursor == "105"


def test_equal_timestamps_arriving_between_polls_are_not_lost(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    first = make_entity(50, 200)
    server.entities.append(first)
    source = make_source()
    batch = source.poll("150")
    assert ids(batch.records) == [entity_id(first)]
    assert batch.cursor == "200"

    # More liquidations at 200 (ids sorting before and after the first), enough to need
    # several pages, and one later.
    late = [make_entity(n, 200) for n in (1, 2, 60, 61, 62, 63, 64)] + [make_entity(70, 201)]
    add(server, late)
    seen = set(ids(batch.records))
    new = [record.id for record in source.poll(batch.cursor).records if record.id not in seen]
    assert sorted(new) == sorted(entity_id(e) for e in late)


def test_a_page_count_that_is_an_exact_multiple_ends_on_an_empty_page(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    entities = [make_entity(n, 100 + n) for n in range(1, 11)]
    add(server, entities)
    batch = make_source().poll("100")
    assert sorted(ids(batch.records)) == sorted(entity_id(e) for e in entities)
    assert batch.cursor == "110"
    assert len(server.requests) == 3


def test_an_empty_poll_keeps_the_cursor(make_source: MakeSource) -> None:
    batch = make_source().poll("1234")
    assert batch.records == ()
    assert batch.cursor == "1234"
    assert batch.cold is False


def test_max_pages_stops_with_a_cursor_that_loses_nothing(
    server: FakeSubgraph, make_source: MakeSource, caplog: pytest.LogCaptureFixture
) -> None:
    entities = [make_entity(n, 100 + n) for n in range(1, 13)]
    add(server, entities)
    source = make_source(max_pages=2)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        first = source.poll("100")
    assert len(first.records) == 10
    assert first.cursor == "110"
    assert any("max_pages=2" in message for message in caplog.messages)
    second = source.poll(first.cursor)
    got = set(ids(first.records)) | set(ids(second.records))
    assert got == {entity_id(e) for e in entities}
    assert second.cursor == "112"


def test_more_than_the_skip_limit_at_one_timestamp_fails(make_source: MakeSource) -> None:
    def page(variables: dict[str, Any]) -> object:
        rows = [make_entity(variables["skip"] + i, 500) for i in range(variables["first"])]
        return {"data": {"liquidationCalls": rows}}

    with mock_client(page) as client:
        source = make_source(
            url="https://subgraph.test/x", http=client, poll_limit=1000, max_pages=10
        )
        with pytest.raises(SubgraphError, match=f"more than {MAX_SKIP} liquidations share"):
            source.poll("500")
        assert source.stats.pages == 6


def test_an_answer_out_of_ascending_order_fails(make_source: MakeSource) -> None:
    def page(variables: dict[str, Any]) -> object:
        return {"data": {"liquidationCalls": [make_entity(1, 300), make_entity(2, 200)]}}

    with mock_client(page) as client:
        source = make_source(url="https://subgraph.test/x", http=client)
        with pytest.raises(SubgraphError, match="ascending"):
            source.poll("100")


@pytest.mark.parametrize("cursor", ["abc", "-1", "", "1.5"])
def test_a_cursor_that_is_not_a_timestamp_fails(make_source: MakeSource, cursor: str) -> None:
    with pytest.raises(SubgraphError, match="cursor"):
        make_source().poll(cursor)


# --- retries and failures ----------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_failures_twice_then_success_are_retried_with_growing_delays(
    server: FakeSubgraph, make_source: MakeSource, fake_time: FakeTime, status: int
) -> None:
    server.entities.append(make_entity(1, 100))
    server.fail_next(2, status=status)
    source = make_source()
    batch = source.poll(None)
    assert len(batch.records) == 1
    assert len(server.requests) == 3
    first, second = fake_time.sleeps
    assert 0.15 <= first <= 0.165
    assert 0.3 <= second <= 0.33
    stats = source.stats
    assert (stats.retries, stats.requests_failed, stats.requests_ok) == (2, 2, 1)
    assert stats.consecutive_failures == 0
    assert stats.last_success == fake_time.now


def test_every_attempt_failing_ends_in_subgraph_error(
    server: FakeSubgraph, make_source: MakeSource, fake_time: FakeTime
) -> None:
    server.fail_next(3, status=502)
    source = make_source()
    with pytest.raises(SubgraphError, match=r"HTTP 502 \(after 3 attempts\)"):
        source.poll(None)
    assert len(server.requests) == 3
    assert len(fake_time.sleeps) == 2
    assert source.stats.consecutive_failures == 3
    assert source.stats.last_success is None


def test_a_wrong_key_fails_at_once_without_showing_secrets(
    server: FakeSubgraph,
    make_source: MakeSource,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.require_key = "the-right-key"
    source = make_source(api_key=KEY, debug_errors=True)
    with caplog.at_level(logging.DEBUG), pytest.raises(SubgraphError) as raised:
        source.poll(None)
    message = str(raised.value)
    assert "401" in message
    assert KEY not in message
    assert URL_SECRET not in message
    assert len(server.requests) == 1
    assert server.requests[0].authorization == f"Bearer {KEY}"
    assert fake_time.sleeps == []
    # Our own logger only: httpx logs full request URLs at INFO under "httpx", which the
    # application's logging setup has to keep at WARNING.
    ours = [record.getMessage() for record in caplog.records if record.name == LOGGER]
    assert ours
    assert not any(KEY in m or URL_SECRET in m for m in ours)


def test_the_right_key_is_sent_as_a_bearer_token(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    server.require_key = KEY
    server.entities.append(make_entity(1, 100))
    assert len(make_source(api_key=KEY).poll(None).records) == 1
    assert server.requests[0].authorization == f"Bearer {KEY}"


@pytest.mark.parametrize("status", [400, 403, 404])
def test_other_client_errors_are_not_retried(
    server: FakeSubgraph, make_source: MakeSource, status: int
) -> None:
    server.fail_next(1, status=status)
    with pytest.raises(SubgraphError, match=f"HTTP {status}, not retried"):
        make_source().poll(None)
    assert len(server.requests) == 1


def test_a_garbage_body_is_retried_then_fails(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    server.garbage_next(3)
    with pytest.raises(SubgraphError, match="not JSON"):
        make_source().poll(None)
    assert len(server.requests) == 3


def test_a_garbage_body_once_is_survived(server: FakeSubgraph, make_source: MakeSource) -> None:
    server.entities.append(make_entity(1, 100))
    server.garbage_next(1)
    source = make_source()
    assert len(source.poll(None).records) == 1
    assert source.stats.retries == 1


def test_graphql_errors_are_retried(server: FakeSubgraph, make_source: MakeSource) -> None:
    server.error_next(1, "indexer is behind")
    assert make_source().poll("0").records == ()
    server.error_next(3, "indexer is behind")
    with pytest.raises(SubgraphError, match="GraphQL errors: indexer is behind"):
        make_source().poll("0")


@pytest.mark.parametrize(
    "answer",
    [{"data": {}}, {"data": {"liquidationCalls": {}}}, {"data": None}, [1, 2]],
    ids=["no-field", "not-a-list", "no-data", "not-an-object"],
)
def test_answers_without_a_liquidation_list_are_errors(
    make_source: MakeSource, answer: object
) -> None:
    calls: list[dict[str, Any]] = []

    def reply(variables: dict[str, Any]) -> object:
        calls.append(variables)
        return answer

    with mock_client(reply) as client:
        with pytest.raises(SubgraphError, match="answer"):
            make_source(url="https://subgraph.test/x", http=client).poll(None)
        assert len(calls) == 3


def test_an_unreachable_subgraph_is_a_transport_error(
    make_source: MakeSource, fake_time: FakeTime
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = make_source(url=f"http://127.0.0.1:{port}/api/{URL_SECRET}/x", retries=2)
    with pytest.raises(SubgraphError, match="transport error") as raised:
        source.poll(None)
    assert URL_SECRET not in str(raised.value)
    assert source.stats.requests_failed == 2
    assert len(fake_time.sleeps) == 1


# --- malformed entities ------------------------------------------------------------------


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(entity: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = entity
        for key in parents:
            target = target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set("collateralAmount", "abc"), "collateralAmount"),
        (_set("principalAmount", "-5"), "principalAmount"),
        (_set("id", tx_hash(9)), "id"),
        (_set("id", f"{tx_hash(99)}:3"), "id"),
        (_set("id", f"{tx_hash(9)}:x"), "id"),
        (_set("user", None), "user.id"),
        (_set("principalReserve.underlyingAsset", _DELETE), "principalReserve.underlyingAsset"),
        (_set("timestamp", None), "timestamp"),
        (_set("timestamp", -1), "timestamp"),
        (_set("liquidator", "0x1234"), "liquidator"),
    ],
    ids=[
        "amount-abc",
        "amount-negative",
        "id-without-colon",
        "id-other-hash",
        "id-bad-index",
        "no-user",
        "no-debt-asset",
        "no-timestamp",
        "timestamp-negative",
        "short-address",
    ],
)
def test_a_malformed_entity_fails_the_poll_naming_id_and_field(
    server: FakeSubgraph,
    make_source: MakeSource,
    change: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    good = make_entity(8, 100)
    bad = make_entity(9, 101)
    change(bad)
    server.entities.extend([good, bad])
    source = make_source()
    with pytest.raises(SubgraphError) as raised:
        source.poll(None)
    message = str(raised.value)
    assert repr(bad["id"]) in message
    assert field in message

    # Nothing was returned, so the caller's cursor did not move: once the subgraph is
    # fixed, the same poll reads both.
    server.entities[1] = make_entity(9, 101)
    assert len(source.poll(None).records) == 2


def test_a_malformed_entity_on_a_later_page_fails_the_whole_poll(
    server: FakeSubgraph, make_source: MakeSource
) -> None:
    entities = [make_entity(n, 100 + n) for n in range(1, 9)]
    entities[-1]["collateralAmount"] = "1e18"
    add(server, entities)
    with pytest.raises(SubgraphError, match="collateralAmount"):
        make_source().poll("100")


# --- rate limit ---------------------------------------------------------------------------


def test_the_rate_limiter_sleeps_when_the_bucket_is_empty(
    make_source: MakeSource, fake_time: FakeTime
) -> None:
    source = make_source(rate_capacity=2, rate_interval_s=10.0)
    source.poll(None)
    source.poll(None)
    assert fake_time.sleeps == []
    source.poll(None)
    assert fake_time.sleeps == [10.0]
    assert source.stats.rate_limited_waits == 1
    source.poll(None)
    source.poll(None)
    assert fake_time.sleeps == [10.0, 10.0]
    assert source.stats.rate_limited_waits == 2


def test_the_rate_limiter_refills_as_time_passes(
    make_source: MakeSource, fake_time: FakeTime
) -> None:
    source = make_source(rate_capacity=2, rate_interval_s=10.0)
    source.poll(None)
    source.poll(None)
    fake_time.now += 10.0
    source.poll(None)
    assert fake_time.sleeps == []
    assert source.stats.rate_limited_waits == 0


# --- logging and secrets ------------------------------------------------------------------


def test_debug_errors_logs_query_variables_and_answer(
    server: FakeSubgraph, make_source: MakeSource, caplog: pytest.LogCaptureFixture
) -> None:
    server.garbage_next(1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        make_source(debug_errors=True, api_key=KEY).poll(None)
    text = "\n".join(caplog.messages)
    assert "LatestLiquidations" in text
    assert '"first": 5' in text
    assert "502 Bad Gateway" in text
    assert KEY not in text
    assert URL_SECRET not in text


def test_without_debug_errors_the_query_is_not_logged(
    server: FakeSubgraph, make_source: MakeSource, caplog: pytest.LogCaptureFixture
) -> None:
    server.garbage_next(1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        make_source(api_key=KEY).poll(None)
    text = "\n".join(caplog.messages)
    assert "not JSON" in text
    assert "LatestLiquidations" not in text
    assert "Bad Gateway" not in text
    assert URL_SECRET not in text


def test_settings_repr_hides_the_key_and_the_url_path() -> None:
    settings = SubgraphSettings(
        url=f"https://gateway.thegraph.com/api/{URL_SECRET}/subgraphs/id/abc", api_key=KEY
    )
    shown = repr(settings)
    assert KEY not in shown
    assert URL_SECRET not in shown
    assert "gateway.thegraph.com" in shown
    assert "poll_limit=5" in shown


@pytest.mark.parametrize(
    "overrides",
    [
        {"url": "ftp://x"},
        {"poll_limit": 0},
        {"poll_limit": 1001},
        {"retries": 0},
        {"retry_base_s": -1.0},
        {"rate_capacity": 0},
        {"rate_interval_s": 0.0},
        {"timeout_s": 0.0},
        {"max_pages": 0},
    ],
)
def test_settings_out_of_range_are_rejected(overrides: dict[str, Any]) -> None:
    values: dict[str, Any] = {"url": "https://subgraph.test/x", **overrides}
    with pytest.raises(ValueError, match="subgraph"):
        SubgraphSettings(**values)


# --- ownership of the HTTP client -------------------------------------------------------


def test_the_source_closes_only_the_client_it_made(server: FakeSubgraph) -> None:
    settings = SubgraphSettings(url=server.url)
    with SubgraphSource(settings) as owned:
        assert owned.poll(None).records == ()
    assert owned._http.is_closed
    with httpx.Client() as client:
        SubgraphSource(settings, http=client).close()
        assert not client.is_closed
