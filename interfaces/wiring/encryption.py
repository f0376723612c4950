"""Encryption at rest of event payloads, wired from Settings (docs/security.md#encryption-at-rest)."""

from __future__ import annotations

from application.goals import PayloadMapper
from infrastructure.data_keys import MasterKeys
from infrastructure.payload_cipher import payload_mapper, plain_payloads
from infrastructure.secret_box import load_or_create_key_text
from infrastructure.settings import Settings


def master_keys(settings: Settings) -> MasterKeys:
    """MASTER_KEYS, or (dev and test: prod requires it) the keys kept in DATA_DIR, generated
    there with mode 0600 on first use."""
    if settings.master_keys is not None and settings.master_keys.get_secret_value().strip():
        return MasterKeys.parse(settings.master_keys.get_secret_value())
    return MasterKeys.parse(load_or_create_key_text(settings.master_keys_path))


def encrypted_payloads(settings: Settings) -> PayloadMapper:
    """The mapper that seals payloads per tenant, or (ENCRYPTION off) the library's, refused
    on a store that holds sealed payloads."""
    return payload_mapper(master_keys(settings)) if settings.encryption_on else plain_payloads
