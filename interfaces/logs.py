"""Where log lines go: stderr, one format, in every process that serves or projects."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


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


def configure_logging(debug: bool) -> None:
    """Info lines (debug lines with DEBUG) to stderr, once per process, where it starts: the
    ASGI module each server process imports (workers do not inherit their parent's handlers,
    and the security events are log lines), `project`, `worker` and `scheduler`."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=FORMAT)
    logging.getLogger("uvicorn.access").addFilter(WithoutQuery(2))
    logging.getLogger("httpx").addFilter(WithoutQuery(1))
    if not debug:
        # Two info lines per poll sent: only its warnings (a poll not sent, a run missed).
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
