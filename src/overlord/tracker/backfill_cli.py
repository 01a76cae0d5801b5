"""``overlord backfill --recent N``: the N most recent liquidations, each user's health factor
at the block before and now, written to ``hf-backfill-output.json`` (see
:mod:`overlord.tracker.backfill`). Exit codes: 0 done (per-user failures are in the file's
``error`` fields), 2 bad input or an unreachable node.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from overlord.chain.market_ref import MarketRef, MarketResolutionError, resolve_market
from overlord.chain.rpc import JsonRpcClient, RpcError, redact_url
from overlord.cli_options import (
    RPC_URL_ENV,
    ManifestOption,
    MarketOption,
    ProviderOption,
    RpcUrlOption,
)
from overlord.tracker.backfill import (
    BackfillResult,
    backfill_document,
    health_then_and_now,
    recent_from_logs,
)
from overlord.tracker.ondemand import OnDemandHealth
from overlord.tracker.records import LiquidationRecord
from overlord.tracker.subgraph import SubgraphError, SubgraphSettings, SubgraphSource

EXIT_BAD_INPUT = 2
errors = Console(stderr=True, soft_wrap=True)


class _BadInput(Exception):
    """Shown as is, exit code 2."""


def _market(manifest: Path | None, market: str | None, provider: str | None) -> MarketRef:
    given = [value for value in (manifest, market, provider) if value is not None]
    if len(given) != 1:
        raise _BadInput("pass exactly one of --manifest, --market and --pool-addresses-provider")
    try:
        if manifest is not None:
            return MarketRef(manifest=manifest)
        if market is not None:
            return MarketRef.parse(market)
        return MarketRef(provider=provider)
    except ValueError as exc:
        raise _BadInput(str(exc)) from None


def _bar() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=errors, transient=True)


def _from_subgraph(recent: int) -> list[LiquidationRecord]:
    url = os.environ.get("SUBGRAPH_URL", "").strip()
    if not url:
        raise _BadInput("--source subgraph needs SUBGRAPH_URL in the environment")
    key = os.environ.get("GRAPH_API_KEY", "").strip() or None
    settings = SubgraphSettings(url=url, api_key=key, poll_limit=min(recent, 1000))
    with SubgraphSource(settings) as source:
        return list(source.poll(None).records)[:recent]


def _records(
    client: JsonRpcClient, ref: MarketRef, recent: int, source: str, floor: int | None
) -> tuple[str, int, list[LiquidationRecord]]:
    resolved = resolve_market(client, ref)
    latest = int(client.call("eth_blockNumber"), 16)
    if source == "subgraph":
        return resolved.pool, latest, _from_subgraph(recent)
    start = floor if floor is not None else (resolved.deployment_block or 0)
    with _bar() as bar:
        task = bar.add_task("scanning logs", total=max(latest - start + 1, 1))
        found = recent_from_logs(
            client,
            resolved.pool,
            recent,
            latest,
            floor=start,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    return resolved.pool, latest, found


def _health(
    client: JsonRpcClient, pool: str, records: list[LiquidationRecord], latest: int
) -> list[BackfillResult]:
    health = OnDemandHealth(client, pool)
    results = []
    with _bar() as bar:
        task = bar.add_task("health factors", total=max(len(records), 1))
        for record in records:
            results.append(health_then_and_now(health, record, latest))
            bar.advance(task)
    return results


def backfill_command(
    recent: Annotated[
        int, typer.Option("--recent", min=1, max=100_000, help="How many recent liquidations.")
    ] = 10,
    out: Annotated[Path, typer.Option("--out", help="Output file.")] = Path(
        "hf-backfill-output.json"
    ),
    rpc_url: RpcUrlOption = None,
    manifest: ManifestOption = None,
    market: MarketOption = None,
    provider: ProviderOption = None,
    source: Annotated[
        str,
        typer.Option(
            "--source", help="logs (the Pool's LiquidationCall logs) or subgraph (SUBGRAPH_URL)."
        ),
    ] = "logs",
    from_block: Annotated[
        int | None,
        typer.Option("--from-block", min=0, help="Oldest block the log scan may reach."),
    ] = None,
) -> None:
    """The N most recent liquidations with each user's exact health factor at the block
    before the liquidation and now, written as JSON (LiquidBot's hf-backfill, historical)."""
    try:
        if not rpc_url:
            raise _BadInput(f"no RPC URL: pass --rpc-url or set {RPC_URL_ENV}")
        if source not in ("logs", "subgraph"):
            raise _BadInput(f"--source must be logs or subgraph, not {source!r}")
        ref = _market(manifest, market, provider)
        with JsonRpcClient(rpc_url) as client:
            pool, latest, records = _records(client, ref, recent, source, from_block)
            results = _health(client, pool, records, latest)
        document = backfill_document(results, latest, datetime.datetime.now(datetime.UTC))
        out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except (_BadInput, MarketResolutionError, RpcError, SubgraphError, OSError) as exc:
        message = " ".join(str(exc).replace(rpc_url or "\0", redact_url(rpc_url or "")).split())
        errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    failed = sum(1 for result in results if result.error is not None)
    Console(soft_wrap=True).print(
        f"{len(results)} liquidations ({document['totalUsers']} users) up to block {latest}"
        f" written to {out}"
        + (f"; {failed} without a health factor (see error)" if failed else ""),
        highlight=False,
    )
