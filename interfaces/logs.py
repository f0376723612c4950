"""Where log lines go: stderr, in one format, in every process that serves or projects.

LOG_FORMAT=json writes one JSON object a line (timestamp, level, logger, message, and the
request's id, tenant, client and route when there is one); text writes them for people."""

from __future__ import annotations

import logging
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from infrastructure.log_context import RequestContextFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = "{levelname}{name}{message}"
JSON_NAMES = {"levelname": "level", "name": "logger"}
LogFormat = Literal["json", "text"]


class WithoutQuery(logging.Filter):
    """Lines whose argument at `index` is a URL or a path, without its query: a query string
    may carry what a caller should not have put there (a secret sent as a parameter), or a
    token a peer's URL holds. uvicorn's access lines have the path third, httpx's request
    lines the URL second."""

    def __init__(self, index: int = 2) -> None:
        super().__init__()
        self._index = index

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            kept = list(args)
            kept[self._index] = str(args[self._index]).partition("?")[0]
            record.args = tuple(kept)
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        # `timestamp`: ISO 8601 in UTC, to the microsecond: lines from several hosts sort as one.
        return JsonFormatter(JSON_FIELDS, style="{", rename_fields=JSON_NAMES, timestamp=True)
    return logging.Formatter(FORMAT)


def configure_logging(debug: bool, log_format: LogFormat = "text") -> None:
    """Info lines (debug lines with DEBUG) to stderr, set up again in each process where it
    starts: the ASGI module each server process imports (workers do not inherit their
    parent's handlers, and the security events are log lines), `serve`, `project`, `worker`
    and `scheduler`."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    # On the handler, not a logger: records of every logger pass through it.
    handler.addFilter(RequestContextFilter())
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler], force=True)
    logging.getLogger("uvicorn.access").addFilter(WithoutQuery(2))
    logging.getLogger("httpx").addFilter(WithoutQuery(1))
    if not debug:
        # Two info lines per poll sent: only its warnings (a poll not sent, a run missed).
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
