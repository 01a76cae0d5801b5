"""Did we see it coming? Each liquidation of a user we had not flagged, with the reason.

Missed liquidations are the main measure of missed opportunities, so every liquidation
gets a :class:`Verdict`. :class:`Watchlist` is what the engine tells the tracker as it
runs: from which block each user was in its user set, and at which blocks it announced a
user as underwater (mined or pending). :func:`attribute` is pure: the verdict of one
liquidation from the watchlist and the user's exact account data at the block before.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from overlord.aave import AccountData

WAD: Final = 10**18
FLAGS_KEPT: Final = 32  # announcements remembered per user; only the latest few matter


class Verdict(StrEnum):
    """Why a liquidation was or was not flagged by the engine beforehand."""

    FLAGGED = "flagged"
    """We announced the user as underwater at an earlier block (or for this block, from a
    pending update) than the liquidation's."""
    BEFORE_START = "before_start"
    """The liquidation is at or before the block the engine synced at."""
    SAME_BLOCK = "same_block"
    """Healthy at the block before: made liquidatable inside the liquidation's own block (an
    oracle update or a borrow in that block, then the liquidation), which only a pending
    update could have shown us."""
    NOT_IN_USER_SET = "not_in_user_set"
    """The user was not among the users we watched before the liquidation's block."""
    BELOW_THRESHOLD = "below_threshold"
    """Underwater, but with no more collateral than ``min_collateral_base``."""
    BUG = "bug"
    """Watched, above thresholds, underwater at the block before, and never announced."""
    UNKNOWN = "unknown"
    """The account data at the block before could not be read."""


class Watchlist:
    """Who the engine watched since when, and when it flagged whom. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, int] = {}
        self._flags: dict[str, deque[int]] = {}
        self.start_block: int | None = None

    def started(self, users: Iterable[str], block: int) -> None:
        """The engine synced ``users`` at ``block``."""
        with self._lock:
            self.start_block = block
            for user in users:
                self._known.setdefault(user.lower(), block)

    def known(self, users: Iterable[str], block: int) -> None:
        """``users`` joined the user set at ``block`` (seen in its events)."""
        with self._lock:
            for user in users:
                self._known.setdefault(user.lower(), block)

    def flagged(self, user: str, block: int) -> None:
        """The engine announced ``user`` as underwater for ``block``."""
        with self._lock:
            self._flags.setdefault(user.lower(), deque(maxlen=FLAGS_KEPT)).append(block)

    def known_since(self, user: str) -> int | None:
        """The block ``user`` joined the user set at, or ``None``."""
        with self._lock:
            return self._known.get(user.lower())

    def flagged_before(self, user: str, block: int) -> int | None:
        """The latest block before ``block`` at which ``user`` was announced, or ``None``."""
        with self._lock:
            earlier = [at for at in self._flags.get(user.lower(), ()) if at < block]
        return max(earlier) if earlier else None

    @property
    def users(self) -> int:
        """How many users the engine has watched."""
        with self._lock:
            return len(self._known)


def attribute(
    watchlist: Watchlist,
    user: str,
    block: int,
    before: AccountData | None,
    min_collateral_base: int = 0,
) -> Verdict:
    """The verdict for ``user`` liquidated at ``block``, with ``before`` its account data at
    ``block - 1`` (``None`` if it could not be read)."""
    if watchlist.start_block is not None and block <= watchlist.start_block:
        return Verdict.BEFORE_START
    if watchlist.flagged_before(user, block) is not None:
        return Verdict.FLAGGED
    if before is None:
        return Verdict.UNKNOWN
    if before.health_factor >= WAD:
        return Verdict.SAME_BLOCK
    since = watchlist.known_since(user)
    if since is None or since >= block:
        return Verdict.NOT_IN_USER_SET
    if before.total_collateral_base <= min_collateral_base:
        return Verdict.BELOW_THRESHOLD
    return Verdict.BUG
