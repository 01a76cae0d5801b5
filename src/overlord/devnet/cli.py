"""``overlord devnet``: run a local chain with a real Aave v3 market, and drive it.

``up`` starts anvil with a deployed and seeded market (from the cache when possible) and
serves it until Ctrl-C or SIGTERM; ``scenario`` drives any such chain through a seeded
random market history; ``demo`` does both on an embedded chain, then checks every user
exactly against the Pool and shows the riskiest borrowers with their best liquidation.

Exit codes: 0 on success, 1 when the devnet cannot be set up, stops unexpectedly or (demo)
a user's numbers differ from the Pool's, 2 on bad input (arguments, manifest, users file,
unreachable node).
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from overlord.chain.rpc import JsonRpcClient, RpcError, RpcTransportError, redact_url
from overlord.devnet.manifest import Manifest, ManifestError
from overlord.devnet.paths import DevnetSetupError

if TYPE_CHECKING:
    from overlord.devnet.demo import MarketCheck
    from overlord.devnet.launch import Devnet
    from overlord.devnet.scenario import StepRecord

# The launcher and the scenario driver pull in web3 and eth-abi (over a second of imports):
# they are imported inside the commands, so `overlord account-data` stays fast.
PROTOCOLS = ("3.0.2", "3.6.0")  # overlord.devnet.deploy.PROTOCOLS, checked again by the launcher

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
LIVENESS_PERIOD = 5.0  # seconds between checks that anvil still answers

devnet_app = typer.Typer(
    name="devnet",
    help="A local anvil chain with a real Aave v3 market: start it, seed it, drive it.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
stdout = Console()
stderr = Console(stderr=True)


class _Terminated(Exception):
    """SIGTERM arrived: leave the running devnet's with-block so anvil is stopped."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # A second SIGTERM must not interrupt the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Terminated


def _fail(message: str, code: int) -> typer.Exit:
    stderr.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    return typer.Exit(code)


def _say(message: str) -> None:
    # soft_wrap: paths and URLs stay on one line (scripts read them) even when piped.
    stdout.print(message, soft_wrap=True, highlight=False, markup=False)
    sys.stdout.flush()


class _StageBars:
    """Rich progress bars fed by ``progress(stage, done, total)`` callbacks."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=max(total, 1))
        self.progress.update(self.tasks[stage], completed=done, total=max(total, 1))


def _bars() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stdout,
    )


@devnet_app.command("up")
def up(
    protocol: Annotated[
        str, typer.Option("--protocol", help=f"Aave version: {' or '.join(PROTOCOLS)}.")
    ] = "3.6.0",
    users: Annotated[int, typer.Option("--users", min=0, help="Seeded borrowers.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the seeded positions.")] = 1,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (default: a free one).")
    ] = None,
    manifest_out: Annotated[
        Path | None, typer.Option("--manifest-out", help="Also copy the manifest here.")
    ] = None,
) -> None:
    """Start anvil with a deployed, seeded Aave market and serve it until Ctrl-C/SIGTERM.

    The chain comes from the cache when one was built with the same parameters and
    inputs; otherwise it is deployed, seeded and cached (seeding shows progress bars).
    """
    if protocol not in PROTOCOLS:
        raise _fail(
            f"unknown protocol {protocol!r}: choose {' or '.join(PROTOCOLS)}", EXIT_BAD_INPUT
        )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _serve(protocol, users, seed, port, manifest_out)
    except (_Terminated, KeyboardInterrupt):
        _say("devnet stopped")
    except (DevnetSetupError, ManifestError, RpcError, OSError) as exc:
        raise _fail(str(exc), EXIT_FAILURE) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(
    protocol: str, users: int, seed: int, port: int | None, manifest_out: Path | None
) -> None:
    from overlord.devnet.launch import running_devnet

    started = time.time()
    with ExitStack() as stack:
        with _bars() as progress:
            spinner = progress.add_task(f"starting Aave {protocol}", total=None)
            bars = _StageBars(progress)
            devnet = stack.enter_context(
                running_devnet(protocol, users=users, seed=seed, port=port, progress=bars.update)
            )
            progress.update(spinner, total=1, completed=1)
        _announce(devnet, protocol, seed, started, manifest_out)
        _wait_while_alive(devnet)


def _announce(
    devnet: Devnet, protocol: str, seed: int, started: float, manifest_out: Path | None
) -> None:
    folder = devnet.manifest_path.parent
    state = folder / "state.json"
    cached = state.is_file() and state.stat().st_mtime < started
    how = "loaded from the cache" if cached else "built now and cached"
    elapsed = time.time() - started
    _say(
        f"Aave {protocol} devnet, {len(devnet.users)} seeded users (seed {seed}): chain {how} "
        f"in {elapsed:.1f} s"
    )
    _say(f"cache: {folder}")
    if manifest_out is not None:
        manifest_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(devnet.manifest_path, manifest_out)
    _say(f"RPC URL: {devnet.rpc_url}")
    _say(f"WebSocket URL: {devnet.node.ws_url}")
    _say(f"manifest: {manifest_out or devnet.manifest_path}")
    _say(f"users: {folder / 'users.json'}")
    _say("press Ctrl-C to stop")


def _wait_while_alive(devnet: Devnet) -> None:
    # Generous timeout: a busy anvil (a large scenario) may be slow but is still alive.
    with JsonRpcClient(devnet.rpc_url, timeout=60.0) as client:
        while True:
            time.sleep(LIVENESS_PERIOD)
            try:
                client.call("eth_chainId")
            except RpcTransportError:
                raise DevnetSetupError("anvil stopped answering; the devnet is gone") from None


@devnet_app.command("scenario")
def scenario(
    rpc_url: Annotated[str, typer.Option("--rpc-url", help="JSON-RPC URL of the devnet.")],
    manifest: Annotated[
        Path, typer.Option("--manifest", help="The devnet's manifest (printed by `up`).")
    ],
    steps: Annotated[int, typer.Option("--steps", min=0, help="Number of steps.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random choices.")] = 1,
    users_file: Annotated[
        Path | None,
        typer.Option(
            "--users-file",
            help="users.json or one address per line (default: every supplier on the chain).",
        ),
    ] = None,
) -> None:
    """Drive a running devnet through a seeded random market history, step by step.

    Prices walk and crash, wstETH's ratio moves, time jumps, users act, and the
    liquidator liquidates everyone below health factor 1. Same chain state and seed,
    same history.
    """
    from overlord.devnet.scenario import discover_users, read_users_file

    try:
        loaded = Manifest.load(manifest)
        listed = read_users_file(users_file) if users_file is not None else None
    except (ManifestError, ValueError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    with JsonRpcClient(rpc_url) as client:
        try:
            _check_chain(client, loaded, rpc_url)
            users = listed if listed is not None else discover_users(client, loaded)
            if not users:
                raise _fail(
                    "no users: the chain has no suppliers and no --users-file given", EXIT_BAD_INPUT
                )
            records = _run_with_progress(client, loaded, users, steps, seed)
        except RpcTransportError as exc:
            raise _fail(f"cannot reach the node: {exc}", EXIT_BAD_INPUT) from None
        except RpcError as exc:
            raise _fail(f"the node failed: {exc}", EXIT_BAD_INPUT) from None
    liquidations = sum(record.liquidations for record in records)
    failed = sum(not record.succeeded for record in records)
    last = f", last block {records[-1].block_number}" if records else ""
    _say(
        f"{len(records)} steps on {len(users)} users: {liquidations} liquidations, "
        f"{failed} steps with a reverted transaction{last}"
    )


def _check_chain(client: JsonRpcClient, manifest: Manifest, rpc_url: str) -> None:
    chain_id = int(client.call("eth_chainId"), 16)
    if chain_id != manifest.chain_id:
        raise _fail(
            f"the node at {redact_url(rpc_url)} is chain {chain_id}, "
            f"the manifest is for chain {manifest.chain_id}",
            EXIT_BAD_INPUT,
        )
    if client.call("eth_getCode", [manifest.pool, "latest"]) in ("0x", "0x0", None):
        raise _fail(
            f"no Pool at {manifest.pool} on {redact_url(rpc_url)}: "
            "the manifest belongs to another chain",
            EXIT_BAD_INPUT,
        )


def _run_with_progress(
    client: JsonRpcClient, manifest: Manifest, users: Sequence[str], steps: int, seed: int
) -> list[StepRecord]:
    from overlord.devnet.scenario import run_scenario

    with _bars() as progress:
        task = progress.add_task("scenario", total=max(steps, 1))

        def narrate(record: StepRecord) -> None:
            line = Text(f"{record.index + 1:>4} block {record.block_number:<7} ")
            line.append(f"{record.kind.value:<15} ", style="bold")
            line.append(record.description)
            if not record.succeeded:
                line.append(" (reverted)", style="red")
            progress.console.print(line, soft_wrap=True, highlight=False)
            progress.advance(task)

        return run_scenario(client, manifest, users, steps=steps, seed=seed, on_step=narrate)


@devnet_app.command("demo")
def demo(
    protocol: Annotated[
        str, typer.Option("--protocol", help="Aave version to deploy: 3.0.2 or 3.6.0.")
    ] = "3.6.0",
    users: Annotated[int, typer.Option("--users", min=1, help="Users to seed.")] = 1000,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Scenario steps.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the market and history.")] = 1,
) -> None:
    """Run a narrated market history on an embedded chain, then check it exactly.

    Starts a local chain with a real Aave market (cached after the first run), drives it
    through a scenario of price moves, crashes, time jumps, user actions and
    liquidations, then recomputes every user's getUserAccountData with Overlord's exact
    math, compares it with the Pool's own answer, and lists the borrowers closest to
    liquidation with the most profitable liquidation of each.
    """
    from overlord.devnet.demo import check_market
    from overlord.devnet.launch import running_devnet

    if protocol not in PROTOCOLS:
        raise _fail(
            f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}", EXIT_BAD_INPUT
        )
    try:
        with ExitStack() as stack:
            with _bars() as progress:
                progress.add_task(f"starting Aave {protocol}", total=None)
                bars = _StageBars(progress)
                devnet = stack.enter_context(
                    running_devnet(protocol, users=users, seed=seed, progress=bars.update)
                )
            _say(f"Aave {protocol} on anvil at {devnet.rpc_url}, {len(devnet.users)} users")
            client = stack.enter_context(devnet.client())
            records = _run_with_progress(client, devnet.manifest, devnet.users, steps, seed)
            liquidations = sum(record.liquidations for record in records)
            _say(f"{len(records)} steps, {liquidations} liquidations by the devnet liquidator")
            check = check_market(
                client, devnet.manifest.pool, devnet.users, devnet.manifest.accounts["liquidator"]
            )
    except DevnetSetupError as exc:
        raise _fail(str(exc), EXIT_FAILURE) from None
    symbols = {reserve.asset.lower(): reserve.symbol for reserve in devnet.manifest.reserves}
    _print_check(check, symbols)
    if check.mismatches:
        raise typer.Exit(EXIT_FAILURE)


def _print_check(check: MarketCheck, symbols: dict[str, str]) -> None:
    from rich.table import Table

    _say(
        f"block {check.block}: {check.users_checked} users checked against "
        f"Pool.getUserAccountData, {check.mismatches} mismatches; {check.underwater} below HF 1"
    )
    table = Table(
        title="lowest health factors (exact); liquidation: collateral seized / debt repaid",
        title_justify="left",
        show_edge=False,
    )
    for column in ("user", "HF", "collateral $", "debt $", "liquidation", "gain $"):
        table.add_column(column, justify="left" if column in ("user", "liquidation") else "right")
    for borrower in check.riskiest:
        account, best = borrower.account, borrower.best
        plan = "-"
        if best is not None:
            size = "max" if best.debt_to_cover == 2**256 - 1 else "part"
            plan = f"{symbols[best.collateral_asset]}/{symbols[best.debt_asset]} {size}"
        table.add_row(
            borrower.user.address[:10] + "…",
            f"{account.health_factor / 10**18:.4f}",
            f"{account.total_collateral_base / 10**8:,.0f}",
            f"{account.total_debt_base / 10**8:,.0f}",
            plan,
            "" if best is None else f"{borrower.gross_gain_base / 10**8:,.2f}",
        )
    stdout.print(table)
