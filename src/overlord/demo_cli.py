"""``overlord demo``: detection to realized profit, end to end, on the embedded devnet.

One command: a seeded Aave market on anvil, the engine synced on its users, the executor
(inventory mode, the devnet's liquidator account funded with every debt asset), and a
scripted crash of the ETH, BTC and LINK feeds. The engine's events go over a real ZMQ
socket to the executor on its own thread; a live table shows each detection, its plan and
what the executor did; a summary follows (``--json-summary PATH`` writes it).

Every block is mined 12 s after the previous one, the executor's inclusion delay, so its
plans are sized at the timestamp they execute at.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
import zmq
from rich.console import Console
from rich.live import Live
from rich.table import Table

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet, running_devnet
from overlord.devnet.transactions import Tx, TxSender
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.follower import NodeChain
from overlord.engine.runner import Runner
from overlord.executor.executor import Executor, ExecutorSettings
from overlord.executor.store import Attempt, AttemptStore, Status
from overlord.executor.submit import NodeAccountSubmitter
from overlord.logs import configure_logging
from overlord.outputs.events import UnderwaterUserEvent, decode_event
from overlord.outputs.publisher import EventPublisher

BLOCK_INTERVAL_S = 12
INVENTORY = 10**30
CRASH = {"ETH / USD": 1_200, "BTC / USD": 30_000, "LINK / USD": 5}
BASE_UNIT = Decimal(10**8)  # the devnet's oracle quotes USD with 8 decimals
console = Console()


def demo_command(
    users: Annotated[int, typer.Option("--users", min=1, help="Users to seed.")] = 400,
    protocol: Annotated[str, typer.Option("--protocol", help="3.0.2 or 3.6.0.")] = "3.6.0",
    json_summary: Annotated[
        Path | None, typer.Option("--json-summary", help="Write the summary as JSON here.")
    ] = None,
) -> None:
    """Detect, plan and liquidate on the embedded devnet after a scripted price crash."""
    if protocol not in ("3.0.2", "3.6.0"):
        sys.stderr.write(f"error: --protocol must be 3.0.2 or 3.6.0, not {protocol}\n")
        raise typer.Exit(2)
    configure_logging(json_lines=False, level=logging.WARNING)
    console.print(f"starting the embedded devnet (Aave {protocol}, {users} users)")
    with running_devnet(protocol, users=users, seed=7) as devnet, devnet.client() as rpc:
        rpc.call("anvil_setBlockTimestampInterval", [BLOCK_INTERVAL_S])
        fund_liquidator(devnet, rpc)
        summary = _run(devnet, protocol)
    console.print(_summary_table(summary))
    if json_summary is not None:
        json_summary.write_text(json.dumps(summary, indent=2) + "\n")


def fund_liquidator(devnet: Devnet, rpc: JsonRpcClient) -> None:
    """Inventory mode: mint every reserve's asset to the devnet's liquidator account."""
    manifest = devnet.manifest
    admin, liquidator = manifest.accounts["admin"], manifest.accounts["liquidator"]
    TxSender(rpc).send(
        [
            Tx(admin, r.asset, aave_abi.MINT.encode(liquidator, INVENTORY), f"fund {r.symbol}")
            for r in manifest.reserves
        ]
    )


def set_feed_prices(devnet: Devnet, rpc: JsonRpcClient, dollars: Mapping[str, int]) -> None:
    """Set the devnet's feeds (by name, e.g. ``"ETH / USD"``) to whole-dollar answers."""
    manifest = devnet.manifest
    admin = manifest.accounts["admin"]
    TxSender(rpc).send(
        [
            Tx(admin, manifest.feed(name).address, aave_abi.UPDATE_ANSWER.encode(usd * 10**8), name)
            for name, usd in dollars.items()
        ]
    )


def _run(devnet: Devnet, protocol: str) -> dict[str, Any]:
    manifest = devnet.manifest
    with (
        tempfile.TemporaryDirectory() as folder,
        devnet.client() as rpc,
        devnet.client() as executor_rpc,
    ):
        endpoint = f"ipc://{folder}/events.ipc"
        attempts: list[Attempt] = []
        detections: list[UnderwaterUserEvent] = []
        store = AttemptStore(Path(folder) / "executor.sqlite")
        executor = Executor(
            executor_rpc,
            manifest.pool,
            NodeAccountSubmitter(executor_rpc, manifest.accounts["liquidator"]),
            store,
            ExecutorSettings(
                min_profit_base=0,
                native_asset=manifest.reserve("WETH").asset,
                inclusion_delay_s=BLOCK_INTERVAL_S,
            ),
        )
        with EventPublisher(endpoint, send_timeout_ms=5_000) as publisher:
            engine = Engine(rpc, manifest.pool, EngineSettings(), client_factory=devnet.client)
            runner = Runner(engine, manifest.chain_id, publisher, on_event=detections.append)
            head = NodeChain(rpc).latest()
            console.print("syncing the engine on every user")
            runner.start(devnet.users, head.number, block_hash=head.block_hash)
            before = len(detections)
            context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            done = threading.Event()
            consumer = threading.Thread(
                target=_consume, args=(context, endpoint, executor, attempts, done), daemon=True
            )
            consumer.start()
            console.print("crash: " + ", ".join(f"{k} -> {v:,}" for k, v in CRASH.items()))
            set_feed_prices(devnet, rpc, CRASH)
            crashed = detections[before:]
            with Live(_table(crashed, attempts), console=console, refresh_per_second=8) as live:
                runner.process(NodeChain(rpc).latest().number)
                crashed = detections[before:]
                while len(attempts) < len(crashed):
                    live.update(_table(crashed, attempts))
                    done.wait(0.1)
                live.update(_table(crashed, attempts))
            done.set()
            consumer.join(timeout=5)
            context.term()
        store.close()
        return _summary(protocol, crashed, attempts)


def _consume(
    context: zmq.Context[zmq.Socket[bytes]],
    endpoint: str,
    executor: Executor,
    attempts: list[Attempt],
    done: threading.Event,
) -> None:
    """The executor's side: pull events, act on each (its own thread and RPC client)."""
    socket = context.socket(zmq.PULL)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    try:
        while not done.is_set():
            if socket.poll(100):
                attempts.append(executor.handle(decode_event(socket.recv())))
    finally:
        socket.close()


def _usd(base: int | None, grouping: str = ",") -> str:
    return "" if base is None else f"{Decimal(base) / BASE_UNIT:{grouping}.2f}"


def _table(events: list[UnderwaterUserEvent], attempts: list[Attempt]) -> Table:
    table = Table(title="detections, plans, executions")
    for column in ("user", "HF", "plan", "est. net $", "status", "realized net $"):
        table.add_column(column, justify="right" if "$" in column or column == "HF" else "left")
    done = {a.event_id: a for a in attempts}
    for event in events[-25:]:
        plan = event.liquidation_plan
        attempt = done.get(event.event_id)
        table.add_row(
            event.address[:10] + "…",
            f"{event.user_account_data.health_factor / 10**18:.4f}",
            f"{plan.collateral_symbol}/{plan.debt_symbol}" if plan else "none",
            _usd(plan.estimated_net_profit_base) if plan else "",
            attempt.status.value if attempt else "…",
            _usd(attempt.realized_net_base) if attempt else "",
        )
    return table


def _summary(
    protocol: str, events: list[UnderwaterUserEvent], attempts: list[Attempt]
) -> dict[str, Any]:
    executed = [a for a in attempts if a.status is Status.EXECUTED]
    return {
        "protocol": protocol,
        "detected": len(events),
        "executed": len(executed),
        "reverted": sum(a.status is Status.REVERTED for a in attempts),
        "failed": sum(a.status is Status.FAILED for a in attempts),
        "skipped": sum(a.status.value.startswith("skipped") for a in attempts),
        "estimated_net_usd": _usd(sum(a.estimated_net_base or 0 for a in executed), ""),
        "realized_net_usd": _usd(sum(a.realized_net_base or 0 for a in executed), ""),
    }


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="summary")
    table.add_column("")
    table.add_column("", justify="right")
    for key, value in summary.items():
        table.add_row(key, str(value))
    return table
