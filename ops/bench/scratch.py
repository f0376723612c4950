"""Scratch PostgreSQL databases for the benchmarks: made on an admin URL, dropped with FORCE."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg


def with_db(url: str, dbname: str) -> str:
    """`url` pointed at database `dbname`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


def create_database(admin_url: str, prefix: str) -> tuple[str, str]:
    """A new empty database `<prefix><random>`: (its name, its URL)."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, with_db(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
