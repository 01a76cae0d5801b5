"""``overlord replay``: the market, or one user, as the Pool saw it at a past block.

The target options are those of ``overlord verify`` (and resolved by its helpers); every
read is an ``eth_call`` pinned to ``--block``, so an archive node (or the devnet) replays
any block it has. See docs/replay.md. Exit codes: 0 done, 1 our account data differs from
``getUserAccountData`` for some user (the exactness promise is broken: report it), 2 bad
input (bad address or block, no users, unreachable node, pruned state, ...).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from overlord.aave import AaveMathError, ProtocolVersion, VersionDetectionError
from overlord.aave.account import ACCOUNT_DATA_KEYS
from overlord.chain.oracle import read_base_currency_unit
from overlord.chain.reader import MarketReader, MarketState, normalize_address
from overlord.chain.rpc import JsonRpcClient, RpcError, RpcTransportError
from overlord.cli_options import (
    FromBlockOption,
    ManifestOption,
    MarketOption,
    PoolOption,
    ProtocolVersionOption,
    ProviderOption,
    RpcUrlOption,
)
from overlord.engine.plans import BPS, CostModel, Plan
from overlord.replay import (
    MarketReplay,
    ReplayedUser,
    ReserveLine,
    TraceComparison,
    TraceEntry,
    UserBreakdown,
    base_amount,
    breakdown_document,
    compare_trace,
    fixed_point,
    health_text,
    load_trace,
    looks_pruned,
    market_document,
    pair_label,
    replay_market,
    token_amount,
    user_breakdown,
    version_label,
    wad_decimal,
)
from overlord.verify import (
    EXIT_BAD_INPUT,
    EXIT_MISMATCH,
    PROGRESS_GROUP_SIZE,
    BadInput,
    Target,
    discover_users,
    latest_block,
    listed_users,
    load_listed,
    one_line,
    parse_target,
    parse_version,
    progress_bar,
    resolve_target,
)

MAX_DEBT: Final = 2**256 - 1

# The request.


@dataclass(frozen=True, slots=True)
class _Request:
    """The command's validated input."""

    target: Target
    block: int
    user: str | None
    listed: list[str] | None
    trace: list[TraceEntry] | None
    version: ProtocolVersion | None
    fee_bps: int
    gas_cost_usd: Decimal
    top: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the command computed: a market replay (with its trace comparison) or a user."""

    report: MarketReplay | None = None
    comparisons: list[TraceComparison] | None = None
    breakdown: UserBreakdown | None = None


def _user_option(user: str) -> str:
    try:
        return normalize_address(user.strip())
    except ValueError:
        raise BadInput(f"--user {user!r} is not a 0x-prefixed 20-byte hex address") from None


def _gas_option(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadInput(f"--gas-cost-usd {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise BadInput(f"--gas-cost-usd must be a non-negative number, not {text!r}")
    return value


def _trace_entries(path: Path) -> list[TraceEntry]:
    """The entries of an hf-traces file; its bad lines are warned about on stderr."""
    entries = load_listed(path, load_trace, "trace file")
    if not entries:
        raise BadInput(f"no users: the trace file {path} has no '<address> <hf_wad>' line")
    return entries


def _listed(addresses: Path | None, trace: list[TraceEntry] | None) -> list[str] | None:
    if trace is not None:
        return [entry.user for entry in trace]
    if addresses is None:
        return None
    users = listed_users(addresses)
    if not users:
        raise BadInput(f"no users: the addresses file {addresses} lists no address")
    return users


# Reading.


def _users(client: JsonRpcClient, target: Target, request: _Request) -> list[str]:
    if request.listed is not None:
        return request.listed
    if target.from_block is None:
        raise BadInput("--from-block is needed to discover users (or pass --addresses)")
    if target.from_block > request.block:
        raise BadInput(f"--from-block {target.from_block} is after --block {request.block}")
    users = discover_users(client, target.pool, target.from_block, request.block)
    if not users:
        span = f"{target.from_block}..{request.block}"
        raise BadInput(f"no users: the Pool's events name nobody in blocks {span}")
    return users


def _replay(client: JsonRpcClient, request: _Request) -> _Outcome:
    target = resolve_target(client, request.target)
    latest = latest_block(client)
    if request.block > latest:
        raise BadInput(f"block {request.block} is beyond the node's latest block {latest}")
    reader = MarketReader(client, target.pool, version=request.version)
    state = reader.read_market(request.block)
    unit = read_base_currency_unit(client, state.oracle)
    costs = CostModel.from_usd(
        fee_bps=request.fee_bps, gas_cost_usd=request.gas_cost_usd, base_currency_unit=unit
    )
    if request.user is not None:
        return _Outcome(breakdown=_breakdown(reader, state, request, unit, costs))
    users = _users(client, target, request)
    with progress_bar(len(users)) as progress:
        report = replay_market(
            reader,
            state,
            users,
            base_currency_unit=unit,
            costs=costs,
            top=request.top,
            progress=progress,
            group_size=PROGRESS_GROUP_SIZE,
        )
    comparisons = None if request.trace is None else compare_trace(request.trace, report.users)
    return _Outcome(report=report, comparisons=comparisons)


def _breakdown(
    reader: MarketReader, state: MarketState, request: _Request, unit: int, costs: CostModel
) -> UserBreakdown:
    user, block = str(request.user), request.block
    account = reader.read_users([user], block, state)[0]
    chain = reader.read_account_data([user], block)[0]
    return user_breakdown(
        state, account, chain, base_currency_unit=unit, costs=costs, top=request.top
    )


def _run(request: _Request) -> _Outcome:
    with JsonRpcClient(request.target.rpc_url) as client:
        try:
            return _replay(client, request)
        except RpcTransportError:
            raise
        except RpcError as exc:
            if looks_pruned(str(exc)):
                raise BadInput(
                    f"the node does not have the state of block {request.block} "
                    f"(pruned; replay needs an archive node): {exc}"
                ) from None
            raise


# Human output.


def _moment(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _heading(state: MarketState) -> str:
    return (
        f"pool {state.pool} at block {state.block_number} ({version_label(state.version)}, "
        f"timestamp {state.block_timestamp}, {_moment(state.block_timestamp)})"
    )


def _six(values: Sequence[int]) -> str:
    return "  ".join(f"{k}={v}" for k, v in zip(ACCOUNT_DATA_KEYS, values, strict=True))


def _plan_line(state: MarketState, plan: Plan, unit: int) -> str:
    market, liquidation = state.market, plan.liquidation
    cover = "MAX" if liquidation.debt_to_cover == MAX_DEBT else str(liquidation.debt_to_cover)
    return (
        f"{pair_label(market, liquidation.collateral_asset, liquidation.debt_asset)}: "
        f"debtToCover={cover} debtRepaid={liquidation.debt_repaid} "
        f"collateralReceived={liquidation.collateral_to_liquidator} "
        f"protocolFee={liquidation.protocol_fee} gross={base_amount(plan.gross_gain_base, unit)} "
        f"net={base_amount(plan.net_profit_base, unit)}"
    )


def _underwater_table(report: MarketReplay) -> Table:
    market, unit = report.state.market, report.base_currency_unit
    table = Table(title=f"underwater at block {report.block}", title_justify="left")
    for name in ("#", "user", "health factor", "debt (base)", "best plan", "repaid", "received"):
        table.add_column(name, overflow="fold")
    table.add_column("gross (base)", justify="right", overflow="fold")
    table.add_column("net (base)", justify="right", overflow="fold")
    for rank, user in enumerate(report.underwater, start=1):
        account = user.account
        debt = base_amount(account.total_debt_base, unit) if account else "?"
        cells = [str(rank), user.address, health_text(user.health_factor or 0), debt]
        if not user.plans:
            table.add_row(*cells, "none accepted", "", "", "", "")
            continue
        liquidation = user.plans[0].liquidation
        table.add_row(
            *cells,
            pair_label(market, liquidation.collateral_asset, liquidation.debt_asset),
            token_amount(market, liquidation.debt_asset, liquidation.debt_repaid),
            token_amount(
                market, liquidation.collateral_asset, liquidation.collateral_to_liquidator
            ),
            base_amount(user.plans[0].gross_gain_base, unit),
            base_amount(user.plans[0].net_profit_base, unit),
        )
    return table


def _print_user_details(console: Console, report: MarketReplay) -> None:
    console.print("exact account data and plans:", highlight=False)
    for rank, user in enumerate(report.underwater, start=1):
        console.print(f"  #{rank} {user.address}", markup=False, highlight=False)
        if user.account is not None:
            console.print(f"    {_six(user.account.as_tuple())}", markup=False, highlight=False)
            console.print(
                f"    healthFactor {wad_decimal(user.account.health_factor)} "
                f"(wad {user.account.health_factor})",
                markup=False,
                highlight=False,
            )
        for index, plan in enumerate(user.plans, start=1):
            line = _plan_line(report.state, plan, report.base_currency_unit)
            console.print(f"    plan {index}: {line}", markup=False, highlight=False)
        if user.error:
            console.print(f"    error: {user.error}", markup=False, highlight=False)


def _print_mismatch(console: Console, user: ReplayedUser) -> None:
    check = user.check
    if check is None:
        return
    detail = f" ({check.error})" if check.error else ""
    console.print(f"  {user.address}{detail}", markup=False, highlight=False)
    for name in check.differing_fields:
        index = ACCOUNT_DATA_KEYS.index(name)
        ours = "error" if check.ours is None else str(check.ours[index])
        console.print(f"    {name}: ours {ours}, chain {check.chain[index]}", highlight=False)


def _print_chain_check(console: Console, users: Sequence[ReplayedUser], block: int) -> None:
    mismatches = [user for user in users if user.matches_chain is False]
    if not mismatches:
        console.print(
            f"[green]All {len(users)} users match getUserAccountData at block {block} exactly.[/]"
        )
        return
    console.print(
        f"[bold red]{len(mismatches)} users differ from getUserAccountData at block {block}:[/]"
    )
    for user in mismatches:
        _print_mismatch(console, user)


def _trace_table(comparisons: Sequence[TraceComparison], block: int) -> Table:
    table = Table(title=f"hf-traces file against block {block}", title_justify="left")
    table.add_column("user", overflow="fold")
    table.add_column("trace HF", justify="right", overflow="fold")
    table.add_column("replayed HF", justify="right", overflow="fold")
    table.add_column("", overflow="fold")
    for c in comparisons:
        ours = "error" if c.replay_health_factor is None else health_text(c.replay_health_factor)
        flag = "[bold red]DIFFERS[/]" if c.differs else "same"
        table.add_row(c.user, health_text(c.trace_health_factor), ours, flag)
    return table


def _print_market(
    console: Console, report: MarketReplay, comparisons: Sequence[TraceComparison] | None
) -> None:
    underwater, unit = report.underwater, report.base_currency_unit
    console.print(f"Replay of {_heading(report.state)}", highlight=False)
    console.print(f"{len(report.users)} users read, {len(underwater)} underwater", highlight=False)
    if underwater:
        console.print(_underwater_table(report))
        _print_user_details(console, report)
        totals = report.totals
        console.print(
            f"totals underwater: collateral {base_amount(totals.collateral_base, unit)}, "
            f"debt {base_amount(totals.debt_base, unit)}; best plans: gross "
            f"{base_amount(totals.best_gross_base, unit)}, "
            f"net {base_amount(totals.best_net_base, unit)} (base currency)",
            highlight=False,
        )
    _print_chain_check(console, report.users, report.block)
    if comparisons is not None:
        console.print(_trace_table(comparisons, report.block))
        differing = sum(c.differs for c in comparisons)
        style = "bold red" if differing else "green"
        console.print(
            f"[{style}]{differing} of {len(comparisons)} trace lines differ from the replay.[/]"
        )


_RESERVE_ROWS: Final[tuple[tuple[str, Callable[[ReserveLine], str]], ...]] = (
    ("asset", lambda r: r.asset),
    ("reserve id", lambda r: str(r.reserve_id)),
    ("decimals", lambda r: str(r.decimals)),
    ("collateral flag", lambda r: "yes" if r.collateral else "no"),
    ("borrowing flag", lambda r: "yes" if r.borrowing else "no"),
    ("scaled aToken balance", lambda r: str(r.scaled_atoken_balance)),
    ("liquidity index (stored)", lambda r: str(r.liquidity_index)),
    ("liquidity index (at block)", lambda r: str(r.normalized_income)),
    ("aToken balance", lambda r: token_text(r, r.atoken_balance)),
    ("scaled variable debt", lambda r: str(r.scaled_variable_debt)),
    ("variable borrow index (stored)", lambda r: str(r.variable_borrow_index)),
    ("variable borrow index (at block)", lambda r: str(r.normalized_debt)),
    ("variable debt", lambda r: token_text(r, r.variable_debt)),
    ("stable debt", lambda r: "n/a" if r.stable_debt is None else token_text(r, r.stable_debt)),
    ("oracle price", lambda r: _optional(r.price)),
    ("price used", lambda r: _optional(r.account_price)),
    ("LTV / LT / bonus", lambda r: f"{r.ltv} / {r.liquidation_threshold} / {r.liquidation_bonus}"),
    ("in eMode", lambda r: "yes" if r.in_emode else "no"),
    (
        "effective LTV / LT / bonus",
        lambda r: (
            f"{r.effective_ltv} / {r.effective_liquidation_threshold} / "
            f"{r.effective_liquidation_bonus}"
        ),
    ),
    ("collateral (base)", lambda r: _optional(r.collateral_base)),
    ("debt (base)", lambda r: _optional(r.debt_base)),
)


def _optional(value: int | None) -> str:
    return "-" if value is None else str(value)


def token_text(line: ReserveLine, amount: int) -> str:
    """``raw (whole tokens)`` for a reserve amount."""
    if amount == 0:
        return "0"
    return f"{amount} ({fixed_point(amount, line.decimals)})"


def _reserves_table(breakdown: UserBreakdown) -> Table:
    table = Table(title="positions (amounts raw, then in tokens)", title_justify="left")
    table.add_column("field", overflow="fold")
    for line in breakdown.reserves:
        table.add_column(line.symbol or line.asset, justify="right", overflow="fold")
    for name, cell in _RESERVE_ROWS:
        table.add_row(name, *(cell(line) for line in breakdown.reserves))
    return table


def _emode_text(breakdown: UserBreakdown) -> str:
    emode = breakdown.emode
    if emode is None:
        return "eMode: none"
    text = (
        f"eMode: category {emode.id} {emode.label!r}: LTV {emode.ltv}, "
        f"LT {emode.liquidation_threshold}, bonus {emode.liquidation_bonus}"
    )
    if emode.price_source:
        text += f", price source {emode.price_source} (price {_optional(emode.price_source_price)})"
    return text


def _account_table(breakdown: UserBreakdown) -> Table:
    user, unit = breakdown.user, breakdown.base_currency_unit
    table = Table(title="getUserAccountData", title_justify="left")
    table.add_column("output", overflow="fold")
    table.add_column("ours", justify="right", overflow="fold")
    table.add_column("chain", justify="right", overflow="fold")
    table.add_column("reading", justify="right", overflow="fold")
    ours = user.account.as_tuple() if user.account else None
    chain = user.check.chain if user.check else None
    for index, key in enumerate(ACCOUNT_DATA_KEYS):
        mine = "error" if ours is None else str(ours[index])
        theirs = "-" if chain is None else str(chain[index])
        table.add_row(key, mine, theirs, _reading(key, ours, index, unit))
    return table


def _reading(key: str, values: Sequence[int] | None, index: int, unit: int) -> str:
    if values is None:
        return ""
    value = values[index]
    if key == "healthFactor":
        return health_text(value)
    if key in ("currentLiquidationThreshold", "ltv"):
        return f"{value / 100:.2f} %"
    return base_amount(value, unit)


def _print_plans(console: Console, breakdown: UserBreakdown) -> None:
    user, state = breakdown.user, breakdown.state
    if not user.underwater:
        console.print("not liquidatable at this block: health factor is not below 1")
        return
    if not user.plans:
        console.print("[bold red]underwater, but the Pool would accept no pair[/]")
    for index, plan in enumerate(user.plans, start=1):
        line = _plan_line(state, plan, breakdown.base_currency_unit)
        console.print(f"plan {index}: {line}", markup=False, highlight=False)
    for rejection in breakdown.rejections:
        pair = pair_label(state.market, rejection.collateral_asset, rejection.debt_asset)
        console.print(f"rejected {pair}: {rejection.reason}", markup=False, highlight=False)


def _print_breakdown(console: Console, breakdown: UserBreakdown) -> None:
    user = breakdown.user
    console.print(f"User {user.address}, {_heading(breakdown.state)}", highlight=False)
    console.print(_emode_text(breakdown), markup=False, highlight=False)
    if breakdown.reserves:
        console.print(_reserves_table(breakdown))
    else:
        console.print("no position: the user has no flag on any reserve")
    console.print(_account_table(breakdown))
    if user.account is not None:
        console.print(
            f"healthFactor {health_text(user.account.health_factor)} "
            f"(wad {user.account.health_factor})",
            highlight=False,
        )
    if user.error:
        console.print(f"error: {user.error}", markup=False, highlight=False)
    if user.matches_chain:
        console.print("[green]matches chain[/]: all six values equal getUserAccountData")
    elif user.check is not None:
        fields = ", ".join(user.check.differing_fields)
        console.print(f"[bold red]differs from chain[/]: {fields}")
    _print_plans(console, breakdown)


# The command.


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}", highlight=False
    )
    return typer.Exit(EXIT_BAD_INPUT)


def _mismatched(outcome: _Outcome) -> bool:
    if outcome.breakdown is not None:
        return outcome.breakdown.user.matches_chain is False
    return outcome.report is not None and bool(outcome.report.mismatches)


def _render(outcome: _Outcome, as_json: bool) -> None:
    if outcome.breakdown is not None:
        if as_json:
            sys.stdout.write(json.dumps(breakdown_document(outcome.breakdown)) + "\n")
        else:
            _print_breakdown(Console(soft_wrap=True), outcome.breakdown)
    elif outcome.report is not None:
        if as_json:
            document = market_document(outcome.report, outcome.comparisons)
            sys.stdout.write(json.dumps(document) + "\n")
        else:
            _print_market(Console(soft_wrap=True), outcome.report, outcome.comparisons)


def _request(
    target: Target,
    block: int,
    user: str | None,
    addresses: Path | None,
    trace_file: Path | None,
    options: tuple[str | None, int, str, int],
) -> _Request:
    protocol_version, fee_bps, gas_cost_usd, top = options
    trace = _trace_entries(trace_file) if trace_file is not None else None
    return _Request(
        target=target,
        block=block,
        user=_user_option(user) if user is not None else None,
        listed=_listed(addresses, trace),
        trace=trace,
        version=parse_version(protocol_version),
        fee_bps=fee_bps,
        gas_cost_usd=_gas_option(gas_cost_usd),
        top=top,
    )


def replay_command(
    block: Annotated[
        int,
        typer.Option("--block", min=0, show_default=False, help="Block to replay (required)."),
    ],
    rpc_url: RpcUrlOption = None,
    manifest: ManifestOption = None,
    pool: PoolOption = None,
    market: MarketOption = None,
    provider: ProviderOption = None,
    from_block: FromBlockOption = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Break down this user in full instead of the whole market."),
    ] = None,
    addresses: Annotated[
        Path | None,
        typer.Option("--addresses", help="Users to replay, one address per line."),
    ] = None,
    trace: Annotated[
        Path | None,
        typer.Option(
            "--trace", help="An hf-traces file: replay its users and compare its health factors."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (docs/replay.md).")
    ] = False,
    top: Annotated[int, typer.Option("--top", min=1, help="Plans to show per user.")] = 1,
    fee_bps: Annotated[
        int, typer.Option("--fee-bps", min=0, max=BPS, help="Swap fee of the plans, in bps.")
    ] = CostModel.fee_bps,
    gas_cost_usd: Annotated[
        str, typer.Option("--gas-cost-usd", help="Gas cost per liquidation, in USD.")
    ] = "0",
    protocol_version: ProtocolVersionOption = None,
) -> None:
    """Replay the market (or **--user**) as the Pool saw it at **--block**.

    Lists the users underwater at that block, lowest health factor first, with their exact
    account data and best liquidation plan; **--user** breaks one user down reserve by
    reserve and checks the six values against getUserAccountData at the block; **--trace**
    compares an hf-traces file with the replay. Exit code 0, 1 when our numbers differ
    from the Pool's, 2 on bad input.
    """
    try:
        if sum(source is not None for source in (user, addresses, trace)) > 1:
            raise BadInput("pass at most one of --user, --addresses and --trace")
        discover = user is None and addresses is None and trace is None
        target = parse_target(
            rpc_url,
            manifest,
            pool,
            from_block,
            discover=discover,
            market=market,
            provider=provider,
        )
        options = (protocol_version, fee_bps, gas_cost_usd, top)
        outcome = _run(_request(target, block, user, addresses, trace, options))
    except (BadInput, RpcError, VersionDetectionError, AaveMathError, ValueError) as exc:
        raise _fail(one_line(exc)) from None
    _render(outcome, as_json)
    if _mismatched(outcome):
        raise typer.Exit(EXIT_MISMATCH)
