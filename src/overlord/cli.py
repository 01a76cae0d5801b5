"""The ``overlord`` command line.

Each command is a thin shell: it parses arguments, loads input through a module that
reports problems precisely, calls the pure core and renders the result. Exit codes: 0 on
success, 1 when the computation itself fails (the contract would revert), 2 on bad input.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from overlord import __version__
from overlord.aave import (
    MAX_DEBT_TO_COVER,
    AccountData,
    ArithmeticRevert,
    Liquidation,
    MissingPriceError,
    UserAccount,
    calculate_user_account_data,
    max_liquidation,
)
from overlord.aave.account import ACCOUNT_DATA_KEYS, NO_DEBT_HEALTH_FACTOR, user_emode_category
from overlord.aave.configuration import flagged_reserves
from overlord.aave.wadray import WAD
from overlord.demo_cli import demo_command
from overlord.devnet.cli import devnet_app
from overlord.engine.plans import gross_gain
from overlord.executor.cli import execute_command
from overlord.outputs.listen import listen_command
from overlord.replay_cli import replay_command
from overlord.run_cli import run_command
from overlord.snapshot import Snapshot, SnapshotError, load_snapshot
from overlord.tracker.backfill_cli import backfill_command
from overlord.verify import verify_command

EXIT_REVERT = 1
EXIT_BAD_INPUT = 2

ACCOUNT_KEYS = ACCOUNT_DATA_KEYS

app = typer.Typer(
    name="overlord",
    help=(
        "Overlord finds every liquidatable Aave v3 borrower with the protocol's exact "
        "integer math (3.0.0 to 3.6)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
app.add_typer(devnet_app, name="devnet")
app.command("run")(run_command)
app.command("verify")(verify_command)
app.command("replay")(replay_command)
app.command("backfill")(backfill_command)
app.command("listen")(listen_command)
app.command("execute")(execute_command)
app.command("demo")(demo_command)
stdout = Console()
stderr = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        stdout.print(f"overlord {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Overlord: exact Aave v3 health factors and liquidation plans."""


def _fail(message: str, code: int) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command("account-data")
def account_data(
    snapshot_path: Annotated[
        Path,
        typer.Argument(
            metavar="SNAPSHOT.json", help="Market snapshot (format: docs/snapshot-format.md)."
        ),
    ],
    user: Annotated[
        str | None,
        typer.Option(
            "--user", "-u", help="Only this user's address (default: every user in the snapshot)."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per user with the six outputs as integers."),
    ] = False,
) -> None:
    """Compute **getUserAccountData** exactly from a market snapshot.

    Prints the six values the Pool returns (totalCollateralBase, totalDebtBase,
    availableBorrowsBase, currentLiquidationThreshold, ltv, healthFactor) for each user,
    wei for wei, and for users below health factor 1 the largest liquidation of every
    collateral/debt pair the Pool would accept.
    """
    try:
        snapshot = load_snapshot(snapshot_path)
        users = (snapshot.user(user),) if user else snapshot.users
        results = [
            (
                account,
                calculate_user_account_data(snapshot.market, account, snapshot.block_timestamp),
            )
            for account in users
        ]
    except SnapshotError as exc:
        raise _fail(f"{snapshot_path}: {exc}", EXIT_BAD_INPUT) from None
    except MissingPriceError as exc:
        raise _fail(
            f"{snapshot_path}: {exc} (add it to the reserve or to 'prices')", EXIT_BAD_INPUT
        ) from None
    except ArithmeticRevert as exc:
        raise _fail(f"getUserAccountData would revert: {exc}", EXIT_REVERT) from None
    if as_json:
        for account, data in results:
            document = {
                "user": account.address,
                **dict(zip(ACCOUNT_KEYS, data.as_tuple(), strict=True)),
            }
            sys.stdout.write(json.dumps(document) + "\n")
        return
    _print_header(snapshot_path, snapshot)
    for account, data in results:
        _print_account(snapshot, account, data)


def _print_header(path: Path, snapshot: Snapshot) -> None:
    moment = datetime.fromtimestamp(snapshot.block_timestamp, tz=UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
    block = f"block {snapshot.block_number}, " if snapshot.block_number is not None else ""
    stdout.print(
        f"[bold]{path}[/]: Aave v{snapshot.market.version.value}, {block}{moment} "
        f"(timestamp {snapshot.block_timestamp}), {len(snapshot.market.reserves)} reserves, "
        f"{len(snapshot.users)} users",
        highlight=False,
    )


def _base(amount: int, unit: int) -> str:
    return f"{amount / unit:,.2f}"


def _health(value: int) -> str:
    if value == NO_DEBT_HEALTH_FACTOR:
        return "no debt"
    label = "[bold red]liquidatable[/]" if value < WAD else "[green]safe[/]"
    return f"{value / WAD:.6f} ({label})"


def _print_account(snapshot: Snapshot, user: UserAccount, data: AccountData) -> None:
    emode = user_emode_category(snapshot.market, user)
    suffix = f", eMode {emode.id} {emode.label}".rstrip() if emode else ""
    table = Table(title=f"{user.address}{suffix}", title_justify="left", show_edge=False)
    table.add_column("getUserAccountData")
    table.add_column("exact value", justify="right")
    table.add_column("reading", justify="right")
    unit = snapshot.base_currency_unit
    readings = (
        _base(data.total_collateral_base, unit),
        _base(data.total_debt_base, unit),
        _base(data.available_borrows_base, unit),
        f"{data.current_liquidation_threshold / 100:.2f} %",
        f"{data.ltv / 100:.2f} %",
        _health(data.health_factor),
    )
    for key, value, reading in zip(ACCOUNT_KEYS, data.as_tuple(), readings, strict=True):
        table.add_row(key, str(value), reading)
    stdout.print()
    stdout.print(table)
    if data.is_liquidatable:
        _print_liquidations(snapshot, user)


def _amount(snapshot: Snapshot, asset: str, amount: int) -> str:
    decimals = snapshot.market.reserve_by_asset(asset).configuration.decimals
    return f"{amount / 10**decimals:,.6g}"


def _print_liquidations(snapshot: Snapshot, user: UserAccount) -> None:
    market = snapshot.market
    flags = list(flagged_reserves(user.configuration))
    collaterals = [market.reserves[i].asset for i, _b, c in flags if c and i in market.reserves]
    debts = [market.reserves[i].asset for i, b, _c in flags if b and i in market.reserves]
    table = Table(
        title="largest liquidation the Pool accepts, per pair (amounts in tokens)",
        title_justify="left",
        show_edge=False,
    )
    table.add_column("collateral/debt")
    for column in ("debtToCover", "repay", "receive", "fee", "gain"):
        table.add_column(column, justify="right")
    for collateral in collaterals:
        for debt in debts:
            pair = f"{snapshot.symbol(collateral)}/{snapshot.symbol(debt)}"
            result = max_liquidation(market, user, collateral, debt, now=snapshot.block_timestamp)
            if not isinstance(result, Liquidation):
                table.add_row(pair, f"reverts {result.reason.value}", "", "", "", "")
                continue
            table.add_row(
                pair,
                "MAX" if result.debt_to_cover == MAX_DEBT_TO_COVER else str(result.debt_to_cover),
                _amount(snapshot, debt, result.debt_repaid),
                _amount(snapshot, collateral, result.collateral_to_liquidator),
                _amount(snapshot, collateral, result.protocol_fee),
                _base(gross_gain(snapshot.market, result), snapshot.base_currency_unit),
            )
    stdout.print(table)


def main() -> None:
    """Console-script entry point."""
    app()
