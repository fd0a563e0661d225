"""One log format for rota's lines and uvicorn's: text for people, or
(LOG_FORMAT=json) one JSON object per line for log shippers."""

from __future__ import annotations

import datetime
import json
import logging
import sys

from server.terminal import safe

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "message"} (and "exc" with a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class InertFormatter(logging.Formatter):
    """Text lines with every control character shown, not acted on: they
    quote what jobs wrote (an error is a job's stderr's tail) and go to the
    terminal an operator tails them in. (JSON escapes them itself.)"""

    def format(self, record: logging.LogRecord) -> str:
        return safe(super().format(record))


class NoQuery(logging.Filter):
    """uvicorn's access line without the query string: a stream ticket
    travels there (an EventSource cannot send a header), and no credential,
    however short-lived, belongs in a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], *args[3:])
        return True


def configure(level: str, fmt: str) -> None:
    """The root logger's one handler, on stderr; uvicorn's loggers (given
    log_config=None) propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else InertFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, NoQuery) for f in access.filters):
        access.addFilter(NoQuery())
    # uvicorn's "trace" is below debug
    root.setLevel(5 if level == "trace" else level.upper())
