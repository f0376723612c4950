"""JSON transcodings for the domain's value objects, so events stay typed in the log."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.goals import AutoUpdate
from domain.objectives import GoalDefinition, Kpi, Objective


class _Shallow(Transcoding):
    """Encodes a frozen dataclass as its fields; nested value objects are encoded by the
    transcoder in turn, and sequences come back as tuples."""

    def encode(self, obj: Any) -> dict[str, Any]:
        return {f.name: getattr(obj, f.name) for f in fields(obj)}

    def decode(self, data: Any) -> Any:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return self.type(**values)


class KpiAsDict(_Shallow):
    type = Kpi
    name = "kpi"


class ObjectiveAsDict(_Shallow):
    type = Objective
    name = "objective"


class GoalDefinitionAsDict(_Shallow):
    type = GoalDefinition
    name = "goal_definition"


class AutoUpdateAsDict(_Shallow):
    type = AutoUpdate
    name = "auto_update"

    def encode(self, obj: Any) -> dict[str, Any]:
        return {**asdict(obj), "kpi_metrics": dict(obj.kpi_metrics)}


def register_domain_transcodings(transcoder: JSONTranscoder) -> None:
    for transcoding in (KpiAsDict(), ObjectiveAsDict(), GoalDefinitionAsDict(), AutoUpdateAsDict()):
        transcoder.register(transcoding)
