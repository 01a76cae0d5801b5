"""Which users a range of blocks touched: every address a position-changing event names.

Spec: docs/aave-v3-math.md §6.1, §6.2, §6.5. Pool events name the user whose position
changed (``onBehalfOf``, ``user``, ``repayer`` when it repaid with aTokens, the liquidator
who may receive aTokens); token events (``BalanceTransfer``, ``Mint``, ``Burn``) catch
aToken transfers between users, which the Pool does not see. The engine re-reads every
touched user at the block rather than applying deltas: exact by construction, whatever
the version's rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from overlord.chain.abi import event_topic
from overlord.chain.rpc import JsonRpcClient, RpcError

# topic0 -> positions of the user addresses: ("topic", i) or ("data", word index).
_USER_FIELDS: dict[str, tuple[tuple[str, int], ...]] = {
    event_topic("Supply(address,address,address,uint256,uint16)"): (("topic", 2),),
    event_topic("Withdraw(address,address,address,uint256)"): (("topic", 2),),
    event_topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)"): (("topic", 2),),
    event_topic("Repay(address,address,address,uint256,bool)"): (("topic", 2), ("topic", 3)),
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
    # aToken / debt tokens.
    event_topic("BalanceTransfer(address,address,uint256,uint256)"): (("topic", 1), ("topic", 2)),
    event_topic("Mint(address,address,uint256,uint256,uint256)"): (("topic", 2),),
    event_topic("Burn(address,address,uint256,uint256,uint256)"): (("topic", 1),),
}
TOPICS = tuple(_USER_FIELDS)
ZERO = "0x" + "00" * 20


def touched_users(
    client: JsonRpcClient, addresses: Sequence[str], from_block: int, to_block: int
) -> set[str]:
    """Users named by position-changing events of ``addresses`` in the block range."""
    if from_block > to_block:
        return set()
    logs = client.call(
        "eth_getLogs",
        [
            {
                "fromBlock": hex(from_block),
                "toBlock": hex(to_block),
                "address": list(addresses),
                "topics": [list(TOPICS)],
            }
        ],
    )
    if not isinstance(logs, list):
        raise RpcError("eth_getLogs", f"expected a list of logs, got {str(logs)[:200]}")
    return users_in_logs(logs)


def users_in_logs(logs: Iterable[object]) -> set[str]:
    """The user addresses the logs name (the zero address excluded)."""
    users: set[str] = set()
    for log in logs:
        if not isinstance(log, dict) or log.get("removed"):
            continue
        topics = log.get("topics") or []
        fields = _USER_FIELDS.get(topics[0] if topics else "")
        for kind, index in fields or ():
            word = _word(topics, log.get("data", "0x"), kind, index)
            if word is not None:
                address = "0x" + word[-40:].lower()
                if address != ZERO:
                    users.add(address)
    return users


def _word(topics: list[str], data: str, kind: str, index: int) -> str | None:
    if kind == "topic":
        return topics[index] if index < len(topics) else None
    body = data.removeprefix("0x")
    word = body[64 * index : 64 * (index + 1)]
    return word if len(word) == 64 else None
