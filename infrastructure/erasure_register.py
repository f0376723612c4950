"""The erasure register: a line per tenant erasure, in a file apart from the database.

A backup taken before an erasure holds the tenant's wrapped data key. Restored, it would read
the tenant again; the register is what tells the restored system the tenant was erased, so
that the erasure is applied again (application.erasure.Erasure.reapply). It must therefore
outlive the database and never be rolled back with it: keep it where the master keys are kept.

A tenant is written here before its key is destroyed: an erasure cut short is finished by the
next reapply. Lines are appended and synced to disk; a torn last line (a crash mid-write, so
an erasure that never began) is ignored, and cut off before the next line is written; any
other unreadable line is an error naming the file and line.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path


class ErasureRegisterError(RuntimeError):
    """The register cannot be read: its file and line are named."""


class ErasureRegister:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, tenant: str) -> None:
        """Add the tenant (again if it is there: the first line is what counts)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"tenant": tenant, "at": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one writer at a time, across processes
            _drop_torn_tail(fd)
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def tenants(self) -> list[str]:
        """The tenants erased, in the order of their first erasure; none if there is no file."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        *complete, _torn = text.split("\n")  # what follows the last newline was not finished
        found: dict[str, None] = {}
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                tenant = entry["tenant"]
            except (ValueError, KeyError, TypeError):
                raise ErasureRegisterError(f"{self.path}, line {number}: not an erasure record") from None
            if not isinstance(tenant, str) or not tenant:
                raise ErasureRegisterError(f"{self.path}, line {number}: not an erasure record")
            found.setdefault(tenant, None)
        return list(found)


def _drop_torn_tail(fd: int) -> None:
    """Cut what follows the last newline: a line a crash left unfinished."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    head = os.pread(fd, size, 0)
    os.ftruncate(fd, head.rfind(b"\n") + 1)
