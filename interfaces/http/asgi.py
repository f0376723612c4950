"""ASGI entry point for uvicorn/gunicorn: `interfaces.http.asgi:app`."""

from interfaces.http.app import create_app

app = create_app()
