"""overlord listen: the readable line, frame handling, option errors (sockets: integration)."""

from __future__ import annotations

import pytest
import zmq
from typer.testing import CliRunner

from overlord.cli import app
from overlord.outputs.events import EventDecodeError, UnderwaterUserEvent, encode_event
from overlord.outputs.listen import describe, format_wad, open_consumer, payload_of, receive
from tests.unit.outputs.samples import TX_HASH, UINT256_MAX, USER, sample_event


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0.0"),
        (10**18, "1.0"),
        (937_500_000_000_000_000, "0.9375"),
        (1, "0.000000000000000001"),
        (123 * 10**18 + 4, "123.000000000000000004"),
        (UINT256_MAX, "max"),
    ],
)
def test_format_wad_is_exact(value: int, text: str) -> None:
    assert format_wad(value) == text


def test_describe_shows_user_health_factor_amounts_trigger_and_plan() -> None:
    line = describe(sample_event())
    assert line == (
        f"block 21000000 {USER} hf 0.9375 collateral 1250000000000 debt 1100000000000 base, "
        f"trace trace0001 tx {TX_HASH} for block 21000001; plan: repay 11000000000 USDC "
        "(debtToCover max) for 4620000000000000000 WETH (fee 12345), "
        "gross profit 55000000000 base, net 53122500000 base"
    )


def test_describe_without_trigger_or_plan() -> None:
    line = describe(sample_event(pending=False, plan=False))
    assert " tx " not in line
    assert line.endswith("plan: none liquidatable now")


@pytest.mark.parametrize(
    ("frames", "topic_frame", "payload"),
    [([b"p"], False, b"p"), ([b"topic", b"p"], True, b"p")],
)
def test_payload_is_the_last_frame(frames: list[bytes], topic_frame: bool, payload: bytes) -> None:
    assert payload_of(frames, topic_frame=topic_frame) == payload


@pytest.mark.parametrize(
    ("frames", "topic_frame"), [([b"a", b"b"], False), ([b"p"], True), ([], False)]
)
def test_a_wrong_frame_count_is_malformed(frames: list[bytes], topic_frame: bool) -> None:
    with pytest.raises(EventDecodeError, match="frame"):
        payload_of(frames, topic_frame=topic_frame)


def test_topic_without_pub_is_bad_input() -> None:
    result = CliRunner().invoke(app, ["listen", "--topic", "x", "--count", "1"])
    assert result.exit_code == 2
    assert "--topic needs --pub" in result.output


def test_an_unusable_endpoint_is_bad_input() -> None:
    result = CliRunner().invoke(app, ["listen", "--endpoint", "bogus://x", "--count", "1"])
    assert result.exit_code == 2
    assert "cannot listen on bogus://x" in result.output


def test_listen_is_documented_in_the_help() -> None:
    result = CliRunner().invoke(app, ["listen", "--help"])
    assert result.exit_code == 0
    for option in ("--endpoint", "--pub", "--topic", "--count", "--json"):
        assert option in result.output


def test_receive_counts_malformed_messages_and_stops_at_count() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pusher = context.socket(zmq.PUSH)
    puller = open_consumer(context, "inproc://receive")  # inproc: connect may precede bind
    try:
        pusher.bind("inproc://receive")
        for message in (b"junk", encode_event(sample_event()), b"never read"):
            pusher.send(message)
        events: list[UnderwaterUserEvent] = []
        reasons: list[str] = []
        stats = receive(
            puller,
            topic_frame=False,
            count=1,
            on_event=events.append,
            on_malformed=reasons.append,
        )
    finally:
        pusher.close(linger=0)
        puller.close(linger=0)
        context.term()
    assert (stats.received, stats.malformed) == (1, 1)
    assert events == [sample_event()]
    assert reasons == ["not valid JSON: JSON is malformed: invalid character (byte 0)"]
