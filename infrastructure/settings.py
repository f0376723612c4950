"""All configuration, from the environment, in one typed class."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting has a safe embedded default; production refuses insecure ones."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    env: Literal["dev", "test", "prod"] = Field("dev", alias="APP_ENV")
    database_url: str = Field("", alias="DATABASE_URL")
    data_dir: Path = Field(Path("data"), alias="DATA_DIR")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT", ge=1, le=65535)
    debug: bool = Field(False, alias="DEBUG")

    run_projections: bool = Field(True, alias="RUN_PROJECTIONS_IN_PROCESS")
    projection_page_size: int = Field(1000, alias="PROJECTION_PAGE_SIZE", ge=1, le=100_000)
    projection_poll_s: float = Field(0.5, alias="PROJECTION_POLL_S", gt=0)
    min_position_timeout_s: float = Field(5.0, alias="MIN_POSITION_TIMEOUT_S", ge=0, le=60)

    snapshot_interval: int = Field(100, alias="SNAPSHOT_INTERVAL", ge=0)
    command_retries: int = Field(8, alias="COMMAND_RETRIES", ge=1, le=100)
    aggregate_cache_size: int = Field(10_000, alias="AGGREGATE_CACHE_SIZE", ge=0)
    db_pool_size: int = Field(10, alias="DB_POOL_SIZE", ge=1)

    max_body_bytes: int = Field(1_048_576, alias="MAX_BODY_BYTES", ge=1024)
    default_tenant: str = Field("default", alias="DEFAULT_TENANT")

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.env == "prod":
            if self.debug:
                raise ValueError("DEBUG must be off when APP_ENV=prod")
            if not self.is_postgres:
                raise ValueError("APP_ENV=prod needs DATABASE_URL naming a PostgreSQL database")
        if self.database_url and not self.is_postgres:
            raise ValueError("DATABASE_URL must be a postgresql:// URL (or unset for SQLite)")
        return self

    @property
    def is_postgres(self) -> bool:
        return urlsplit(self.database_url).scheme in {"postgres", "postgresql"}

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events.sqlite"

    @property
    def read_models_path(self) -> Path:
        return self.data_dir / "read_models.sqlite"

    def redacted_database_url(self) -> str:
        if not self.database_url:
            return f"sqlite:{self.events_path}"
        parts = urlsplit(self.database_url)
        netloc = parts.netloc
        if parts.password:
            netloc = netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
