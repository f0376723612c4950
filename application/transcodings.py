"""JSON transcodings for the domain's value objects, so events stay typed in the log."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding

from application.json_encoding import encode_json
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

    # A mapping is stored in its JSON form: a bare metric name for the shorthand, which is
    # how every mapping was stored before mappings had labels and aggregations, so those
    # events (and snapshots) load unchanged.
    def encode(self, obj: Any) -> dict[str, Any]:
        encoded: dict[str, Any] = obj.as_json()
        return encoded

    def decode(self, data: Any) -> Any:
        return AutoUpdate(**data)


def register_domain_transcodings(transcoder: JSONTranscoder) -> None:
    for transcoding in (KpiAsDict(), ObjectiveAsDict(), GoalDefinitionAsDict(), AutoUpdateAsDict()):
        transcoder.register(transcoding)


# Datetimes and dataclasses go to the registered transcodings, as the library's encoder sends
# them (orjson would otherwise write them itself, and they would come back as text and dicts).
_TRANSCODED = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# Types that never hold a UUID: the walk for UUIDs stops at them at once.
_LEAVES = frozenset({str, int, float, bool, type(None), datetime})


class FastJSONTranscoder(JSONTranscoder):
    """eventsourcing's JSON transcoder, encoding and decoding with orjson.

    Encoding goes through the system's one JSON encoder (`encode_json`), which the read
    models write with too: an event the read side could not encode is refused before it is
    stored (UnstorableValue), never stored and then failing every projection. The text is
    the library's: compact UTF-8, datetimes and dataclasses through the registered
    transcodings as {"_type_", "_data_"} objects.

    Decoding revives transcoded values exactly as the library's object_hook does: bottom-up,
    every two-key {"_type_", "_data_"} object becomes its type. What orjson refuses in events
    stored by earlier versions (NaN or Infinity tokens, integers beyond 64 bits), the library
    decodes.
    """

    def __init__(self) -> None:
        self._iso_standard = False  # until the library's DatetimeAsISO is registered
        super().__init__()

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        # "datetime_iso" decoded without a lookup while it is still the library's own
        self._iso_standard = type(self.names.get("datetime_iso")) is DatetimeAsISO

    def encode(self, obj: Any) -> bytes:
        return encode_json(self._with_uuids(obj), default=self._encode_transcoded, option=_TRANSCODED)

    def _encode_transcoded(self, obj: Any) -> dict[str, Any]:
        encoded = self._encode_obj(obj)
        encoded["_data_"] = self._with_uuids(encoded["_data_"])
        return encoded

    def _with_uuids(self, value: Any) -> Any:
        """`value` with its UUIDs as the library's transcoding writes them: orjson would write
        a UUID itself, as text, and it would come back as text. A container is copied only
        when a UUID is found in it; dataclasses are left to `default`, which walks their fields."""
        kind = type(value)
        if kind in _LEAVES:
            return value
        if kind is dict:
            copied: dict[Any, Any] | None = None
            for key, item in value.items():
                if type(item) in _LEAVES:
                    continue
                found = self._with_uuids(item)
                if found is not item:
                    copied = copied if copied is not None else dict(value)
                    copied[key] = found
            return value if copied is None else copied
        if kind is list or kind is tuple:
            items = [i if type(i) in _LEAVES else self._with_uuids(i) for i in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        if isinstance(value, UUID):
            return self._encode_obj(value)
        return value

    def decode(self, data: bytes) -> Any:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().decode(data)
        return self._revive(parsed)

    def _revive(self, value: Any) -> Any:
        if type(value) is dict:
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                data = value["_data_"]
                if type(data) is str and value["_type_"] == "datetime_iso" and self._iso_standard:
                    return datetime.fromisoformat(data)  # most of what is transcoded: no lookups
                if type(data) is dict or type(data) is list:
                    value["_data_"] = self._revive(data)
                return self._decode_obj(value)
            for key, item in value.items():
                if (type(item) is dict or type(item) is list) and item:
                    value[key] = self._revive(item)
            return value
        if type(value) is list:
            for index, item in enumerate(value):
                if (type(item) is dict or type(item) is list) and item:
                    value[index] = self._revive(item)
        return value
