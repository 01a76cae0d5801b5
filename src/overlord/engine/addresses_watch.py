"""AddressesWatcher: hot reload of the users' addresses file.

Every ``interval_s`` the watcher looks at the file's ``(mtime_ns, size, inode)``; when it
changed, the file is parsed with :func:`overlord.verify.load_addresses_file` (each line
that is not an address is logged as a warning and skipped, the rest applies) and compared
with the set listed until then:

- an added address is handed to :meth:`Engine.reread_next`: the next processed block
  reads it, and an unknown one joins the table;
- a removed address is handed to :meth:`Engine.drop_users`.

A file that is missing or unreadable changes nothing: the error is logged (once until the
file is readable again) and nobody is dropped. A file that lists no address at all while
the watcher holds some is taken for a file caught between truncation and rewrite, not for
"drop everyone": it is ignored with a warning. A file that changes while it is read is read
again at the next poll. Writers should still replace the file atomically (write a
temporary file, then rename it over the old one).

An added address is followed until a processed block has read it: a request that reaches
the engine while a block is being processed can be cleared with that block's bookkeeping
(``Engine.process_block`` resets its re-read set after its reads), so when a block goes by
without reading a pending address, the watcher asks again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from overlord.engine.engine import Engine
from overlord.verify import load_addresses_file

log = logging.getLogger("overlord.addresses")

Signature = tuple[int, int, int]  # mtime_ns, size, inode


@dataclass(frozen=True, slots=True)
class AddressesChange:
    """What one reload changed (lower-case addresses, sorted)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]


class AddressesWatcher:
    """Applies changes of an addresses file to an engine (see the module docstring).

    Args:
        path: the addresses file.
        engine: the engine to add users to and drop users from.
        interval_s: seconds between two looks at the file.
        initial: the addresses the file listed when the engine was synced.
    """

    def __init__(
        self,
        path: Path,
        engine: Engine,
        *,
        interval_s: float = 2.0,
        initial: Iterable[str],
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the addresses watch interval must be positive")
        self.path = path
        self.engine = engine
        self.interval_s = interval_s
        self.reloads = 0
        self.added_total = 0
        self.removed_total = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._current = {address.lower() for address in initial}
        self._dropped: set[str] = set()
        self._pending: dict[str, int] = {}  # added address -> last block seen when asked
        self._signature: Signature | None = None  # None: read at the next check
        self._failing = False

    @property
    def addresses(self) -> frozenset[str]:
        """The addresses the file lists, as last applied."""
        with self._lock:
            return frozenset(self._current)

    def dropped_users(self) -> frozenset[str]:
        """Addresses removed from the file and not listed again (for the reconciler)."""
        with self._lock:
            return frozenset(self._dropped)

    def check(self) -> AddressesChange | None:
        """Apply the file if it changed since the last check; ``None`` when nothing changed."""
        change = self._reload()
        self._follow_pending()
        return change

    def _reload(self) -> AddressesChange | None:
        signature = self._stat()
        if signature is None or signature == self._signature:
            return None
        try:
            listed, problems = load_addresses_file(self.path)
        except (OSError, UnicodeDecodeError) as exc:
            self._fail(exc)
            return None
        if self._stat() != signature:
            return None  # written to while we read: read it again at the next poll
        self._signature = signature
        self._recovered()
        for problem in problems:
            log.warning(
                "addresses file line skipped",
                extra={
                    "file": str(self.path),
                    "line": problem.line,
                    "text": problem.text,
                    "reason": problem.reason,
                },
            )
        return self._apply(set(listed))

    def _apply(self, listed: set[str]) -> AddressesChange | None:
        with self._lock:
            if not listed and self._current:
                log.warning(
                    "addresses file lists no address, keeping the current users",
                    extra={"file": str(self.path), "users": len(self._current)},
                )
                return None
            change = AddressesChange(
                tuple(sorted(listed - self._current)), tuple(sorted(self._current - listed))
            )
            self._current = listed
            self._dropped = (self._dropped | set(change.removed)) - set(change.added)
            self.reloads += 1
        if change.added:
            self._request(change.added)
        if change.removed:
            for address in change.removed:
                self._pending.pop(address, None)
            self.engine.drop_users(change.removed)
        self.added_total += len(change.added)
        self.removed_total += len(change.removed)
        log.info(
            "addresses file reloaded",
            extra={
                "file": str(self.path),
                "users": len(listed),
                "added": len(change.added),
                "removed": len(change.removed),
            },
        )
        return change if change.added or change.removed else None

    def _request(self, addresses: Iterable[str]) -> None:
        with self.engine.lock:
            seen = self.engine.history[-1].number if self.engine.history else -1
        for address in addresses:
            self._pending[address] = seen
        self.engine.reread_next(addresses)

    def _follow_pending(self) -> None:
        """Forget the pending addresses a processed block has read; ask again for those a
        processed block went by without reading (module docstring)."""
        if not self._pending:
            return
        with self.engine.lock:
            processed = [(p.number, p.reread) for p in self.engine.history]
        again = []
        for address, asked in list(self._pending.items()):
            after = [reread for number, reread in processed if number > asked]
            if any(address in reread for reread in after):
                del self._pending[address]
            elif after:
                again.append(address)
        if again:
            log.info("asking again for added users", extra={"users": len(again)})
            self._request(again)

    def _stat(self) -> Signature | None:
        try:
            status = os.stat(self.path)
        except OSError as exc:
            self._fail(exc)
            return None
        return status.st_mtime_ns, status.st_size, status.st_ino

    def _fail(self, exc: Exception) -> None:
        """Log once per outage; the next successful read is a full reload."""
        self.errors += 1
        self._signature = None
        if not self._failing:
            self._failing = True
            log.error(
                "cannot read the addresses file, keeping the current users",
                extra={"file": str(self.path), "error": f"{type(exc).__name__}: {exc}"},
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("addresses file readable again", extra={"file": str(self.path)})

    # The background thread.

    def run(self, stop: threading.Event) -> None:
        """Check the file every ``interval_s`` until ``stop`` is set; never dies of an
        exception (it is logged and the next poll runs as usual)."""
        while not stop.wait(self.interval_s):
            try:
                self.check()
            except Exception as exc:  # the thread must outlive any one poll
                log.exception(
                    "addresses watch failed", extra={"error": f"{type(exc).__name__}: {exc}"}
                )

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run :meth:`run` on a daemon thread named ``addresses-watch``; returns the thread."""
        thread = threading.Thread(
            target=self.run, args=(stop,), name="addresses-watch", daemon=True
        )
        thread.start()
        return thread
