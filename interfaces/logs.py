"""Where log lines go: stderr, one format, in every process that serves or projects."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class WithoutQuery(logging.Filter):
    """uvicorn's access lines with the path only: a query string may carry what a caller
    should not have put there (a secret sent as a parameter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].partition("?")[0], args[3], args[4])
        return True


def configure_logging(debug: bool) -> None:
    """Info lines (debug lines with DEBUG) to stderr, once per process, where it starts: the
    ASGI module each server process imports (workers do not inherit their parent's handlers,
    and the security events are log lines), `project`, `worker` and `scheduler`."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=FORMAT)
    logging.getLogger("uvicorn.access").addFilter(WithoutQuery())
    if not debug:
        # Two info lines per poll sent: only its warnings (a poll not sent, a run missed).
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
