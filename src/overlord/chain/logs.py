"""Event logs: which events name which users, and fetching logs over any block range.

One table says where each position-changing event names a user (spec:
docs/aave-v3-math.md §6.1, §6.2): Pool events (``onBehalfOf``, ``user``, the ``repayer``
of a repayment with aTokens, the liquidator who may receive aTokens) and aToken/debt-token
events (``BalanceTransfer``, ``Mint``, ``Burn``, which catch aToken transfers between users,
which the Pool never sees). User discovery (``overlord verify``, ``overlord run``'s backfill)
and the engine's per-block re-reads both read users through it.

:func:`fetch_logs` reads ranges of ``chunk_size`` blocks; when a node refuses a range as too
large (too many results, range or size limits), the range is halved and retried, and the
smaller size is kept for the rest of the scan. Logs are checked, not trusted: a log whose
event is in the table but that does not name an address where the table says raises
:class:`~overlord.chain.rpc.RpcError` rather than being skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol

from overlord.chain.abi import event_topic
from overlord.chain.rpc import RpcError, RpcTransportError

DEFAULT_LOG_CHUNK: Final = 10_000

Field = tuple[str, int]
"""Where an event names a user: ``("topic", index)`` or ``("data", word index)``."""

POOL_USER_FIELDS: Final[dict[str, tuple[Field, ...]]] = {
    event_topic("Supply(address,address,address,uint256,uint16)"): (("topic", 2),),
    event_topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)"): (("topic", 2),),
    event_topic("Repay(address,address,address,uint256,bool)"): (("topic", 2), ("topic", 3)),
    event_topic("Withdraw(address,address,address,uint256)"): (("topic", 2),),
    event_topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)"): (
        ("topic", 3),
        ("data", 2),
    ),
    event_topic("ReserveUsedAsCollateralEnabled(address,address)"): (("topic", 2),),
    event_topic("ReserveUsedAsCollateralDisabled(address,address)"): (("topic", 2),),
    event_topic("UserEModeSet(address,uint8)"): (("topic", 1),),
    event_topic("SwapBorrowRateMode(address,address,uint8)"): (("topic", 2),),
    event_topic("RebalanceStableBorrowRate(address,address)"): (("topic", 2),),
    event_topic("DeficitCreated(address,address,uint256)"): (("topic", 1),),
    event_topic("MintUnbacked(address,address,address,uint256,uint16)"): (("topic", 2),),
}
TOKEN_USER_FIELDS: Final[dict[str, tuple[Field, ...]]] = {
    event_topic("BalanceTransfer(address,address,uint256,uint256)"): (("topic", 1), ("topic", 2)),
    event_topic("Mint(address,address,uint256,uint256,uint256)"): (("topic", 2),),
    event_topic("Burn(address,address,uint256,uint256,uint256)"): (("topic", 1),),
}
USER_FIELDS: Final = {**POOL_USER_FIELDS, **TOKEN_USER_FIELDS}
ZERO_ADDRESS: Final = "0x" + "00" * 20
_ADDRESS_WORD = re.compile(r"0x0{24}[0-9a-f]{40}")

# How nodes and providers say "this eth_getLogs range is too big" (geth, Infura -32005,
# Alchemy, QuickNode, Erigon, ...). Anything else is a real error and is raised.
_LOG_LIMIT = re.compile(
    r"too many|more than \d|limit|exceed|block range|range too|too large|too big|"
    r"response size|timeout|timed out",
    re.IGNORECASE,
)
_LOG_LIMIT_CODES: Final = frozenset({-32005})


class RpcCaller(Protocol):
    """What log fetching needs from a client: single JSON-RPC requests."""

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Send one request and return its result; raise :class:`RpcError` on failure."""
        ...


def _is_log_limit(error: RpcError) -> bool:
    if isinstance(error, RpcTransportError):
        return False
    return error.code in _LOG_LIMIT_CODES or bool(_LOG_LIMIT.search(str(error)))


def _query(
    client: RpcCaller, address: str | list[str], topics: list[str] | None, first: int, last: int
) -> list[Any]:
    query: dict[str, Any] = {"address": address, "fromBlock": hex(first), "toBlock": hex(last)}
    if topics is not None:
        query["topics"] = [topics]
    result = client.call("eth_getLogs", [query])
    if not isinstance(result, list):
        raise RpcError("eth_getLogs", f"result is not a list: {str(result)[:200]}")
    return result


def fetch_logs(
    client: RpcCaller,
    address: str | Sequence[str],
    topics: Iterable[str] | None,
    from_block: int,
    to_block: int,
    *,
    chunk_size: int = DEFAULT_LOG_CHUNK,
) -> list[Any]:
    """Every log of ``address`` (one or several) with one of ``topics`` as topic0 (``None``:
    any event), in order.

    Raises:
        RpcError: a refusal that is not a size limit, a single-block refusal, or a result
            that is not a list.
        ValueError: bad block numbers or chunk size.
    """
    if chunk_size < 1 or from_block > to_block:
        raise ValueError(f"bad scan: blocks {from_block}..{to_block}, chunk {chunk_size}")
    target = address if isinstance(address, str) else list(address)
    wanted = None if topics is None else list(topics)
    logs: list[Any] = []
    start, size = from_block, chunk_size
    while start <= to_block:
        end = min(start + size - 1, to_block)
        try:
            logs += _query(client, target, wanted, start, end)
        except RpcError as exc:
            if size == 1 or not _is_log_limit(exc):
                raise
            size //= 2
            continue
        start = end + 1
    return logs


def users_of(log: object) -> list[str]:
    """The user addresses a log names (zero address excluded).

    Raises:
        RpcError: not a log of an event in the table, or no address where one must be.
    """
    topics = log.get("topics") if isinstance(log, dict) else None
    if not isinstance(topics, list) or not topics:
        raise RpcError("eth_getLogs", f"log without topics: {str(log)[:200]}")
    fields = USER_FIELDS.get(str(topics[0]).lower())
    if fields is None:
        raise RpcError("eth_getLogs", f"unexpected log: {str(log)[:200]}")
    assert isinstance(log, dict)
    users = []
    for kind, index in fields:
        word = _word(topics, str(log.get("data", "0x")), kind, index)
        if word is None or not _ADDRESS_WORD.fullmatch(word):
            raise RpcError("eth_getLogs", f"{kind} {index} is not an address: {str(log)[:200]}")
        address = "0x" + word[-40:]
        if address != ZERO_ADDRESS:
            users.append(address)
    return users


def users_in_logs(logs: Iterable[object]) -> list[str]:
    """Every user the logs name, first seen first."""
    users: dict[str, None] = {}
    for log in logs:
        for user in users_of(log):
            users[user] = None
    return list(users)


def _word(topics: list[Any], data: str, kind: str, index: int) -> str | None:
    if kind == "topic":
        return str(topics[index]).lower() if index < len(topics) else None
    body = data.removeprefix("0x")
    word = body[64 * index : 64 * (index + 1)]
    return "0x" + word.lower() if len(word) == 64 else None
