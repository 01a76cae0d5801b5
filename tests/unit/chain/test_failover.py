"""Failover over several JSON-RPC endpoints, against real HTTP servers on loopback.

Time is a :class:`FakeTime` (clock and sleep) and jitter a seeded ``random.Random``, so
nothing sleeps for real except the slow server's 0.2 s timeout.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from overlord.chain.failover import (
    HEAD_MEMORY_S,
    EndpointPool,
    FailoverClient,
    FailoverSettings,
)
from overlord.chain.rpc import (
    JsonRpcClient,
    RpcError,
    RpcMalformedError,
    RpcTransportError,
)
from tests.unit.chain.rpc_server import SECRET, FakeRpcServer, Mode

TIMEOUT_S = 0.2


class FakeTime:
    """A clock that only moves when slept on or told to."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def nodes() -> Iterator[tuple[FakeRpcServer, FakeRpcServer]]:
    with FakeRpcServer(head=1000) as first, FakeRpcServer(head=1001) as second:
        yield first, second


def make_pool(
    nodes: tuple[FakeRpcServer, ...], fake_time: FakeTime, **settings: Any
) -> EndpointPool:
    return EndpointPool(
        [node.url for node in nodes],
        FailoverSettings(**{"timeout_s": TIMEOUT_S, **settings}),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        rng=random.Random(1),
    )


# The single-endpoint client's errors, which failover decides on.


@pytest.mark.parametrize(
    ("mode", "requests"),
    [
        (Mode.GARBAGE, [("eth_chainId", [])]),
        (Mode.TRUNCATED, [("eth_chainId", [])]),
        (Mode.TRUNCATED, [("eth_chainId", []), ("eth_chainId", [])]),
        (Mode.MISSING_ID, [("eth_chainId", []), ("eth_chainId", [])]),
        (Mode.NOT_A_BATCH, [("eth_chainId", []), ("eth_chainId", [])]),
        (Mode.NOT_AN_OBJECT, [("eth_chainId", [])]),
        (Mode.NO_RESULT, [("eth_chainId", [])]),
    ],
)
def test_an_answer_that_is_not_json_rpc_is_a_malformed_error(
    mode: Mode, requests: list[tuple[str, list[Any]]]
) -> None:
    with FakeRpcServer() as node, JsonRpcClient(node.url, timeout=TIMEOUT_S) as client:
        node.mode = mode
        send = client.call if len(requests) == 1 else client.batch_answers
        argument: Any = requests[0][0] if len(requests) == 1 else requests
        with pytest.raises(RpcMalformedError):
            send(argument)


def test_a_node_error_answer_stays_a_plain_rpc_error_with_its_code() -> None:
    with FakeRpcServer() as node, JsonRpcClient(node.url, timeout=TIMEOUT_S) as client:
        node.mode = Mode.REVERTED
        with pytest.raises(RpcError) as caught:
            client.call("eth_call", [{}, "latest"])
    assert type(caught.value) is RpcError
    assert caught.value.code == 3
    assert caught.value.message == "execution reverted"


def test_a_429_carries_its_status_and_retry_after() -> None:
    with FakeRpcServer() as node, JsonRpcClient(node.url, timeout=TIMEOUT_S) as client:
        node.mode = Mode.HTTP_429
        node.retry_after = "2.5"
        with pytest.raises(RpcTransportError) as caught:
            client.call("eth_chainId")
    assert caught.value.status == 429
    assert caught.value.retry_after_s == 2.5


# Failover.


@pytest.mark.parametrize(
    "mode",
    [
        Mode.HTTP_500,
        Mode.HTTP_429,
        Mode.GARBAGE,
        Mode.TRUNCATED,
        Mode.NOT_AN_OBJECT,
        Mode.NO_RESULT,
        Mode.HEADER_NOT_FOUND,
        Mode.BAD_HEAD,
        Mode.SLOW,
    ],
)
def test_a_failing_endpoint_fails_over_to_the_healthy_one(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime, mode: Mode
) -> None:
    first, second = nodes
    first.mode = mode
    pool = make_pool(nodes, fake_time)
    with pool.client() as client:
        block = client.call("eth_blockNumber")
    assert block == hex(1001)
    assert (first.requests, second.requests) == (1, 1)
    assert (pool.failovers, pool.retries) == (1, 1)
    failed, answered = pool.health()
    assert (failed.failures, failed.successes, failed.cooling) == (1, 0, True)
    assert failed.last_error is not None
    assert (answered.failures, answered.successes, answered.cooling) == (0, 1, False)


def test_a_batch_missing_an_id_fails_over_as_a_whole(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    first, second = nodes
    first.mode = Mode.MISSING_ID
    pool = make_pool(nodes, fake_time)
    with pool.client() as client:
        results = client.batch([("eth_blockNumber", []), ("eth_chainId", [])])
    assert results == [hex(1001), "0x1"]
    assert (first.requests, second.requests) == (1, 1)
    assert pool.failovers == 1


def test_every_batch_chunk_fails_over_on_its_own(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    first, second = nodes
    pool = make_pool(nodes, fake_time, max_batch=2)
    with pool.client() as client:
        answers = client.batch_answers([("eth_chainId", [])] * 2)
        first.mode = Mode.HTTP_500
        answers += client.batch_answers([("eth_chainId", [])] * 3)
    assert [answer["result"] for answer in answers] == ["0x1"] * 5
    assert (first.requests, second.requests) == (2, 2)


def test_execution_reverted_is_raised_at_once_and_the_endpoint_stays_healthy(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    first, second = nodes
    first.mode = Mode.REVERTED
    pool = make_pool(nodes, fake_time)
    with pool.client() as client, pytest.raises(RpcError) as caught:
        client.call("eth_call", [{}, "latest"])
    assert type(caught.value) is RpcError
    assert caught.value.code == 3
    assert (first.requests, second.requests) == (1, 0)
    assert (pool.failovers, pool.retries) == (0, 0)
    reverted = pool.health()[0]
    assert (reverted.successes, reverted.failures, reverted.cooling) == (1, 0, False)


def test_error_answers_inside_a_batch_are_answers_not_failures(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    first, second = nodes
    first.mode = Mode.HEADER_NOT_FOUND
    pool = make_pool(nodes, fake_time)
    with pool.client() as client:
        answers = client.batch_answers([("eth_call", [{}, "0x10"])] * 2)
    assert [answer["error"]["message"] for answer in answers] == ["header not found"] * 2
    assert second.requests == 0
    assert pool.health()[0].failures == 0


def test_a_cooling_endpoint_is_skipped_then_tried_again_after_its_cooldown(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    first, second = nodes
    pool = make_pool(nodes, fake_time, cooldown_s=5.0)
    first.mode = Mode.HTTP_500
    with pool.client() as client:
        client.call("eth_chainId")
        first.mode = Mode.OK  # recovered, but still sitting out
        client.call("eth_chainId")
        assert (first.requests, second.requests) == (1, 2)
        assert pool.health()[0].cooling_for_s == pytest.approx(5.0 - sum(fake_time.sleeps))

        fake_time.now = 5.0
        second.mode = Mode.HTTP_500
        assert client.call("eth_blockNumber") == hex(1000)
    assert (first.requests, second.requests) == (2, 3)
    assert [endpoint.cooling for endpoint in pool.health()] == [False, True]


def test_the_cooldown_doubles_on_consecutive_failures_up_to_the_maximum(
    fake_time: FakeTime,
) -> None:
    with FakeRpcServer() as node:
        node.mode = Mode.HTTP_500
        pool = make_pool((node,), fake_time, attempts=1, cooldown_s=5.0, max_cooldown_s=12.0)
        cooldowns = []
        with pool.client() as client:
            for _ in range(4):
                with pytest.raises(RpcTransportError):
                    client.call("eth_chainId")
                cooldowns.append(pool.health()[0].cooling_for_s)
                fake_time.now += cooldowns[-1]
            node.mode = Mode.OK
            client.call("eth_chainId")
            node.mode = Mode.HTTP_500
            with pytest.raises(RpcTransportError):
                client.call("eth_chainId")
            cooldowns.append(pool.health()[0].cooling_for_s)
    assert cooldowns == [5.0, 10.0, 12.0, 12.0, 5.0]  # a success starts over
    assert node.requests == 6


@pytest.mark.parametrize(("retry_after", "cooldown"), [("7", 7.0), ("3600", 60.0), ("soon", 5.0)])
def test_a_429_sits_out_for_its_retry_after_within_the_maximum_cooldown(
    nodes: tuple[FakeRpcServer, FakeRpcServer],
    fake_time: FakeTime,
    retry_after: str,
    cooldown: float,
) -> None:
    first, _second = nodes
    first.mode = Mode.HTTP_429
    first.retry_after = retry_after
    pool = make_pool(nodes, fake_time, cooldown_s=5.0, max_cooldown_s=60.0)
    with pool.client() as client:
        client.call("eth_chainId")
    assert pool.health()[0].cooling_for_s == pytest.approx(cooldown - sum(fake_time.sleeps))


def test_when_every_endpoint_cools_the_one_cooling_shortest_is_tried(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    first, second = nodes
    first.mode = second.mode = Mode.HTTP_500
    pool = make_pool(nodes, fake_time, attempts=1, cooldown_s=5.0)
    with pool.client() as client:
        with pytest.raises(RpcTransportError):
            client.call("eth_chainId")
        fake_time.now += 1.0
        with pytest.raises(RpcTransportError):
            client.call("eth_chainId")
        assert all(endpoint.cooling for endpoint in pool.health())
        first.mode = second.mode = Mode.OK
        assert client.call("eth_blockNumber") == hex(1000)
    assert (first.requests, second.requests) == (2, 1)


def test_when_every_try_fails_the_error_says_how_many_endpoints_and_hides_the_key(
    nodes: tuple[FakeRpcServer, FakeRpcServer],
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = nodes
    first.mode = second.mode = Mode.HTTP_500
    pool = make_pool(nodes, fake_time, attempts=3)
    with pool.client() as client, pytest.raises(RpcTransportError) as caught:
        client.call("eth_chainId")
    assert "3 tries on 2 endpoints" in str(caught.value)
    assert caught.value.status == 500
    assert first.requests + second.requests == 3
    assert pool.retries == 2
    texts = [str(caught.value), str(caught.value.__cause__), repr(pool.health()), caplog.text]
    texts += [repr(pool), repr(client)]
    assert caplog.text  # the cooldowns were logged...
    assert not [text for text in texts if SECRET in text]  # ...without the key


def test_backoff_sleeps_a_jittered_exponential_drawn_from_the_injected_rng(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    for node in nodes:
        node.mode = Mode.HTTP_500
    pool = EndpointPool(
        [node.url for node in nodes],
        FailoverSettings(timeout_s=TIMEOUT_S, attempts=4, backoff_s=0.1, max_backoff_s=0.3),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        rng=random.Random(42),
    )
    with pool.client() as client, pytest.raises(RpcTransportError):
        client.call("eth_chainId")
    expected = random.Random(42)
    assert fake_time.sleeps == [
        expected.uniform(0, 0.1),
        expected.uniform(0, 0.2),
        expected.uniform(0, 0.3),
    ]


def test_the_rate_limit_makes_requests_wait_on_the_injected_clock(
    fake_time: FakeTime,
) -> None:
    with FakeRpcServer() as node:
        pool = make_pool((node,), fake_time, rate_limit_per_s=2.0)
        with pool.client() as client:
            for _ in range(5):
                client.call("eth_chainId")
    assert fake_time.sleeps == [0.5, 0.5, 0.5]
    assert pool.health()[0].throttled == 3
    assert node.requests == 5


def test_a_lagging_endpoint_ranks_after_a_healthy_one_even_one_that_failed(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    first, second = nodes
    first.head, second.head = 2000, 1000
    pool = make_pool(nodes, fake_time, cooldown_s=5.0, max_lag_blocks=5)
    with pool.client() as client:
        assert client.call("eth_blockNumber") == hex(2000)
        first.mode = Mode.HTTP_500
        assert client.call("eth_blockNumber") == hex(1000)  # the second one lags
        first.mode = Mode.OK
        fake_time.now += 5.0
        assert client.call("eth_chainId") == "0x1"
        assert (first.requests, second.requests) == (3, 1)
        lagging = pool.health()[1]
        assert (lagging.head_block, lagging.lag_blocks, lagging.lagging) == (1000, 1000, True)

        fake_time.now += HEAD_MEMORY_S  # an old head no longer counts
        assert not pool.health()[1].lagging
        client.call("eth_chainId")
    assert (first.requests, second.requests) == (3, 2)


def test_a_retry_goes_to_an_endpoint_not_yet_tried_even_a_lagging_one(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    first, second = nodes
    first.head, second.head = 2000, 1000
    pool = make_pool(nodes, fake_time, cooldown_s=0.0, attempts=2)
    with pool.client() as client:
        client.call("eth_blockNumber")
        first.mode = Mode.HTTP_500
        client.call("eth_blockNumber")
        assert pool.health()[1].lagging
        assert client.call("eth_blockNumber") == hex(1000)
    assert (first.requests, second.requests) == (3, 2)


def test_threads_share_the_pool_each_with_its_own_client(
    nodes: tuple[FakeRpcServer, FakeRpcServer],
) -> None:
    first, second = nodes
    first.mode = Mode.HTTP_500
    sleeps: list[float] = []
    pool = EndpointPool(
        [node.url for node in nodes],
        FailoverSettings(timeout_s=TIMEOUT_S, cooldown_s=60.0),
        sleep=sleeps.append,
        rng=random.Random(3),
    )
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with pool.client() as client:
                for _ in range(25):
                    results.append(client.call("eth_blockNumber"))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [hex(1001)] * 100
    failed, answered = pool.health()
    assert answered.successes == 100
    assert failed.failures == first.requests == pool.failovers == pool.retries
    assert second.requests == 100


# Construction.


def test_the_failover_client_stands_in_for_a_json_rpc_client(
    nodes: tuple[FakeRpcServer, FakeRpcServer], fake_time: FakeTime
) -> None:
    pool = make_pool(nodes, fake_time, max_batch=7)
    with pool.client() as client:
        assert isinstance(client, FailoverClient)
        assert isinstance(client, JsonRpcClient)
        assert client.url == nodes[0].url
        assert client.max_batch == 7
        assert client.batch([("eth_chainId", [])] * 3) == ["0x1"] * 3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_s", 0.0),
        ("attempts", 0),
        ("attempts", 1.5),
        ("backoff_s", -0.1),
        ("max_backoff_s", 0.05),
        ("cooldown_s", float("nan")),
        ("max_cooldown_s", 1.0),
        ("rate_limit_per_s", 0.0),
        ("max_lag_blocks", -1),
        ("max_batch", 0),
    ],
)
def test_settings_out_of_range_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"FailoverSettings.{field} must be"):
        FailoverSettings(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("urls", [[], ["http://a/v2/x", "http://a/v2/x"]])
def test_a_pool_needs_distinct_urls(urls: list[str]) -> None:
    with pytest.raises(ValueError, match="RPC URL"):
        EndpointPool(urls)
