# shellcheck shell=bash
# Shared setup, sourced by ops/run, ops/test and .ci/run (not run on its own).

# Work from the repo root whatever the caller's cwd.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

UV_VERSION=0.13.8

# Create/refresh .venv from uv.lock. uv is pinned and lives inside the venv itself,
# so nothing global is needed; when nothing changed this is quick and silent.
ensure_venv() {
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  if [[ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
    .venv/bin/pip install -q --disable-pip-version-check "uv==$UV_VERSION"
  fi
  # --frozen: exactly what uv.lock says; --inexact: keep uv itself (not in the lock).
  UV_PROJECT_ENVIRONMENT=.venv .venv/bin/uv sync --frozen --inexact --quiet
}
