"""Logging for the long-running commands: readable lines, or one JSON object per line.

``configure_logging(json_lines=True)`` (``--log-json``) writes every record as a JSON
object with ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and every
``extra={...}`` field, so an update's ``elapsed_ms``, ``affected_users`` or
``underwater_users`` are machine-readable. Never log RPC URLs unredacted (see
:func:`overlord.chain.rpc.redact_url`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, extras included."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC).strftime("%H:%M:%S")
        extras = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        line = f"{moment} {record.levelname.lower():<7} {record.getMessage()}"
        return f"{line} {extras}".rstrip()


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Send the ``overlord`` loggers to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger("overlord")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # httpx logs every request's full URL at INFO, and URLs may carry API keys: whatever
    # handler an embedding application puts on the root logger, never at INFO.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
