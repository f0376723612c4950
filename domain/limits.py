"""The bounds of what the domain accepts, and the checks of text and numbers against them.

Every value an event carries is checked here before the event exists, so that the log holds
nothing the read side cannot store: text is valid Unicode without NUL characters (which
PostgreSQL's text and jsonb refuse) and of bounded length, numbers are finite and bounded,
free-form entries are flat and small. The HTTP edge states the same bounds in its schemas
(importing them from here), so that a client learns them from the OpenAPI document.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_PURPOSE = 2000
MAX_TITLE = 200
MAX_TEXT = 500  # a success criterion, a free-form KPI's text
MAX_REASON = 1000
MAX_LABEL = 32
MAX_METRIC = 200
MAX_UNIT = 32
MAX_URL = 2000
MAX_OBJECTIVES = 50
MAX_ENTRIES = 50  # success criteria, free-form KPIs
MAX_MILESTONES = 20
MAX_WEIGHT = 1000.0
# KPI baselines, targets and values: a float carries 15-16 significant digits, so beyond
# this a baseline-to-target span could no longer tell the values progress is made of apart
# (and ±1e308 made the span infinite: progress was always 0).
MAX_MAGNITUDE = 1e15
# A free-form KPI is a text or a flat object: this many fields, named like identifiers, each a
# text, a bounded number, true/false/null, or one level of text labels.
MAX_NOTE_FIELDS = 20
NOTE_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
OBJECTIVE_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Overall progress has milestones of its own, recorded under this id: no objective may take it.
OVERALL = "overall"
RESERVED_OBJECTIVE_IDS = frozenset({OVERALL})


def text_problem(value: object, max_length: int, *, required: bool = False) -> str | None:
    """What is wrong with a text, if anything."""
    if not isinstance(value, str):
        return "must be a text"
    if required and not value.strip():
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if "\x00" in value:
        return "must not contain the NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


def number_problem(value: object, *, magnitude: float = MAX_MAGNITUDE) -> str | None:
    """What is wrong with a number, if anything (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if abs(value) > magnitude:
        return f"must be between -{magnitude:g} and {magnitude:g}"
    return None


def objective_id_problem(value: object) -> str | None:
    if not isinstance(value, str) or not OBJECTIVE_ID.fullmatch(value):
        return "must be 1-64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
    if value in RESERVED_OBJECTIVE_IDS:
        return f"{value!r} is reserved for overall progress"
    return None


def note_problems(entry: object) -> dict[str, str]:
    """What is wrong with a free-form KPI, by field ("" for the entry itself)."""
    if isinstance(entry, str):
        problem = text_problem(entry, MAX_TEXT, required=True)
        return {"": problem} if problem else {}
    if not isinstance(entry, dict):
        return {"": "must be a text or an object"}
    if len(entry) > MAX_NOTE_FIELDS:
        return {"": f"must have at most {MAX_NOTE_FIELDS} fields"}
    errors: dict[str, str] = {}
    for key, value in entry.items():
        if not isinstance(key, str) or not NOTE_FIELD.fullmatch(key):
            errors[str(key)[:64]] = "field names are 1-64 letters, digits or '_', not starting with a digit"
        elif (problem := _note_value_problem(value)) is not None:
            errors[key] = problem
    return errors


def _note_value_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return text_problem(value, MAX_TEXT)
    if isinstance(value, int | float):
        return number_problem(value)
    if isinstance(value, dict):
        if len(value) > MAX_NOTE_FIELDS:
            return f"must have at most {MAX_NOTE_FIELDS} labels"
        for key, label in value.items():
            if not isinstance(key, str) or not NOTE_FIELD.fullmatch(key):
                return "label names are 1-64 letters, digits or '_', not starting with a digit"
            if (problem := text_problem(label, MAX_METRIC)) is not None:
                return f"label {key}: {problem}"
        return None
    return "must be a text, a number, true, false, null or an object of text labels"


# Free JSON (an AgentCard's fields this system does not interpret): integers a JSON number
# can carry exactly everywhere (RFC 8785 writes numbers as IEEE 754 doubles: larger integers
# have no exact canonical form), and no deeper than the edge parses.
MAX_JSON_INTEGER = 2**53 - 1
MAX_JSON_DEPTH = 32
MAX_JSON_KEY = 256


def json_problems(value: object, path: str) -> dict[str, str]:
    """What keeps free JSON from being stored and read back exactly, by field path: texts
    (keys too) must be valid Unicode without NUL, numbers finite, integers exact in any
    reader, and nesting bounded. Without recursion: the depth is what is checked."""
    problems: dict[str, str] = {}
    stack: list[tuple[object, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict | list) and depth > MAX_JSON_DEPTH:
            problems[where] = f"nests more than {MAX_JSON_DEPTH} levels deep"
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if (problem := text_problem(key, MAX_JSON_KEY)) is not None:
                    problems[f"{where}.{str(key)[:64]!s}"] = f"field name {problem}"
                else:
                    stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{i}", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if (problem := text_problem(item, len(item))) is not None:
                problems[where] = problem
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_JSON_INTEGER:
                problems[where] = f"must be an integer between -{MAX_JSON_INTEGER} and {MAX_JSON_INTEGER}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                problems[where] = "must be a finite number"
        else:
            problems[where] = "must be JSON (an object, array, text, number, true, false or null)"
    return problems
