"""Send many transactions fast on anvil: batched, unsigned, mined in large blocks.

anvil impersonates any sender (``anvil_autoImpersonateAccount``), so seeding thousands of
users needs no keys or signatures. With automine off, a whole batch goes into the pool in
one JSON-RPC batch and is mined by ``evm_mine`` calls until the pool is empty; every
receipt is then checked, and a failed transaction raises with its label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.paths import DevnetSetupError

DEFAULT_GAS = 3_000_000
CHUNK = 500


@dataclass(frozen=True)
class Tx:
    """An unsigned transaction and a label that names it in errors."""

    sender: str
    to: str
    data: str
    label: str
    gas: int = DEFAULT_GAS


class TransactionFailed(DevnetSetupError):
    """A transaction reverted."""


class TxSender:
    """Sends transactions through an anvil node."""

    def __init__(self, client: JsonRpcClient) -> None:
        self.client = client
        self.client.call("anvil_autoImpersonateAccount", [True])

    def send(
        self, transactions: Sequence[Tx], *, allow_failures: bool = False
    ) -> list[dict[str, object]]:
        """Send and mine ``transactions``; return their receipts in the same order.

        Transactions of one sender run in the given order (explicit nonces); transactions
        of different senders may be mined in any order, so a transaction that depends on
        another sender's (a mint before the supply) belongs in a later ``send`` call.
        Raises :class:`TransactionFailed` for the first reverted one unless
        ``allow_failures``.
        """
        receipts: list[dict[str, object]] = []
        # anvil's pool slows down super-linearly with thousands of pending transactions:
        # send and mine in chunks (each chunk is mined before the next, so order holds).
        for start in range(0, len(transactions), CHUNK):
            chunk = transactions[start : start + CHUNK]
            receipts += self._send_chunk(chunk, allow_failures=allow_failures)
        return receipts

    def _send_chunk(
        self, transactions: Sequence[Tx], *, allow_failures: bool
    ) -> list[dict[str, object]]:
        senders = sorted({tx.sender.lower() for tx in transactions})
        counts = self.client.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
        nonces = {sender: int(count, 16) for sender, count in zip(senders, counts, strict=True)}
        requests = []
        for tx in transactions:
            sender = tx.sender.lower()
            payload = {
                "from": tx.sender,
                "to": tx.to,
                "data": tx.data,
                "gas": hex(tx.gas),
                "gasPrice": "0x0",
                "nonce": hex(nonces[sender]),
            }
            nonces[sender] += 1
            requests.append(("eth_sendTransaction", [payload]))
        self.client.call("evm_setAutomine", [False])
        try:
            hashes = self.client.batch(requests)
            self._mine_until_empty()
        finally:
            self.client.call("evm_setAutomine", [True])
        receipts = self.client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        for tx, receipt in zip(transactions, receipts, strict=True):
            if receipt is None:
                raise TransactionFailed(f"{tx.label}: not mined")
            if int(receipt["status"], 16) != 1 and not allow_failures:
                raise TransactionFailed(f"{tx.label}: reverted (tx {receipt['transactionHash']})")
        return list(receipts)

    def _mine_until_empty(self) -> None:
        while True:
            status = self.client.call("txpool_status")
            if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
                return
            self.client.call("evm_mine")

    def mine(self, *, timestamp: int | None = None) -> None:
        """Mine one block, optionally at ``timestamp``."""
        self.client.call("evm_mine", [timestamp] if timestamp is not None else [])
