"""``overlord run``: the engine against a node, or against the embedded local chain.

With an RPC URL (``--rpc-url`` or ``OVERLORD_RPC_URL``) and a market (``--market`` preset
or provider address, ``--manifest``, ``--pool-addresses-provider``), it syncs the market's
users (an addresses file and/or a backfill of the Pool's events), then follows the chain
live (:mod:`overlord.engine.live`: WebSocket subscriptions with ``--ws-url`` /
``OVERLORD_WS_URL``, else HTTP polling; reorgs rolled back; pending oracle updates on
their own thread) until Ctrl-C or ``--blocks``. With no RPC URL it starts the embedded
devnet (a seeded Aave 3.6.0 market), follows it over its WebSocket and drives it through
a scenario with a price crash, showing detections live.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from overlord.chain.failover import EndpointPool, FailoverSettings
from overlord.chain.market_ref import MarketResolutionError, ResolvedMarket, resolve_market
from overlord.chain.oracle import read_base_currency_unit
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.chain.ws import ws_url_for
from overlord.config import Config, ConfigError, load_config
from overlord.engine.engine import BlockReport, Engine, EngineSettings
from overlord.engine.follower import Head, NodeChain
from overlord.engine.live import LiveIngest, LiveSettings
from overlord.engine.plans import CostModel
from overlord.engine.runner import Runner
from overlord.engine.scout import PriceScout
from overlord.engine.store import ENGINE_DB, EngineStore, EngineStoreError
from overlord.engine.warm import WarmStart, warm_start
from overlord.feeds.sources import discover_feeds, load_feed_overrides, merge
from overlord.logs import configure_logging
from overlord.outputs.events import UnderwaterUserEvent
from overlord.outputs.publisher import (
    EndpointError,
    EventPublisher,
    PublisherError,
    SocketKind,
    default_endpoint,
)
from overlord.reload import ConfigReloader
from overlord.run_services import RunServices
from overlord.verify import discover_users, load_addresses_file

EXIT_BAD_INPUT = 2
RECONNECT_GRACE_S = 1.0
console = Console(stderr=False)
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    errors.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


def run_command(
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML configuration file.")
    ] = None,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url",
            help="JSON-RPC URL (or OVERLORD_RPC_URL); none: the embedded devnet.",
            show_default=False,
        ),
    ] = None,
    ws_url: Annotated[
        str | None,
        typer.Option(
            "--ws-url",
            help="WebSocket URL (or OVERLORD_WS_URL) for pushed heads; none: HTTP polling.",
            show_default=False,
        ),
    ] = None,
    market: Annotated[
        str | None,
        typer.Option(
            "--market", help="Preset name (ethereum, base, ...) or PoolAddressesProvider address."
        ),
    ] = None,
    manifest: Annotated[Path | None, typer.Option("--manifest", help="A devnet manifest.")] = None,
    provider: Annotated[
        str | None, typer.Option("--pool-addresses-provider", help="PoolAddressesProvider address.")
    ] = None,
    addresses: Annotated[
        Path | None,
        typer.Option("--addresses", help="Users, one address per line (or VEGA_ADDRESSES_FILE)."),
    ] = None,
    from_block: Annotated[
        int | None, typer.Option("--from-block", min=0, help="First block of the users backfill.")
    ] = None,
    buckets: Annotated[
        int | None,
        typer.Option("--buckets", min=1, help="Concurrent read batches during the sync."),
    ] = None,
    zmq_endpoint: Annotated[
        str | None,
        typer.Option(
            "--zmq-endpoint", help="Where to publish events (default ipc:// in the data dir)."
        ),
    ] = None,
    zmq_mode: Annotated[
        str | None, typer.Option("--zmq-mode", help="push (default) or pub.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory (events socket, traces).")
    ] = None,
    min_collateral: Annotated[
        int | None,
        typer.Option(
            "--min-collateral-base", min=0, help="Ignore users with less collateral (base units)."
        ),
    ] = None,
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--no-log-json", help="One JSON object per log line.")
    ] = None,
    blocks: Annotated[
        int | None, typer.Option("--blocks", min=0, help="Stop after this many new blocks.")
    ] = None,
    users: Annotated[
        int, typer.Option("--users", min=1, help="Embedded devnet: users to seed.")
    ] = 1000,
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="Embedded devnet: scenario steps.")
    ] = 40,
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port",
            min=0,
            max=65535,
            help="Port of /metrics, /health, /ready (or METRICS_PORT; 0: any free port).",
        ),
    ] = None,
) -> None:
    """Find every liquidatable borrower, block by block, with exact numbers.

    Publishes an UnderwaterUserEvent (with the best liquidation, sized exactly) over ZMQ for
    each user who becomes liquidatable, writes hf-traces and the initial-scan file, and logs
    one line per block. Without an RPC URL it runs the embedded local chain with a scenario.
    """
    flags = {
        "chain.rpc_url": rpc_url,
        "chain.ws_url": ws_url,
        "chain.market": market,
        "chain.manifest": manifest,
        "chain.pool_addresses_provider": provider,
        "users.addresses_file": addresses,
        "users.from_block": from_block,
        "chain.buckets": buckets,
        "output.zmq_endpoint": zmq_endpoint,
        "output.zmq_mode": zmq_mode,
        "output.data_dir": data_dir,
        "detection.min_collateral_base": min_collateral,
        "output.log_json": log_json,
        "http.port": http_port,
    }
    try:
        config = load_config(config_file, os.environ, flags)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if config.chain.rpc_url is None:
        # The embedded run is watched by a person: the console view, logs only for problems.
        configure_logging(json_lines=config.output.log_json, level=logging.WARNING)
        _run_embedded(config, users, steps)
        return
    configure_logging(json_lines=config.output.log_json)
    _run_node(config, blocks, config_file, flags)


def _settings(config: Config) -> EngineSettings:
    return EngineSettings(
        min_collateral_base=max(
            config.detection.min_collateral_base, config.detection.min_reportable_collateral_base
        ),
        reannounce_interval=int(config.detection.reannounce_interval_s),
        batch_size=config.chain.batch_size,
        buckets=config.chain.buckets,
    )


def _publisher(config: Config) -> EventPublisher:
    output = config.output
    output.data_dir.mkdir(parents=True, exist_ok=True)
    endpoint = output.zmq_endpoint or default_endpoint(output.data_dir)
    kind = SocketKind(output.zmq_mode.value)
    if output.zmq_topic:
        return EventPublisher(endpoint, kind=kind, topic=output.zmq_topic)
    return EventPublisher(endpoint, kind=kind)


def _output_dir(config: Config) -> Path:
    directory = config.output.temp_output_dir or config.output.data_dir / "output"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _listed(config: Config) -> list[str]:
    """The addresses file's users (problems shown as warnings), or none."""
    if config.users.addresses_file is None:
        return []
    listed, problems = load_addresses_file(config.users.addresses_file)
    for problem in problems:
        errors.print(
            f"warning: {config.users.addresses_file}: {problem}", soft_wrap=True, highlight=False
        )
    return listed


def _users(config: Config, client: JsonRpcClient, resolved: ResolvedMarket, head: int) -> list[str]:
    listed = _listed(config)
    start = (
        config.users.from_block
        if config.users.from_block is not None
        else resolved.deployment_block
    )
    if config.users.backfill and start is not None:
        listed += discover_users(client, resolved.pool, start, head)
    elif not listed:
        raise _fail(
            "no users: give --addresses, or --from-block for a backfill of the Pool's events"
        )
    return list(dict.fromkeys(address.lower() for address in listed))


def _engine_store(config: Config, pool: str, chain_id: int, *, fresh: bool) -> EngineStore | None:
    """The checkpoint file (``None`` when ``[state] enabled = false``); ``fresh`` starts it
    anew (the embedded devnet is a new chain every run). A data directory that cannot
    hold it (read-only, full, another market's file) is bad input."""
    if not config.state.enabled:
        return None
    path = config.output.data_dir / ENGINE_DB
    try:
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return EngineStore(path, pool=pool, chain_id=chain_id)
    except (EngineStoreError, OSError) as exc:
        raise _fail(f"engine state: {exc}") from None


def _start(
    runner: Runner,
    config: Config,
    client: JsonRpcClient,
    resolved: ResolvedMarket,
    head: Head,
) -> tuple[list[str], WarmStart | None]:
    """Resume from the checkpoint when there is one, else discover the users and sync them
    all; the users the run starts with, and the warm restart if it was one."""
    engine = runner.engine
    if engine.store is not None and engine.store.checkpoint() is not None:
        try:
            warm = warm_start(runner, head, NodeChain(client), _listed(config))
        except EngineStoreError as exc:
            raise _fail(f"engine state: {exc}") from None
        if warm is not None:
            _show_warm(warm)
            return list(engine.table.addresses), warm
    users = _users(config, client, resolved, head.number)
    console.print(
        f"{resolved.name}: Pool {resolved.pool}, {len(users)} users from block {head.number}",
        highlight=False,
    )
    _sync(runner, users, head)
    return users, None


def _show_warm(warm: WarmStart) -> None:
    reorg = ""
    if warm.orphaned_blocks or warm.beyond_history:
        reorg = f"; a reorg while down: {warm.orphaned_blocks} saved blocks rolled back" + (
            ", every user read again" if warm.beyond_history else ""
        )
    console.print(
        f"warm restart: {warm.checkpoint.users} users from the checkpoint at block "
        f"{warm.checkpoint.block} loaded in {warm.load_s:.2f} s; caught up "
        f"{warm.caught_up_blocks} blocks ({warm.report.touched} users re-read) in "
        f"{warm.catch_up_s:.2f} s{reorg}; {len(warm.report.underwater)} underwater at block "
        f"{warm.report.block_number}",
        highlight=False,
    )


def _verify_restart(services: RunServices, count: int) -> None:
    """Check a sample of the restored users against the Pool before going live; a user
    that differs is read again at the next block."""
    checked, wrong = services.verify_now(count)
    if not checked:
        return
    line = (
        f"restart verified: {checked} random users equal getUserAccountData"
        if not wrong
        else f"restart check: {len(wrong)} of {checked} users differ from getUserAccountData"
        " (read again at the next block)"
    )
    console.print(line, style="red" if wrong else None, highlight=False)
    if wrong and services.engine is not None:
        services.engine.reread_next(wrong)


def _endpoints(config: Config) -> EndpointPool:
    """Every configured node behind one health-scored pool (one per process)."""
    chain = config.chain
    assert chain.rpc_url is not None
    urls = [chain.rpc_url.reveal(), *(url.reveal() for url in chain.fallback_rpc_urls)]
    try:
        return EndpointPool(
            list(dict.fromkeys(urls)),
            FailoverSettings(
                timeout_s=chain.request_timeout_s,
                attempts=chain.rpc_attempts,
                rate_limit_per_s=chain.rpc_rate_limit_per_s or None,
            ),
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _run_node(
    config: Config, blocks: int | None, config_file: Path | None, flags: Mapping[str, object]
) -> None:
    if config.chain.rpc_url is None or config.chain.market is None:
        raise _fail("an RPC URL needs a market: --market, --manifest or --pool-addresses-provider")
    endpoints = _endpoints(config)
    new_client: Callable[[], JsonRpcClient] = endpoints.client

    with ExitStack() as stack:
        client = stack.enter_context(new_client())
        try:
            resolved = resolve_market(client, config.chain.market)
            head = NodeChain(client).latest()
        except (MarketResolutionError, RpcError, OSError) as exc:
            raise _fail(str(exc)) from None
        store = _engine_store(config, resolved.pool, resolved.chain_id, fresh=False)
        if store is not None:
            stack.callback(store.close)
        engine = Engine(
            client, resolved.pool, _settings(config), client_factory=new_client, store=store
        )
        unit = _base_currency_unit(client, resolved.oracle)
        services = stack.enter_context(
            _services(config, resolved.pool, new_client, unit, endpoints)
        )
        _show_endpoints(services)
        runner = Runner(
            engine,
            resolved.chain_id,
            stack.enter_context(_publisher(config)),
            _output_dir(config),
            on_event=_both(_show_event, services.on_event),
            costs=_costs(config, unit),
        )
        if runner.publisher is not None:
            # The first block announces everyone underwater at once: give a restarted
            # executor's socket a moment to reconnect first (PUSH drops what no one takes).
            runner.publisher.wait_for_consumer(RECONNECT_GRACE_S)
        try:
            users, warm = _start(runner, config, client, resolved, head)
        except RpcError as exc:
            raise _fail(str(exc)) from None
        assert engine.last_block is not None
        services.synced(engine, users, engine.last_block, config.output.data_dir)
        if warm is not None:
            _verify_restart(services, config.state.restart_verify_users)
        reloader = ConfigReloader(config_file, flags, config, _reconfigure(runner, services, unit))
        reloader.install_sighup()
        services.add_thread(reloader.start(services.stop_event))
        scout = _scout(runner, config, resolved.oracle, stack.enter_context(new_client()))
        ws_url = config.chain.ws_url.reveal() if config.chain.ws_url is not None else None
        live = LiveIngest(
            runner,
            new_client,
            ws_url=ws_url,
            scout=scout,
            settings=LiveSettings(poll_interval=config.chain.poll_interval_s),
            on_block=services.on_block,
        )
        _follow(live, threading.Event(), blocks)


def _sync(runner: Runner, users: list[str], head: Head) -> BlockReport:
    started = time.perf_counter()
    with Progress(
        TextColumn("sync"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} users/s"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("sync", total=max(len(users), 1), rate="-")

        def progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=max(total, 1), rate=f"{rate:,.0f}")

        report = runner.start(users, head.number, progress, block_hash=head.block_hash)
    elapsed = time.perf_counter() - started
    rate = len(users) / max(elapsed, 1e-9)
    console.print(
        f"synced {len(users)} users in {elapsed:.1f} s ({rate:,.0f} users/s); "
        f"{len(report.underwater)} underwater at block {head.number}",
        highlight=False,
    )
    return report


def _scout(runner: Runner, config: Config, oracle: str, client: JsonRpcClient) -> PriceScout:
    """The pending-update watcher over the feeds behind every reserve's oracle source, on a
    client of its own (it runs on the price path's thread)."""
    engine = runner.engine
    assert engine.state is not None
    assets = [reserve.asset for reserve in engine.state.market.reserves.values()]
    watched = discover_feeds(client, oracle, assets, engine.state.block_number)
    if config.feeds.chainlink_addresses_file is not None:
        watched = merge(watched, load_feed_overrides(config.feeds.chainlink_addresses_file))
    return PriceScout(engine, client, oracle, watched)


def _follow(live: LiveIngest, stop: threading.Event, blocks: int | None) -> None:
    try:
        live.run(stop, max_blocks=blocks)
    except KeyboardInterrupt:
        console.print("stopped")


def _show_block(report: BlockReport) -> None:
    console.print(
        f"block {report.block_number}: {report.elapsed_ms:.1f} ms, {report.touched} touched, "
        f"{report.confirmed} confirmed exactly, {len(report.underwater)} underwater",
        style="dim",
        highlight=False,
    )


def _base_currency_unit(client: JsonRpcClient, oracle: str) -> int:
    try:
        return read_base_currency_unit(client, oracle)
    except RpcError as exc:
        raise _fail(str(exc)) from None


def _reconfigure(runner: Runner, services: RunServices, unit: int) -> Callable[[Config], None]:
    """What a reload changes while the engine runs: thresholds and profit settings."""

    def apply(config: Config) -> None:
        runner.engine.settings = _settings(config)
        runner.costs = _costs(config, unit)
        services.min_profit_base = int(config.profit.min_usd * unit)
        services.metrics.config_reloads.labels(outcome="applied").inc()

    return apply


def _services(
    config: Config,
    pool: str,
    new_client: Callable[[], JsonRpcClient],
    unit: int,
    endpoints: EndpointPool | None = None,
) -> RunServices:
    """The tracker, verifier, metrics and sinks; a busy port or socket is bad input."""
    try:
        return RunServices(config, pool, new_client, base_currency_unit=unit, endpoints=endpoints)
    except OSError as exc:
        raise _fail(
            f"cannot serve /metrics on {config.http.host}:{config.http.port}: {exc} "
            "(choose another with --http-port or METRICS_PORT; 0 picks a free one)"
        ) from None
    except (EndpointError, PublisherError) as exc:
        raise _fail(f"liquidations socket: {exc}") from None


def _both(*hooks: Callable[[Any], None]) -> Callable[[Any], None]:
    def call(value: Any) -> None:
        for hook in hooks:
            hook(value)

    return call


def _costs(config: Config, unit: int) -> CostModel:
    """The planner's costs from ``[profit]``, in the oracle's base currency (USD markets)."""
    return CostModel.from_usd(
        fee_bps=config.profit.fee_bps,
        gas_cost_usd=config.profit.gas_cost_usd,
        base_currency_unit=unit,
    )


def _show_event(event: UnderwaterUserEvent) -> None:
    health = event.user_account_data.health_factor / 10**18
    plan = event.liquidation_plan
    take = ""
    if plan is not None:
        net = plan.estimated_net_profit_base / 10**8
        take = f", best: {plan.collateral_symbol}/{plan.debt_symbol} net {net:,.2f}"
    line = Text.assemble(
        ("UNDERWATER ", "bold red"),
        f"{event.address} HF {health:.6f} at block {event.block_number}{take}",
    )
    console.print(line, soft_wrap=True)


def _run_embedded(config: Config, users: int, steps: int) -> None:
    from overlord.devnet.launch import running_devnet
    from overlord.devnet.scenario import StepRecord, run_scenario

    console.print("no RPC URL configured: starting the embedded devnet (Aave 3.6.0 on anvil)")
    with running_devnet("3.6.0", users=users, seed=1) as devnet, ExitStack() as stack:
        client = stack.enter_context(devnet.client())
        store = _engine_store(config, devnet.manifest.pool, devnet.manifest.chain_id, fresh=True)
        if store is not None:
            stack.callback(store.close)
        engine = Engine(
            client,
            devnet.manifest.pool,
            _settings(config),
            client_factory=devnet.client,
            store=store,
        )
        unit = _base_currency_unit(client, devnet.manifest.addresses["oracle"])
        services = stack.enter_context(_services(config, devnet.manifest.pool, devnet.client, unit))
        _show_endpoints(services)
        runner = Runner(
            engine,
            devnet.manifest.chain_id,
            stack.enter_context(_publisher(config)),
            _output_dir(config),
            liquidator=devnet.manifest.accounts["liquidator"],
            on_event=_both(_show_event, services.on_event),
            costs=_costs(config, unit),
        )
        head = NodeChain(client).latest()
        _sync(runner, list(devnet.users), head)
        services.synced(engine, list(devnet.users), head.number, config.output.data_dir)
        scout = _scout(
            runner,
            config,
            devnet.manifest.addresses["oracle"],
            stack.enter_context(devnet.client()),
        )
        live = LiveIngest(
            runner,
            devnet.client,
            ws_url=ws_url_for(devnet.rpc_url),
            scout=scout,
            settings=LiveSettings(poll_interval=0.05),
            on_block=_both(_show_block, services.on_block),
        )
        stop = threading.Event()

        def narrate(record: StepRecord) -> None:
            console.print(
                f"  scenario: {record.description}", style="cyan", highlight=False, soft_wrap=True
            )
            time.sleep(0.2)  # one step at a time, so every block is watched as it lands

        def drive() -> None:
            with devnet.client() as driver:
                try:
                    run_scenario(
                        driver, devnet.manifest, devnet.users, steps=steps, seed=7, on_step=narrate
                    )
                    _wait_caught_up(engine, driver)
                finally:
                    stop.set()

        thread = threading.Thread(target=drive, name="scenario", daemon=True)
        thread.start()
        _follow(live, stop, None)
        thread.join()
        console.print(
            f"scenario over: {runner.blocks} blocks processed, {runner.events} events published"
            f" ({live.stats.reorgs} reorgs, {live.stats.reconnects} reconnections)"
        )
        _show_tracker(services)


def _wait_caught_up(engine: Engine, client: JsonRpcClient, timeout: float = 30.0) -> None:
    """Until the engine has processed the node's head (or ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    head = int(client.call("eth_blockNumber"), 16)
    while (engine.last_block or 0) < head and time.monotonic() < deadline:
        time.sleep(0.02)


def _show_endpoints(services: RunServices) -> None:
    if services.server is not None:
        url = services.server.url
        console.print(
            f"metrics and health: {url}/metrics {url}/health {url}/ready", highlight=False
        )


def _show_tracker(services: RunServices) -> None:
    """The tracker's and the verifier's tallies at the end of the embedded run."""
    if services.sampler is not None:
        verifier = services.sampler.verifier
        console.print(
            f"verifier: {verifier.checks} sampled users checked against getUserAccountData, "
            f"{verifier.mismatches} mismatches",
            highlight=False,
        )
    tracker = services.tracker
    if tracker is None:
        return
    try:
        tracker.poll()  # the scenario's last liquidations, before the summary
    except Exception as exc:  # the summary must not hide the scenario's result
        errors.print(f"warning: last tracker poll failed: {exc}", highlight=False)
    not_flagged = ", ".join(f"{reason} {n}" for reason, n in sorted(tracker.missed.items()))
    flagged = tracker.delivered - sum(tracker.missed.values())
    console.print(
        f"liquidations tracked: {tracker.delivered} ({flagged} flagged by us beforehand"
        + (f"; not flagged: {not_flagged})" if not_flagged else ")"),
        highlight=False,
    )
