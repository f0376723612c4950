"""The erasure register: tenants in the order first erased, a torn last line ignored, any other
unreadable line an error naming the file and line, a file only its owner reads."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from infrastructure.erasure_register import ErasureRegister, ErasureRegisterError


def test_tenants_in_the_order_first_erased(tmp_path: Path) -> None:
    register = ErasureRegister(tmp_path / "keys" / "erasures.jsonl")
    assert register.tenants() == []  # no file yet
    for tenant in ("acme", "globex", "acme"):
        register.record(tenant)
    assert register.tenants() == ["acme", "globex"]
    assert ErasureRegister(register.path).tenants() == ["acme", "globex"]  # as another process reads it
    assert stat.S_IMODE(register.path.stat().st_mode) == 0o600


def test_a_line_torn_by_a_crash_is_ignored_and_the_next_record_still_reads(tmp_path: Path) -> None:
    register = ErasureRegister(tmp_path / "erasures.jsonl")
    register.record("acme")
    with register.path.open("a") as file:
        file.write('{"tenant": "glo')  # the process died mid-write
    assert register.tenants() == ["acme"]
    register.record("globex")
    assert register.tenants() == ["acme", "globex"]


def test_an_unreadable_line_is_an_error_naming_it(tmp_path: Path) -> None:
    register = ErasureRegister(tmp_path / "erasures.jsonl")
    register.record("acme")
    with register.path.open("a") as file:
        file.write("not json\n")
    register.record("globex")
    with pytest.raises(ErasureRegisterError, match=r"erasures.jsonl, line 2"):
        register.tenants()
