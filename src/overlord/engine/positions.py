"""Every user's positions in columnar numpy arrays, with the exact integers kept alongside.

One row per (user, reserve) with a borrowing or collateral flag set, the flags being what
decides the account math (never the balances). Each row holds the scaled aToken and
variable-debt balances twice: as float64 for the vector screen, and exactly, split into two
uint64 halves (balances above 2**128 go to a small side table), so that a user's exact
:class:`~overlord.aave.UserAccount` can be rebuilt for confirmation without keeping a
Python object per user.

A user's rows are contiguous. Replacing a user's positions reuses the user's slot when
the new rows fit, else appends a new slot and leaves the old rows dead (user index
``DEAD``, zero balances); :meth:`PositionTable.compact` drops dead rows when they pile up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from overlord.aave import StableDebt, UserAccount, UserReserve
from overlord.aave.configuration import flagged_reserves, user_configuration_word
from overlord.aave.market import GhoDiscount

DEAD = np.int32(-1)
BORROWING = np.uint8(1)
COLLATERAL = np.uint8(2)
_MASK64 = (1 << 64) - 1
_INITIAL_ROWS = 1024
COMPACT_DEAD_FRACTION = 0.3


@dataclass(frozen=True)
class Rows:
    """Views of the live arrays (valid until the next change of the table)."""

    user: npt.NDArray[np.int32]
    reserve: npt.NDArray[np.int16]
    flags: npt.NDArray[np.uint8]
    scaled_a: npt.NDArray[np.float64]
    scaled_v: npt.NDArray[np.float64]


class PositionTable:
    """Positions of every known user; users are numbered densely from 0 in arrival order."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self.addresses: list[str] = []
        self._rows = 0  # rows in use, live or dead
        self._live = 0  # rows that belong to a user
        capacity = _INITIAL_ROWS
        self._user = np.full(capacity, DEAD, dtype=np.int32)
        self._reserve = np.zeros(capacity, dtype=np.int16)
        self._flags = np.zeros(capacity, dtype=np.uint8)
        self._a = np.zeros(capacity, dtype=np.float64)
        self._v = np.zeros(capacity, dtype=np.float64)
        self._a_exact = np.zeros((capacity, 2), dtype=np.uint64)
        self._v_exact = np.zeros((capacity, 2), dtype=np.uint64)
        self._start = np.zeros(0, dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int32)
        self._slot = np.zeros(0, dtype=np.int32)
        self.emode = np.zeros(0, dtype=np.uint8)
        self._huge: dict[tuple[int, int], int] = {}  # (row, 0 aToken | 1 debt) -> > 2**128
        self.stable: dict[int, dict[int, StableDebt]] = {}  # user -> reserve -> stable debt
        self.gho: dict[int, dict[int, GhoDiscount]] = {}  # user -> reserve -> 3.3 discount
        self.version = 0  # bumped on every change, so derived caches know they are stale

    # Sizes and lookups.

    @property
    def users(self) -> int:
        """Number of known users (including users without positions)."""
        return len(self.addresses)

    @property
    def live_rows(self) -> int:
        """Rows that belong to a user."""
        return self._live

    def user_index(self, address: str) -> int | None:
        """The user's index, or ``None`` if unknown."""
        return self._index.get(address.lower())

    def rows(self) -> Rows:
        """The used part of the arrays (dead rows included, with user ``DEAD``)."""
        n = self._rows
        return Rows(self._user[:n], self._reserve[:n], self._flags[:n], self._a[:n], self._v[:n])

    def rows_of(
        self, users: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Row indices of ``users`` and, per row, the position of its user in ``users``."""
        counts = self._count[users].astype(np.intp)
        starts = self._start[users].astype(np.intp)
        local = np.repeat(np.arange(len(users), dtype=np.intp), counts)
        first_of_each = np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(starts, counts) + (
            np.arange(len(local), dtype=np.intp) - first_of_each
        ), local

    def users_with(self, reserve_id: int, flag: np.uint8) -> npt.NDArray[np.intp]:
        """Users with ``flag`` (``BORROWING`` or ``COLLATERAL``) set on ``reserve_id``, sorted."""
        rows = self.rows()
        hits = (rows.reserve == reserve_id) & ((rows.flags & flag) != 0) & (rows.user != DEAD)
        return np.unique(rows.user[hits]).astype(np.intp)

    def users_of_reserves(self, reserve_ids: Iterable[int]) -> npt.NDArray[np.intp]:
        """Users with any flag on any of ``reserve_ids``, sorted."""
        rows = self.rows()
        hits = np.isin(rows.reserve, np.fromiter(reserve_ids, dtype=np.int16)) & (rows.user != DEAD)
        return np.unique(rows.user[hits]).astype(np.intp)

    def users_per_reserve(self, flag: np.uint8) -> dict[int, int]:
        """Number of users with ``flag`` on each reserve id (for the stats line)."""
        rows = self.rows()
        hits = ((rows.flags & flag) != 0) & (rows.user != DEAD)
        counts = np.bincount(rows.reserve[hits].astype(np.intp))
        return {int(r): int(c) for r, c in enumerate(counts) if c}

    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        arrays = (
            self._user,
            self._reserve,
            self._flags,
            self._a,
            self._v,
            self._a_exact,
            self._v_exact,
            self._start,
            self._count,
            self._slot,
            self.emode,
        )
        return int(sum(a.nbytes for a in arrays))

    # Changes.

    def upsert(self, account: UserAccount) -> int:
        """Store ``account`` (replacing what the user had); returns the user's index."""
        address = account.address.lower()
        user = self._index.get(address)
        if user is None:
            user = self._add_user(address)
        self._clear(user)
        flagged = list(flagged_reserves(account.configuration))
        slot = self._slot_for(user, len(flagged))
        for offset, (reserve_id, borrowing, collateral) in enumerate(flagged):
            position = account.position(reserve_id)
            row = slot + offset
            self._user[row] = user
            self._reserve[row] = reserve_id
            self._flags[row] = (BORROWING if borrowing else 0) | (COLLATERAL if collateral else 0)
            self._store(row, 0, position.scaled_atoken_balance)
            self._store(row, 1, position.scaled_variable_debt)
            if position.stable_debt is not None and borrowing:
                # Only a borrowing flag makes stable debt count, as in the account loop.
                self.stable.setdefault(user, {})[reserve_id] = position.stable_debt
            if position.gho_discount is not None:
                self.gho.setdefault(user, {})[reserve_id] = position.gho_discount
        self._start[user], self._count[user] = slot, len(flagged)
        self._live += len(flagged)
        self.emode[user] = account.emode_category
        self.version += 1
        return user

    def bulk_add(
        self,
        addresses: list[str],
        emode: npt.NDArray[np.uint8],
        row_user: npt.NDArray[np.intp],
        reserve: npt.NDArray[np.int16],
        flags: npt.NDArray[np.uint8],
        scaled_a: tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]],
        scaled_v: tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]],
    ) -> None:
        """Append new users and their rows in one go (rows sorted by ``row_user``).

        ``row_user`` indexes ``addresses``; balances come as (high, low) 64-bit halves of
        128-bit values (use :meth:`upsert` for larger ones). Every address must be new.
        """
        first = self.users
        for address in addresses:
            if address.lower() in self._index:
                raise ValueError(f"{address} is already in the table")
            self._add_user(address.lower())
        rows = len(row_user)
        self._ensure_capacity(self._rows + rows)
        span = slice(self._rows, self._rows + rows)
        self._user[span] = row_user + first
        self._reserve[span], self._flags[span] = reserve, flags
        for exact, floats, (high, low) in (
            (self._a_exact, self._a, scaled_a),
            (self._v_exact, self._v, scaled_v),
        ):
            exact[span, 0], exact[span, 1] = high, low
            floats[span] = high.astype(np.float64) * 2.0**64 + low.astype(np.float64)
        counts = np.bincount(row_user, minlength=len(addresses)).astype(np.int32)
        starts = self._rows + np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        users = slice(first, first + len(addresses))
        self._start[users], self._count[users], self._slot[users] = starts, counts, counts
        self.emode[users] = emode
        self._rows += rows
        self._live += rows
        self.version += 1

    def remove(self, address: str) -> None:
        """Forget a user's positions (the user keeps its index, with no rows)."""
        user = self._index.get(address.lower())
        if user is not None:
            self._clear(user)
            self.emode[user] = 0
            self.version += 1

    def account(self, user: int) -> UserAccount:
        """The exact account of user ``user``, as stored."""
        start, count = int(self._start[user]), int(self._count[user])
        borrowing, collateral, positions = [], [], {}
        stable, gho = self.stable.get(user, {}), self.gho.get(user, {})
        for row in range(start, start + count):
            reserve_id, flags = int(self._reserve[row]), int(self._flags[row])
            if flags & BORROWING:
                borrowing.append(reserve_id)
            if flags & COLLATERAL:
                collateral.append(reserve_id)
            positions[reserve_id] = UserReserve(
                self._load(row, 0), self._load(row, 1), stable.get(reserve_id), gho.get(reserve_id)
            )
        return UserAccount(
            address=self.addresses[user],
            configuration=user_configuration_word(borrowing=borrowing, collateral=collateral),
            emode_category=int(self.emode[user]),
            positions=MappingProxyType(positions),
        )

    def compact(self) -> None:
        """Drop dead rows and lay every user's rows out contiguously in user order."""
        live = self._user[: self._rows] != DEAD
        order = np.nonzero(live)[0]
        order = order[np.argsort(self._user[order], kind="stable")]
        remap = {int(old): new for new, old in enumerate(order)} if self._huge else {}
        for name in ("_user", "_reserve", "_flags", "_a", "_v", "_a_exact", "_v_exact"):
            array = getattr(self, name)
            compacted = array[order]
            array[: len(order)] = compacted
            array[len(order) : self._rows] = DEAD if name == "_user" else 0
        self._huge = {
            (remap[row], side): value for (row, side), value in self._huge.items() if row in remap
        }
        n = self.users
        counts = np.bincount(self._user[: len(order)], minlength=n)[:n].astype(np.int32)
        starts = np.zeros(n, dtype=np.int64)
        starts[1:] = np.cumsum(counts)[:-1]
        self._count[:n], self._slot[:n], self._start[:n] = counts, counts, starts
        self._rows = len(order)
        self.version += 1

    # Internals.

    def _add_user(self, address: str) -> int:
        user = len(self.addresses)
        self.addresses.append(address)
        self._index[address] = user
        if user >= len(self._start):
            grow = max(1024, len(self._start))
            self._start = np.concatenate((self._start, np.zeros(grow, dtype=np.int64)))
            self._count = np.concatenate((self._count, np.zeros(grow, dtype=np.int32)))
            self._slot = np.concatenate((self._slot, np.zeros(grow, dtype=np.int32)))
            self.emode = np.concatenate((self.emode, np.zeros(grow, dtype=np.uint8)))
        return user

    def _clear(self, user: int) -> None:
        start, count = int(self._start[user]), int(self._count[user])
        if count:
            rows = slice(start, start + count)
            self._user[rows] = DEAD
            self._flags[rows] = 0
            self._a[rows] = self._v[rows] = 0.0
            self._a_exact[rows] = self._v_exact[rows] = 0
            for row in range(start, start + count):
                self._huge.pop((row, 0), None)
                self._huge.pop((row, 1), None)
        self._live -= count
        self._count[user] = 0
        self.stable.pop(user, None)
        self.gho.pop(user, None)

    def _slot_for(self, user: int, rows: int) -> int:
        """Start row of a slot of at least ``rows`` rows for ``user``."""
        if rows <= int(self._slot[user]):
            return int(self._start[user])
        self._ensure_capacity(self._rows + rows)
        start = self._rows
        self._rows += rows
        self._slot[user] = rows
        dead = self._rows - self._live - rows  # the new slot is about to be filled
        if dead > COMPACT_DEAD_FRACTION * max(self._rows, _INITIAL_ROWS):
            self._start[user], self._count[user] = start, 0
            self.compact()
            return self._slot_for(user, rows)
        return start

    def _ensure_capacity(self, rows: int) -> None:
        capacity = len(self._user)
        if rows <= capacity:
            return
        new = max(rows, capacity * 2)
        for name in ("_user", "_reserve", "_flags", "_a", "_v", "_a_exact", "_v_exact"):
            array = getattr(self, name)
            shape = (new, *array.shape[1:])
            grown = (
                np.full(shape, DEAD, dtype=array.dtype)
                if name == "_user"
                else np.zeros(shape, dtype=array.dtype)
            )
            grown[:capacity] = array
            setattr(self, name, grown)

    def _store(self, row: int, side: int, value: int) -> None:
        exact = self._a_exact if side == 0 else self._v_exact
        floats = self._a if side == 0 else self._v
        floats[row] = float(value)
        if value >> 128:
            self._huge[(row, side)] = value
            exact[row] = 0
        else:
            exact[row, 0], exact[row, 1] = value >> 64, value & _MASK64

    def _load(self, row: int, side: int) -> int:
        huge = self._huge.get((row, side))
        if huge is not None:
            return huge
        exact = self._a_exact if side == 0 else self._v_exact
        return (int(exact[row, 0]) << 64) | int(exact[row, 1])
