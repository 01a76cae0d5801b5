"""``overlord listen``: connect to an event publisher and print what arrives.

A consumer for operators and scripts, and a reference for writing others: it connects a
PULL socket (or SUB with ``--pub``) to the publisher's endpoint, decodes every message with
:func:`overlord.outputs.events.decode_event` and prints one line per event, or the event as
JSON with ``--json``. A malformed message is reported on stderr with the reason and counted;
it never stops the listener. Stops after ``--count`` events or on Ctrl-C, then prints a
summary on stderr. Exit code 0, or 2 for a bad endpoint or option.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, TextIO

import typer
import zmq

from overlord.aave import MAX_DEBT_TO_COVER
from overlord.outputs.events import (
    EventDecodeError,
    LiquidationPlan,
    UnderwaterUserEvent,
    decode_event,
    encode_event,
)
from overlord.outputs.publisher import DEFAULT_TOPIC, default_endpoint

# The names overlord.config reads for [output] zmq_endpoint and data_dir.
ENDPOINT_ENV: Final = "OVERLORD__OUTPUT__ZMQ_ENDPOINT"
DATA_DIR_ENV: Final = "OVERLORD__OUTPUT__DATA_DIR"
DEFAULT_DATA_DIR: Final = Path("data")
POLL_INTERVAL_MS: Final = 200
"""How long one wait for a message lasts; between waits the loop notices Ctrl-C."""
EXIT_BAD_INPUT: Final = 2
WAD: Final = 10**18
UINT256_MAX: Final = 2**256 - 1


@dataclass(slots=True)
class ListenStats:
    """What a listener saw: events decoded and messages rejected."""

    received: int = 0
    malformed: int = 0


def open_consumer(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, *, subscribe: str | None = None
) -> zmq.Socket[bytes]:
    """A PULL socket (``subscribe`` is ``None``) or a SUB socket subscribed to the topic
    prefix ``subscribe``, connected to ``endpoint``.

    Raises:
        zmq.ZMQError: the endpoint is malformed or its transport unsupported.
    """
    socket = context.socket(zmq.PULL if subscribe is None else zmq.SUB)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        if subscribe is not None:
            socket.setsockopt(zmq.SUBSCRIBE, subscribe.encode())
        socket.connect(endpoint)
    except zmq.ZMQError:
        socket.close(linger=0)
        raise
    return socket


def payload_of(frames: list[bytes], *, topic_frame: bool) -> bytes:
    """The event bytes of one message: ``[payload]`` (PULL) or ``[topic, payload]`` (SUB).

    Raises:
        EventDecodeError: the message has another number of frames.
    """
    expected = 2 if topic_frame else 1
    if len(frames) != expected:
        raise EventDecodeError(f"expected {expected} frame(s), got {len(frames)}")
    return frames[-1]


def receive(
    socket: zmq.Socket[bytes],
    *,
    topic_frame: bool,
    count: int | None,
    on_event: Callable[[UnderwaterUserEvent], None],
    on_malformed: Callable[[str], None],
    stats: ListenStats | None = None,
) -> ListenStats:
    """Decode messages from ``socket`` until ``count`` events (forever if ``None``).

    Malformed messages go to ``on_malformed(reason)`` and are counted, never raised.
    Counts accumulate in ``stats`` (a new one if ``None``), which is also returned, so a
    caller interrupted by ``KeyboardInterrupt`` (propagated) still has them.
    """
    stats = ListenStats() if stats is None else stats
    while count is None or stats.received < count:
        if not socket.poll(POLL_INTERVAL_MS):
            continue
        frames = socket.recv_multipart()
        try:
            event = decode_event(payload_of(frames, topic_frame=topic_frame))
        except EventDecodeError as exc:
            stats.malformed += 1
            on_malformed(str(exc))
            continue
        stats.received += 1
        on_event(event)
    return stats


# The readable line.


def format_wad(value: int) -> str:
    """The exact decimal of a wad value (``1234 * 10**15`` → ``"1.234"``)."""
    if value == UINT256_MAX:
        return "max"
    whole, fraction = divmod(value, WAD)
    digits = f"{fraction:018d}".rstrip("0")
    return f"{whole}.{digits or '0'}"


def _printable(text: str) -> str:
    # Symbols come from the network: keep terminal control sequences out of the output.
    return "".join(char if char.isprintable() else "?" for char in text)


def _describe_plan(plan: LiquidationPlan | None) -> str:
    if plan is None:
        return "plan: none liquidatable now"
    to_cover = "max" if plan.debt_to_cover == MAX_DEBT_TO_COVER else str(plan.debt_to_cover)
    return (
        f"plan: repay {plan.debt_repaid} {_printable(plan.debt_symbol)} "
        f"(debtToCover {to_cover}) for {plan.collateral_received} "
        f"{_printable(plan.collateral_symbol)} (fee {plan.protocol_fee}), "
        f"gross profit {plan.estimated_gross_profit_base} base, "
        f"net {plan.estimated_net_profit_base} base"
    )


def describe(event: UnderwaterUserEvent) -> str:
    """One line: block, user, HF, collateral and debt (base units), trigger and plan."""
    account = event.user_account_data
    trigger = (
        f" tx {event.tx_hash} for block {event.inclusion_block}"
        if event.tx_hash is not None
        else ""
    )
    return (
        f"block {event.block_number} {event.address} hf {format_wad(account.health_factor)} "
        f"collateral {account.total_collateral_base} debt {account.total_debt_base} base, "
        f"trace {event.trace_id}{trigger}; {_describe_plan(event.liquidation_plan)}"
    )


def _writer(stream: TextIO, as_json: bool) -> Callable[[UnderwaterUserEvent], None]:
    def write(event: UnderwaterUserEvent) -> None:
        line = encode_event(event).decode() if as_json else describe(event)
        stream.write(line + "\n")
        stream.flush()  # a pipe reader sees each event as it arrives

    return write


def _report_malformed(reason: str) -> None:
    sys.stderr.write(f"malformed message: {reason}\n")
    sys.stderr.flush()


def _run(
    endpoint: str, subscribe: str | None, count: int | None, as_json: bool, stats: ListenStats
) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        socket = open_consumer(context, endpoint, subscribe=subscribe)
        try:
            receive(
                socket,
                topic_frame=subscribe is not None,
                count=count,
                on_event=_writer(sys.stdout, as_json),
                on_malformed=_report_malformed,
                stats=stats,
            )
        finally:
            socket.close(linger=0)
    finally:
        context.term()


def listen_command(
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            envvar=ENDPOINT_ENV,
            show_envvar=True,
            show_default=False,
            help="Publisher endpoint (default: ipc://DATA_DIR/overlord-events.ipc).",
        ),
    ] = None,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir", envvar=DATA_DIR_ENV, show_envvar=True, help="Overlord's data directory."
        ),
    ] = DEFAULT_DATA_DIR,
    pub: Annotated[
        bool, typer.Option("--pub", help="Subscribe to a PUB publisher instead of PULL.")
    ] = False,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic",
            show_default=False,
            help=f"With --pub: topic prefix to subscribe to (default {DEFAULT_TOPIC}).",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, help="Stop after this many events (default: never)."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print each event as its wire JSON, one per line."),
    ] = False,
) -> None:
    """Print the **UnderwaterUserEvent**s an Overlord publisher sends.

    Connects (PULL, or SUB with --pub) to the endpoint and prints one line per event: user,
    health factor, collateral and debt in base-currency units, and the liquidation plan.
    Malformed messages are reported on stderr and skipped. Stops after --count events or
    on Ctrl-C (exit code 0); exit code 2 for a bad endpoint.
    """
    if topic is not None and not pub:
        sys.stderr.write("error: --topic needs --pub\n")
        raise typer.Exit(EXIT_BAD_INPUT)
    target = endpoint or default_endpoint(data_dir)
    subscribe = (DEFAULT_TOPIC if topic is None else topic) if pub else None
    stats = ListenStats()
    try:
        _run(target, subscribe, count, as_json, stats)
    except zmq.ZMQError as exc:
        sys.stderr.write(f"error: cannot listen on {target}: {exc}\n")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except KeyboardInterrupt:
        pass  # Ctrl-C is how an open-ended listen ends
    sys.stderr.write(f"listen: {stats.received} events, {stats.malformed} malformed\n")
