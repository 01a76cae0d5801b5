"""Market-wide verification: our exact math against ``Pool.getUserAccountData``, user by user.

For one block, :func:`verify_users` reads the market and every user's positions through
:class:`~overlord.chain.reader.MarketReader`, computes the six outputs with
:func:`overlord.aave.calculate_user_account_data` at the block's timestamp, reads
``getUserAccountData`` at the same block, and reports every user where any of the six
differs. Equality is exact: one wei of difference is a mismatch.

Users come from an addresses file (:func:`load_addresses_file`) or from the Pool's events
(:func:`discover_users`): everyone who supplied or borrowed on their own behalf, repaid,
withdrew, was liquidated, toggled a collateral or set an eMode, which is everyone whose
user configuration word can be non-zero.

:func:`verify_command` is the ``overlord verify`` command (registered by the CLI module).
Exit codes: 0 all users match, 1 at least one mismatch, 2 bad input (unreadable manifest
or addresses file, bad RPC URL, unreachable node, a node answer that makes no sense).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, TextIO, TypeVar

import typer
from eth_utils.address import is_checksum_address
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from overlord.aave import (
    AaveMathError,
    ProtocolVersion,
    UserAccount,
    VersionDetectionError,
    calculate_user_account_data,
)
from overlord.aave.account import ACCOUNT_DATA_KEYS
from overlord.chain.logs import (
    DEFAULT_LOG_CHUNK,
    POOL_USER_FIELDS,
    RpcCaller,
    fetch_logs,
    users_in_logs,
)
from overlord.chain.market_ref import MarketRef, MarketResolutionError, resolve_market
from overlord.chain.reader import MarketReader, MarketState, normalize_address
from overlord.chain.rpc import JsonRpcClient, RpcError, RpcTransportError, redact_url
from overlord.cli_options import (
    RPC_URL_ENV,
    FromBlockOption,
    ManifestOption,
    MarketOption,
    PoolOption,
    ProtocolVersionOption,
    ProviderOption,
    RpcUrlOption,
)
from overlord.devnet.manifest import Manifest, ManifestError

ACCOUNT_FIELDS: Final = ACCOUNT_DATA_KEYS
"""The six outputs of ``getUserAccountData``, in order."""

EXIT_MISMATCH: Final = 1
EXIT_BAD_INPUT: Final = 2
DEFAULT_GROUP_SIZE: Final = 1000
PROGRESS_MIN_USERS: Final = 200
PROGRESS_GROUP_SIZE: Final = 250  # the command's groups: a smoother bar, a few more batches

AccountTuple = tuple[int, int, int, int, int, int]
Item = TypeVar("Item")
ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``: called after each group of users."""


# The comparison.


@dataclass(frozen=True, slots=True)
class UserCheck:
    """One user's comparison: our six outputs (``None`` if our math raised) and the chain's."""

    user: str
    ours: AccountTuple | None
    chain: AccountTuple
    error: str | None = None

    @property
    def matches(self) -> bool:
        """Whether all six outputs are equal."""
        return self.ours == self.chain

    @property
    def differing_fields(self) -> tuple[str, ...]:
        """Names of the outputs that differ (all six when our math raised)."""
        if self.ours is None:
            return ACCOUNT_FIELDS
        return tuple(
            name
            for name, ours, chain in zip(ACCOUNT_FIELDS, self.ours, self.chain, strict=True)
            if ours != chain
        )


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify_users` at one block."""

    block: int
    block_timestamp: int
    version: ProtocolVersion
    users_checked: int
    mismatches: tuple[UserCheck, ...]
    checks: tuple[UserCheck, ...]

    @property
    def ok(self) -> bool:
        """Whether every user matched."""
        return not self.mismatches


def check_user(state: MarketState, account: UserAccount, chain: AccountTuple) -> UserCheck:
    """Compare our six outputs for ``account`` (read against ``state``) with ``chain``'s.

    Our math raising (a missing price, an arithmetic revert) is a mismatch with the reason,
    since the Pool did answer.
    """
    try:
        ours = calculate_user_account_data(state.market, account, state.block_timestamp)
    except AaveMathError as exc:  # the contract answered, so our refusal is a mismatch too
        return UserCheck(account.address, None, chain, f"{type(exc).__name__}: {exc}")
    return UserCheck(account.address, ours.as_tuple(), chain)


def _groups(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def verify_users(
    client: JsonRpcClient,
    pool: str,
    users: Sequence[str],
    block: int,
    *,
    version: ProtocolVersion | None = None,
    progress: ProgressCallback | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> VerifyReport:
    """Compare our six outputs with ``getUserAccountData`` for every user at ``block``.

    ``version`` forces the protocol version (default: detected from the Pool). Users are
    normalized to lower case and checked once each, in groups of ``group_size`` (a few
    batches per group) so that ``progress`` can follow.

    Raises:
        RpcError: a read failed or the node answered garbage.
        VersionDetectionError: the version cannot be detected (only when not forced).
        ValueError: a user is not an address.
    """
    reader = MarketReader(client, pool, version=version)
    state = reader.read_market(block)
    addresses = list(dict.fromkeys(normalize_address(user) for user in users))
    checks: list[UserCheck] = []
    for group in _groups(addresses, group_size):
        accounts = reader.read_users(group, block, state)
        chain = reader.read_account_data(group, block)
        checks += [check_user(state, a, c) for a, c in zip(accounts, chain, strict=True)]
        if progress is not None:
            progress(len(checks), len(addresses))
    return VerifyReport(
        block=block,
        block_timestamp=state.block_timestamp,
        version=state.version,
        users_checked=len(checks),
        mismatches=tuple(check for check in checks if not check.matches),
        checks=tuple(checks),
    )


# Users from a file.


@dataclass(frozen=True, slots=True)
class AddressProblem:
    """A line of an addresses file that is not an address (1-based line number)."""

    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text!r}"


_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _address_problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable address, or ``None`` if it is one."""
    if not _HEX_ADDRESS.match(text):
        return "not a 0x-prefixed 20-byte hex address"
    digits = text[2:]
    if digits in (digits.lower(), digits.upper()) or is_checksum_address(text):
        return None
    return "mixed case that is not a valid EIP-55 checksum"


def parse_addresses(lines: Iterable[str]) -> tuple[list[str], list[AddressProblem]]:
    """Addresses from lines: one per line, ``#`` starts a comment, blank lines are skipped.

    Returns the addresses (lower-case, first occurrence order, duplicates merged) and the
    lines that are not addresses; those are skipped, not fatal.
    """
    addresses: dict[str, None] = {}
    problems: list[AddressProblem] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        reason = _address_problem(text)
        if reason is not None:
            problems.append(AddressProblem(number, text, reason))
            continue
        addresses[text.lower()] = None
    return list(addresses), problems


def load_addresses_file(path: Path) -> tuple[list[str], list[AddressProblem]]:
    """Read an addresses file (see :func:`parse_addresses`).

    Raises:
        OSError: the file cannot be read.
        UnicodeDecodeError: the file is not UTF-8 text.
    """
    return parse_addresses(path.read_text(encoding="utf-8").splitlines())


# Users from the Pool's events (spec §6.1): the table and the chunked scan are shared
# with the engine (overlord.chain.logs).


def discover_users(
    client: RpcCaller,
    pool: str,
    from_block: int,
    to_block: int,
    *,
    chunk_size: int = DEFAULT_LOG_CHUNK,
) -> list[str]:
    """Every user the Pool's events name between two blocks (inclusive), first seen first.

    See :func:`overlord.chain.logs.fetch_logs` for the chunking (halved when the node
    refuses a range as too large).

    Raises:
        RpcError: a refusal that is not a size limit, a single-block refusal, or a
            malformed log.
        ValueError: bad block numbers or chunk size, or ``pool`` is not an address.
    """
    logs = fetch_logs(
        client,
        normalize_address(pool),
        POOL_USER_FIELDS,
        from_block,
        to_block,
        chunk_size=chunk_size,
    )
    return users_in_logs(logs)


# The command.


@dataclass(frozen=True, slots=True)
class Target:
    """What to verify: the Pool (or the market to resolve it from), where discovery starts,
    and the RPC URL."""

    rpc_url: str
    pool: str
    from_block: int | None
    market: MarketRef | None = None


class BadInput(Exception):
    """A problem with the command's input; the message is shown as is, exit code 2."""


def parse_target(
    rpc_url: str | None,
    manifest: Path | None,
    pool: str | None,
    from_block: int | None,
    *,
    discover: bool,
    market: str | None = None,
    provider: str | None = None,
) -> Target:
    if not rpc_url:
        raise BadInput(f"no RPC URL: pass --rpc-url or set {RPC_URL_ENV}")
    if not re.match(r"^https?://[^/?#\s]+", rpc_url):
        raise BadInput(f"the RPC URL {redact_url(rpc_url)} is not an http(s) URL")
    if sum(source is not None for source in (manifest, pool, market, provider)) != 1:
        raise BadInput(
            "pass exactly one of --manifest, --pool, --market and --pool-addresses-provider"
        )
    if market is not None or provider is not None:
        return Target(rpc_url, "", from_block, _market_ref(market, provider))
    if manifest is not None:
        pool, from_block = _from_manifest(manifest, from_block)
    try:
        address = normalize_address(str(pool))
    except ValueError:
        raise BadInput(f"--pool {pool!r} is not an address") from None
    if discover and from_block is None:
        raise BadInput("--from-block is needed to discover users (or pass --addresses)")
    return Target(rpc_url, address, from_block)


def _from_manifest(manifest: Path, from_block: int | None) -> tuple[str, int]:
    try:
        loaded = Manifest.load(manifest)
    except ManifestError as exc:
        raise BadInput(str(exc)) from None
    # An explicit --from-block narrows the scan.
    return loaded.pool, loaded.deployment_block if from_block is None else from_block


def _market_ref(market: str | None, provider: str | None) -> MarketRef:
    try:
        return MarketRef.parse(market) if market is not None else MarketRef(provider=provider)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def resolve_target(client: JsonRpcClient, target: Target) -> Target:
    """``target`` with its Pool (and discovery start) resolved from ``--market``."""
    if target.market is None:
        return target
    try:
        resolved = resolve_market(client, target.market)
    except MarketResolutionError as exc:
        raise BadInput(str(exc)) from None
    start = target.from_block if target.from_block is not None else resolved.deployment_block
    return Target(target.rpc_url, resolved.pool, start)


def load_listed(
    path: Path, load: Callable[[Path], tuple[list[Item], Sequence[object]]], kind: str
) -> list[Item]:
    """The items of a file read by ``load`` (``(items, problems)``); each problem is warned
    about on stderr and skipped, an unreadable file is :class:`BadInput`."""
    try:
        items, problems = load(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {kind} {path}: {exc}") from None
    for problem in problems:
        Console(stderr=True, soft_wrap=True).print(
            f"warning: {path}: {problem} (skipped)", markup=False, highlight=False
        )
    return items


def listed_users(addresses: Path) -> list[str]:
    """The users of an addresses file; its bad lines are warned about on stderr."""
    return load_listed(addresses, load_addresses_file, "addresses file")


@contextmanager
def progress_bar(total: int) -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr for long reads; ``None`` (no bar) for few users."""
    if total < PROGRESS_MIN_USERS:
        yield None
        return
    columns = (TextColumn("reading users"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("users", total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def _account_object(values: AccountTuple | None) -> dict[str, int] | None:
    return None if values is None else dict(zip(ACCOUNT_FIELDS, values, strict=True))


def _check_document(check: UserCheck, block: int) -> dict[str, Any]:
    document: dict[str, Any] = {
        "user": check.user,
        "block": block,
        "ours": _account_object(check.ours),
        "chain": _account_object(check.chain),
    }
    if check.error is not None:
        document["error"] = check.error
    return document


def _write_dump(path: Path, report: VerifyReport) -> None:
    with path.open("w", encoding="utf-8") as out:
        for check in report.checks:
            out.write(json.dumps(_check_document(check, report.block)) + "\n")


def _print_json(out: TextIO, report: VerifyReport) -> None:
    mismatches = [
        {**_check_document(check, report.block), "fields": list(check.differing_fields)}
        for check in report.mismatches
    ]
    document = {
        "users_checked": report.users_checked,
        "mismatches": mismatches,
        "block": report.block,
    }
    out.write(json.dumps(document) + "\n")


def _print_human(console: Console, report: VerifyReport, pool: str, elapsed: float) -> None:
    rate = report.users_checked / elapsed if elapsed > 0 else 0.0
    console.print(
        f"Checked {report.users_checked} users of pool {pool} at block {report.block} "
        f"(Aave v{report.version.value}, timestamp {report.block_timestamp}) "
        f"in {elapsed:.2f} s ({rate:,.0f} users/s)",
        highlight=False,
    )
    if report.ok:
        console.print("[green]All users match getUserAccountData exactly.[/]")
        return
    console.print(f"[bold red]{len(report.mismatches)} mismatches:[/]")
    for check in report.mismatches:
        detail = f" ({check.error})" if check.error else ""
        console.print(f"  {check.user}{detail}", markup=False, highlight=False)
        for name in check.differing_fields:
            index = ACCOUNT_FIELDS.index(name)
            ours = "error" if check.ours is None else str(check.ours[index])
            console.print(f"    {name}: ours {ours}, chain {check.chain[index]}", highlight=False)


def latest_block(client: JsonRpcClient) -> int:
    answer = client.call("eth_blockNumber")
    if not isinstance(answer, str) or not re.fullmatch(r"0x[0-9a-fA-F]+", answer):
        raise RpcError("eth_blockNumber", f"not a block number: {str(answer)[:80]!r}")
    return int(answer, 16)


def _run(
    target: Target,
    block: int | None,
    listed: list[str] | None,
    version: ProtocolVersion | None,
) -> tuple[VerifyReport, float]:
    """Verify ``listed`` users, or those the Pool's events name up to the block."""
    started = time.perf_counter()
    with JsonRpcClient(target.rpc_url) as client:
        target = resolve_target(client, target)
        latest = latest_block(client)
        if block is not None and block > latest:
            raise BadInput(f"block {block} is beyond the node's latest block {latest}")
        at = latest if block is None else block
        if listed is not None:
            users = listed
        elif target.from_block is not None:  # parse_target already insisted on it
            users = discover_users(client, target.pool, target.from_block, at)
        else:
            raise BadInput("--from-block is needed to discover users (or pass --addresses)")
        with progress_bar(len(users)) as progress:
            report = verify_users(
                client,
                target.pool,
                users,
                at,
                version=version,
                progress=progress,
                group_size=PROGRESS_GROUP_SIZE,
            )
    return report, time.perf_counter() - started


def parse_version(text: str | None) -> ProtocolVersion | None:
    if text is None:
        return None
    try:
        return ProtocolVersion.parse(text)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def verify_command(
    rpc_url: RpcUrlOption = None,
    manifest: ManifestOption = None,
    pool: PoolOption = None,
    market: MarketOption = None,
    provider: ProviderOption = None,
    from_block: FromBlockOption = None,
    block: Annotated[
        int | None,
        typer.Option("--block", min=0, help="Block to verify at (default: the latest)."),
    ] = None,
    addresses: Annotated[
        Path | None,
        typer.Option(
            "--addresses", help="Users to check, one address per line (instead of the events)."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object: users_checked, mismatches, block."),
    ] = False,
    dump: Annotated[
        Path | None,
        typer.Option("--dump", help="Write one JSON line per user with both sets of outputs."),
    ] = None,
    protocol_version: ProtocolVersionOption = None,
) -> None:
    """Check our exact **getUserAccountData** against the Pool for every user.

    Reads the market and every user at one block, recomputes the six outputs with the
    protocol's integer math and compares them with the Pool's answer at the same block.
    Exit code 0 when all match, 1 on any mismatch, 2 on bad input.
    """
    console, errors = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    try:
        target = parse_target(
            rpc_url,
            manifest,
            pool,
            from_block,
            discover=addresses is None,
            market=market,
            provider=provider,
        )
        version = parse_version(protocol_version)
        listed = listed_users(addresses) if addresses is not None else None
        report, elapsed = _run(target, block, listed, version)
    except (BadInput, RpcError, VersionDetectionError, ValueError) as exc:
        errors.print(f"[bold red]error:[/] {escape(one_line(exc))}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if dump is not None:
        try:
            _write_dump(dump, report)
        except OSError as exc:
            message = escape(f"cannot write {dump}: {exc}")
            errors.print(f"[bold red]error:[/] {message}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        _print_json(sys.stdout, report)
    else:
        _print_human(console, report, target.pool, elapsed)
    if not report.ok:
        raise typer.Exit(EXIT_MISMATCH)


def one_line(error: Exception) -> str:
    if isinstance(error, RpcTransportError):
        return f"cannot reach the node: {error}"
    return " ".join(str(error).split())
