"""ASGI entry point for uvicorn/gunicorn: `interfaces.http.asgi:app`."""

from infrastructure.settings import Settings
from interfaces.http.app import create_app
from interfaces.logs import configure_logging

settings = Settings()
configure_logging(settings.debug, settings.log_format)
app = create_app(settings=settings)
