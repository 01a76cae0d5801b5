"""``overlord execute``: the liquidator process.

Consumes the ``UnderwaterUserEvent``s an ``overlord run`` publishes (PULL on its endpoint),
and hands each to an :class:`~overlord.executor.executor.Executor`. The node and market come
from the same configuration as ``overlord run`` (``--rpc-url``/``OVERLORD_RPC_URL``,
``--market``/``--manifest``); the profit settings from ``[profit]`` (``PROFIT_FEE_BPS``,
``PROFIT_MIN_USD``, ``GAS_COST_USD``). The liquidator signs with ``OVERLORD_LIQUIDATOR_KEY``
(environment only) or, with ``--liquidator ADDRESS``, is an account the node unlocks (the
devnet's).
"""

from __future__ import annotations

import logging
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
import zmq

from overlord.chain.market_ref import MarketResolutionError, resolve_market
from overlord.chain.oracle import read_base_currency_unit
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.config import Config, ConfigError, load_config
from overlord.engine.plans import CostModel
from overlord.executor.executor import Executor, ExecutorSettings
from overlord.executor.store import Attempt, AttemptStore, Status
from overlord.executor.submit import (
    LIQUIDATOR_KEY_ENV,
    KeySubmitter,
    NodeAccountSubmitter,
    Submitter,
)
from overlord.logs import configure_logging
from overlord.outputs.events import UnderwaterUserEvent
from overlord.outputs.listen import open_consumer, receive
from overlord.outputs.publisher import default_endpoint

EXIT_BAD_INPUT = 2
NATIVE_SYMBOLS = ("WETH", "WAVAX", "WPOL", "WMATIC", "WBNB", "WXDAI", "WS")
log = logging.getLogger("overlord.execute")


def _fail(message: str) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(EXIT_BAD_INPUT)


def execute_command(
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML configuration file.")
    ] = None,
    rpc_url: Annotated[
        str | None,
        typer.Option("--rpc-url", help="JSON-RPC URL (or OVERLORD_RPC_URL).", show_default=False),
    ] = None,
    market: Annotated[
        str | None, typer.Option("--market", help="Preset name or PoolAddressesProvider.")
    ] = None,
    manifest: Annotated[Path | None, typer.Option("--manifest", help="A devnet manifest.")] = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="The run's event endpoint (default: its ipc:// one)."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory (socket, attempts file).")
    ] = None,
    liquidator: Annotated[
        str | None,
        typer.Option(
            "--liquidator",
            help=f"An account the node unlocks; without it, {LIQUIDATOR_KEY_ENV} signs.",
        ),
    ] = None,
    native_asset: Annotated[
        str | None,
        typer.Option("--native-asset", help="The wrapped native token (gas valuation)."),
    ] = None,
    inclusion_delay: Annotated[
        int, typer.Option("--inclusion-delay", min=0, help="Seconds until inclusion.")
    ] = 12,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Stop after this many events.")
    ] = None,
) -> None:
    """Liquidate the users an **overlord run** announces, and record every attempt.

    Each event's user is re-checked at the latest block with the exact math; the best
    (collateral, debt) pair by net profit is sent as one liquidationCall when its net profit
    reaches PROFIT_MIN_USD. Attempts go to DATA_DIR/executor.sqlite.
    """
    flags = {
        "chain.rpc_url": rpc_url,
        "chain.market": market,
        "chain.manifest": manifest,
        "output.data_dir": data_dir,
    }
    try:
        config = load_config(config_file, os.environ, flags)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if config.chain.rpc_url is None or config.chain.market is None:
        raise _fail("execute needs a node and a market: --rpc-url and --market or --manifest")
    configure_logging(json_lines=config.output.log_json)
    client = JsonRpcClient(config.chain.rpc_url.reveal(), timeout=config.chain.request_timeout_s)
    with client:
        try:
            executor = _executor(config, client, liquidator, native_asset, inclusion_delay)
        except (MarketResolutionError, RpcError, ValueError) as exc:
            raise _fail(str(exc)) from None
        target = endpoint or config.output.zmq_endpoint or default_endpoint(config.output.data_dir)
        _consume(executor, target, count)


def _executor(
    config: Config,
    client: JsonRpcClient,
    liquidator: str | None,
    native_asset: str | None,
    inclusion_delay: int,
) -> Executor:
    assert config.chain.market is not None
    resolved = resolve_market(client, config.chain.market)
    unit = read_base_currency_unit(client, resolved.oracle)
    submitter: Submitter
    if liquidator is not None:
        submitter = NodeAccountSubmitter(client, liquidator)
    else:
        key = os.environ.get(LIQUIDATOR_KEY_ENV)
        if not key:
            raise ValueError(f"no liquidator: give --liquidator or set {LIQUIDATOR_KEY_ENV}")
        submitter = KeySubmitter(client, key)
    native = native_asset or _native_asset(client, resolved.pool)
    if native is None:
        log.warning("no wrapped native reserve: gas valued at GAS_COST_USD")
    profit = config.profit
    settings = ExecutorSettings(
        min_profit_base=int(profit.min_usd * unit),
        costs=CostModel.from_usd(
            fee_bps=profit.fee_bps, gas_cost_usd=profit.gas_cost_usd, base_currency_unit=unit
        ),
        native_asset=native,
        inclusion_delay_s=inclusion_delay,
    )
    config.output.data_dir.mkdir(parents=True, exist_ok=True)
    store = AttemptStore(config.output.data_dir / "executor.sqlite")
    return Executor(client, resolved.pool, submitter, store, settings)


def _native_asset(client: JsonRpcClient, pool: str) -> str | None:
    """The reserve whose symbol names a wrapped native token, if the market has one."""
    head = int(str(client.call("eth_blockNumber")), 16)
    state = MarketReader(client, pool).read_market(head)
    for token in state.tokens.values():
        if token.symbol.upper() in NATIVE_SYMBOLS:
            return token.asset
    return None


def _consume(executor: Executor, endpoint: str, count: int | None) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    totals: dict[Status, int] = {}

    def act(event: UnderwaterUserEvent) -> None:
        attempt = executor.handle(event)
        totals[attempt.status] = totals.get(attempt.status, 0) + 1
        _print(attempt)

    try:
        socket = open_consumer(context, endpoint)
    except zmq.ZMQError as exc:
        raise _fail(f"cannot consume {endpoint}: {exc}") from None
    try:
        receive(
            socket,
            topic_frame=False,
            count=count,
            on_event=act,
            on_malformed=_malformed,
        )
    except KeyboardInterrupt:
        pass
    finally:
        socket.close(linger=0)
        context.term()
        executor.store.close()
    summary = ", ".join(f"{status.value} {n}" for status, n in sorted(totals.items()))
    sys.stderr.write(f"execute: {summary or 'no events'}\n")


def _malformed(reason: str) -> None:
    sys.stderr.write(f"malformed event skipped: {reason}\n")


def _print(attempt: Attempt) -> None:
    realized = attempt.realized_net_base
    net = realized if realized is not None else attempt.estimated_net_base
    shown = "" if net is None else f" net {Decimal(net) / 10**8:,.2f} USD"
    sys.stdout.write(f"{attempt.status.value} {attempt.user}{shown} {attempt.tx_hash or ''}\n")
    sys.stdout.flush()
