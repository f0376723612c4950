"""What earlier versions stored that the bounds refuse today, made storable as it is read.

Before the domain bounded every value (see `limits`), a goal's free-form `kpis` took any
JSON: nesting hundreds of levels deep, integers beyond 64 bits, text with lone surrogates.
The log keeps such events exactly as they were stored (it is the audit record); when they are
read, the GoalsSet upcaster passes their definition through `storable_definition`, so that the
read models can write every event the log holds. What cannot be kept is replaced by a marker
that says so, never dropped silently.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from domain.objectives import GoalDefinition, Kpi, Objective

# Deeper than any value the bounds admit, and far below what a JSON encoder refuses.
MAX_DEPTH = 16
TOO_DEEP = "(nested deeper than 16 levels: not kept here; the log holds it)"
INT64 = 2**63


def storable_definition(definition: GoalDefinition) -> GoalDefinition:
    """`definition` with every text valid Unicode without NUL and every free-form value
    storable: the same definition when it already was."""
    return replace(
        definition,
        purpose_statement=storable_text(definition.purpose_statement),
        objectives=tuple(_objective(o) for o in definition.objectives),
        success_criteria=tuple(storable_json(c) for c in definition.success_criteria),
        kpis=tuple(storable_json(k) for k in definition.kpis),
        label=None if definition.label is None else storable_text(definition.label),
    )


def _objective(objective: Objective) -> Objective:
    kpi = objective.kpi
    if kpi is not None:
        kpi = Kpi(storable_text(kpi.metric), kpi.target, kpi.baseline, storable_text(kpi.unit), kpi.direction)
    return replace(objective, title=storable_text(objective.title), kpi=kpi)


def storable_text(text: str) -> str:
    """`text` without NUL, its lone surrogates replaced by U+FFFD (pairs are kept)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def storable_json(value: Any, depth: int = 0) -> Any:
    """A JSON value every read model can write: texts cleaned, integers within 64 bits,
    nesting cut at MAX_DEPTH."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else float(value)
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v, depth + 1) for v in value]
    return storable_text(str(value))
