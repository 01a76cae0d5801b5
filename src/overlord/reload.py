"""Configuration reload at runtime: on SIGHUP, or when the ``--config`` file changes.

The configuration is loaded again exactly as at the start (file < environment < flags),
and the settings that can change while the engine runs are handed to ``apply``: the
detection thresholds and the profit settings (see :data:`RUNTIME_SECTIONS`). A change
anywhere else (the node, the market, the data directory, the sockets) is logged as
needing a restart and not applied. A file that does not load is logged with the
setting it names, and the running configuration stays as it was: a typo in an edit never
stops the engine or zeroes a threshold.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from overlord.config import Config, ConfigError, load_config

log = logging.getLogger("overlord.reload")

RUNTIME_SECTIONS: Final = ("detection", "profit")
"""Sections whose settings take effect without a restart."""


class ConfigReloader:
    """Watches ``path`` (if any) every ``interval_s`` and reloads on SIGHUP or a change.

    ``apply(new)`` is called with the new configuration when a runtime setting changed;
    ``current`` is then the new one. Counters: ``reloads``, ``failures``.
    """

    def __init__(
        self,
        path: Path | None,
        flags: Mapping[str, object],
        current: Config,
        apply: Callable[[Config], None],
        *,
        env: Mapping[str, str] | None = None,
        interval_s: float = 2.0,
    ) -> None:
        self.path = path
        self.flags = dict(flags)
        self.current = current
        self.apply = apply
        self.env = env
        self.interval_s = interval_s
        self.reloads = 0
        self.failures = 0
        self._wake = threading.Event()
        self._signature = self._stat()

    def request(self, *_signal: object) -> None:
        """Reload soon (the SIGHUP handler: it only sets a flag)."""
        self._wake.set()

    def install_sighup(self) -> bool:
        """Reload on SIGHUP (main thread only, where signals exist); whether it was."""
        if (
            not hasattr(signal, "SIGHUP")
            or threading.current_thread() is not threading.main_thread()
        ):
            return False
        signal.signal(signal.SIGHUP, self.request)
        return True

    def check(self, *, forced: bool = False) -> list[str] | None:
        """Reload if asked or the file changed; the runtime settings that changed, or
        ``None`` when nothing was reloaded (no change, or the new file did not load)."""
        signature = self._stat()
        if not forced and signature == self._signature:
            return None
        self._signature = signature
        try:
            new = load_config(self.path, os.environ if self.env is None else self.env, self.flags)
        except ConfigError as exc:
            self.failures += 1
            log.error(
                "configuration not reloaded; the running one stays", extra={"error": str(exc)}
            )
            return None
        changed = changed_settings(self.current, new)
        runtime = [name for name in changed if name.split(".")[0] in RUNTIME_SECTIONS]
        later = [name for name in changed if name not in runtime]
        if later:
            log.warning("these settings take effect at the next start", extra={"settings": later})
        if runtime:
            self.apply(new)
            self.current = new
            self.reloads += 1
            log.info("configuration reloaded", extra={"settings": runtime})
        return runtime

    def run(self, stop: threading.Event) -> None:
        """Check every ``interval_s`` (at once after SIGHUP) until ``stop``."""
        while not stop.is_set():
            forced = self._wake.wait(self.interval_s)
            self._wake.clear()
            if stop.is_set():
                return
            try:
                self.check(forced=forced)
            except Exception:  # a reload bug must not end the watch
                log.exception("configuration reload failed")

    def start(self, stop: threading.Event) -> threading.Thread:
        """:meth:`run` on a daemon thread named ``config-reload``."""
        thread = threading.Thread(target=self.run, args=(stop,), name="config-reload", daemon=True)
        thread.start()
        return thread

    def _stat(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size


def changed_settings(old: Config, new: Config) -> list[str]:
    """Dotted names of the settings whose display value differs (secrets compared as
    shown, i.e. redacted; a changed secret with the same host is not noticed)."""
    before, after = old.settings(), new.settings()
    return sorted(name for name in after if before.get(name) != after[name])
