"""The dashboard: a static page and its ES modules, served by the API at /dashboard.

Nothing is built: the files under `static/` are what the browser runs (see docs/dashboard.md)."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
