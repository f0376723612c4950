"""Instants as the read models store them: aware UTC datetimes on PostgreSQL, fixed-width
ISO 8601 UTC text on SQLite (so that text order is time order), and back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utc(moment: datetime) -> datetime:
    """An aware instant in UTC (a naive one is taken to be UTC already)."""
    if moment.tzinfo is UTC:  # what events carry: no conversion
        return moment
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)


def sqlite_instant(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text, so that text order is time order."""
    return utc(moment).isoformat(timespec="microseconds")


def stored_instant(postgres: bool, moment: datetime) -> Any:
    """An instant as the facts' instant columns (`at`, `observed_at`) compare with it."""
    return utc(moment) if postgres else sqlite_instant(moment)


def instant(value: Any) -> datetime:
    """An instant read back from a read model, in UTC: a datetime from PostgreSQL, ISO 8601
    text from SQLite (or from a stored view)."""
    return utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def hour_of(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in."""
    return utc(moment).replace(minute=0, second=0, microsecond=0)
