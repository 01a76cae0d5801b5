"""Which users a range of blocks touched: every address a position-changing event names.

The engine re-reads every touched user at the block rather than applying deltas: exact by
construction, whatever the version's rounding. The events and where they name users are
in :mod:`overlord.chain.logs`.
"""

from __future__ import annotations

from collections.abc import Sequence

from overlord.chain.logs import USER_FIELDS, fetch_logs, users_in_logs
from overlord.chain.rpc import JsonRpcClient


def touched_users(
    client: JsonRpcClient, addresses: Sequence[str], from_block: int, to_block: int
) -> set[str]:
    """Users named by position-changing events of ``addresses`` in the block range."""
    if from_block > to_block:
        return set()
    return set(users_in_logs(fetch_logs(client, addresses, USER_FIELDS, from_block, to_block)))
