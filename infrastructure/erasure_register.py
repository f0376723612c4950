"""The erasure register: a line per tenant erasure begun, and one per erasure finished, in a
file apart from the database.

A backup taken before an erasure holds the tenant's wrapped data key. Restored, it would read
the tenant again; the register is what tells the restored system the tenant was erased, so
that the erasure is applied again (application.erasure.Erasure.reapply). It must therefore
outlive the database and never be rolled back with it: keep it where the master keys are kept.

A tenant is written here before its key is destroyed, and again (finished) once its rows are
gone: an erasure cut short anywhere in between is finished by the next reapply. Lines are
appended and synced to disk, one writer at a time. A last line without its newline is kept
when it is a whole record (a file copied or edited by hand) and cut off otherwise (a crash
mid-write: an erasure that never began); any other unreadable line is an error naming the
file and line.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from application.erasure import RegisterEntries

BEGUN = "begun"
FINISHED = "finished"


class ErasureRegisterError(RuntimeError):
    """The register cannot be read: its file and line are named."""


class ErasureRegister:
    def __init__(self, path: Path) -> None:
        self.path = path

    def begun(self, tenant: str) -> None:
        """The tenant's erasure begins: written before its key is destroyed."""
        self._append(tenant, BEGUN)

    def finished(self, tenant: str) -> None:
        """The tenant's erasure is finished: its key destroyed and its rows removed."""
        self._append(tenant, FINISHED)

    def entries(self) -> RegisterEntries:
        """What the register holds; nothing if there is no file."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return RegisterEntries([], frozenset())
        lines = text.split("\n")
        if lines[-1] and _record(lines[-1]) is None:
            lines.pop()  # torn by a crash mid-write
        order: dict[str, None] = {}
        finished: set[str] = set()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            entry = _record(line)
            if entry is None:
                raise ErasureRegisterError(
                    f"{self.path}, line {number}: not an erasure record (docs/security.md#erasure says how to repair it)"
                )
            tenant, step = entry
            order.setdefault(tenant, None)
            if step == FINISHED:
                finished.add(tenant)
        return RegisterEntries(list(order), frozenset(finished))

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held while the register is applied: one process at a time on this host (a lock file
        beside it, so that appends inside need no other lock)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _append(self, tenant: str, step: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        line = json.dumps({"tenant": tenant, "step": step, "at": at}) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one writer at a time, across processes
            _end_last_line(fd)
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def _record(line: str) -> tuple[str, str] | None:
    """(tenant, step) of a line, None if it is not a record. A line without a step is `begun`."""
    try:
        entry: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    tenant, step = entry.get("tenant"), entry.get("step", BEGUN)
    if not isinstance(tenant, str) or not tenant or step not in (BEGUN, FINISHED):
        return None
    return tenant, step


def _end_last_line(fd: int) -> None:
    """A last line without its newline: ended when it is a whole record, cut off when a crash
    left it unfinished."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    head = os.pread(fd, size, 0)
    start = head.rfind(b"\n") + 1
    if _record(head[start:].decode(errors="replace")) is not None:
        os.write(fd, b"\n")
    else:
        os.ftruncate(fd, start)
