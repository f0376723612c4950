"""The erasure register: tenants in the order first erased, with which erasures finished; a
line torn by a crash ignored and cut off, a whole last line without its newline kept; any
other unreadable line an error naming the file and line; a file only its owner reads."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from infrastructure.erasure_register import ErasureRegister, ErasureRegisterError


def test_tenants_in_the_order_first_erased_and_which_finished(tmp_path: Path) -> None:
    register = ErasureRegister(tmp_path / "keys" / "erasures.jsonl")
    assert register.entries().tenants == []  # no file yet
    register.begun("acme")
    register.begun("globex")
    register.finished("acme")
    register.begun("acme")  # erased again (a restored backup): still first
    entries = ErasureRegister(register.path).entries()  # as another process reads it
    assert entries.tenants == ["acme", "globex"] and entries.finished == {"acme"}
    assert stat.S_IMODE(register.path.stat().st_mode) == 0o600


def test_a_line_torn_by_a_crash_is_ignored_and_cut_off_before_the_next(tmp_path: Path) -> None:
    register = ErasureRegister(tmp_path / "erasures.jsonl")
    register.begun("acme")
    with register.path.open("a") as file:
        file.write('{"tenant": "glo')  # the process died mid-write: that erasure never began
    assert register.entries().tenants == ["acme"]
    register.begun("initech")
    assert register.entries().tenants == ["acme", "initech"]
    assert "glo" not in register.path.read_text().replace("initech", "")


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    """A register copied or edited by hand may lack its final newline: its last erasure counts."""
    register = ErasureRegister(tmp_path / "erasures.jsonl")
    register.path.write_text('{"tenant": "acme"}\n{"tenant": "globex", "step": "finished"}')
    assert register.entries().tenants == ["acme", "globex"]
    register.begun("initech")
    entries = register.entries()
    assert entries.tenants == ["acme", "globex", "initech"] and entries.finished == {"globex"}


def test_an_unreadable_line_is_an_error_naming_it(tmp_path: Path) -> None:
    register = ErasureRegister(tmp_path / "erasures.jsonl")
    register.begun("acme")
    with register.path.open("a") as file:
        file.write('{"tenant": "x", "step": "maybe"}\n')
    register.begun("globex")
    with pytest.raises(ErasureRegisterError, match=r"erasures.jsonl, line 2"):
        register.entries()
