"""On the embedded default, a first run creates a client so a newcomer can call the API."""

from __future__ import annotations

import os

from domain.clients import SCOPES
from interfaces.bootstrap import System

MARKER = "dev-client-id"


def ensure_dev_client(system: System) -> str | None:
    """In dev mode, create one all-scopes client the first time and return how to use it.

    Only the client id is remembered (in DATA_DIR); the secret is printed once and never stored.
    """
    settings = system.settings
    if settings.env != "dev":
        return None
    marker = settings.data_dir / MARKER
    if marker.exists():
        return None
    issued = system.clients.create(settings.default_tenant, "dev", sorted(SCOPES), actor="first-run")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(issued.client_id + "\n")
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"dev client created (tenant {issued.tenant!r}, all scopes; shown once):\n"
        f"  client_id={issued.client_id}\n  client_secret={issued.client_secret}\n"
        f"get a token:\n  curl -s -u {issued.client_id}:{issued.client_secret} "
        f"-d grant_type=client_credentials {base}/oauth/token"
    )
