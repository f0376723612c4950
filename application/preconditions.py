"""Conditional commands: the versions a command may apply to (HTTP's If-Match)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IfMatch:
    """A command applies only if the aggregate's current version is one of `versions`, or,
    with `any_version` (`If-Match: *`), if the aggregate exists at all. Version 0 names an
    aggregate that does not exist yet (a first set of goals). An empty set matches nothing
    (every tag given was weak or not a version: RFC 9110 compares If-Match tags strongly)."""

    versions: frozenset[int] = frozenset()
    any_version: bool = False

    @classmethod
    def version(cls, version: int) -> IfMatch:
        return cls(frozenset({version}))

    def admits(self, current: int | None) -> bool:
        if self.any_version:
            return current is not None
        return (current if current is not None else 0) in self.versions

    def describe(self) -> str:
        if self.any_version:
            return "any version"
        return " or ".join(str(v) for v in sorted(self.versions)) or "no version this API gives"
