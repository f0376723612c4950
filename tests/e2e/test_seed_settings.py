"""`a2a-goals serve` with the seeds' shared-secret token settings: refused at start, saying
what replaces them, without echoing the secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PLANTED = "seed-secret-Hq2vX9"


def test_the_server_refuses_to_start_with_a_shared_secret(tmp_path: Path) -> None:
    env = {**os.environ, "APP_ENV": "test", "SECRET_KEY": PLANTED, "ALGORITHM": "HS256", "DATA_DIR": str(tmp_path)}
    started = subprocess.run(
        [sys.executable, "-m", "interfaces.cli.main", "serve", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode != 0
    assert "set SIGNING_KEYS" in started.stderr
    assert PLANTED not in started.stderr + started.stdout
