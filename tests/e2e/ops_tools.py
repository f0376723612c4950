"""The operations tools the stack's tests run: Debian's docker-compose, promtool and nginx
(ops/test installs those missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def tool(name: str) -> str:
    """The path of `name`; a missing tool fails the suite under ops/test, else skips."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{name} is not installed: ops/test installs it (Debian's package)")
        pytest.skip(f"{name} is not installed (ops/test installs it)")
    return found


def run(
    args: Sequence[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
